import { promises as fsp } from 'node:fs';
import type * as Http from 'node:http';
import * as path from 'node:path';
import {
  dockerImageDigest,
  dockerRepoDigestsFromRepositories,
  parseDockerContainer,
  parseDockerImageRepoDigests,
} from '../metadata';
import type { ContainerRuntime, DigestResult } from '../types';
import { SourceError, failure, type ContainerSource } from './source';

/**
 * DockerFilesSource reads Docker's state files: <root>/containers/<id>/config.v2.json for the
 * image id and reference, and <root>/image/<driver>/repositories.json for the repo digests.
 * Works while dockerd is down; does not cover Docker's containerd image store (use the API).
 */
export class DockerFilesSource implements ContainerSource {
  readonly name = 'docker-files';
  readonly runtimes: readonly ContainerRuntime[] = ['docker'];
  readonly #root: string;

  constructor(root: string) {
    this.#root = root;
  }

  async resolve(id: string): Promise<DigestResult> {
    try {
      const raw = await fsp.readFile(path.join(this.#root, 'containers', id, 'config.v2.json'), 'utf8');
      const meta = parseDockerContainer(JSON.parse(raw));
      const repoDigests = await this.#repoDigests(meta.imageId);
      const r = dockerImageDigest(meta, repoDigests);
      return r.ok ? { ...r, names: meta.name === '' ? [] : [meta.name], image: { id: meta.imageId, names: meta.imageRef === '' ? [] : [meta.imageRef] } } : r;
    } catch (err) {
      return failure(err, 'metadata_unreadable');
    }
  }

  async #repoDigests(imageId: string): Promise<string[]> {
    const imageDir = path.join(this.#root, 'image');
    let drivers: string[];
    try {
      drivers = (await fsp.readdir(imageDir)).sort();
    } catch {
      return [];
    }
    const out: string[] = [];
    for (const d of drivers) {
      let raw: string;
      try {
        raw = await fsp.readFile(path.join(imageDir, d, 'repositories.json'), 'utf8');
      } catch {
        continue;
      }
      out.push(...dockerRepoDigestsFromRepositories(JSON.parse(raw), imageId));
    }
    return out;
  }
}

/**
 * A Docker API answer larger than this is refused (counted as `response_too_large`), the same
 * bound as the containerd client's: `GET /containers/<id>/json` is a few KiB (tens with a large
 * environment or many labels and mounts), `GET /images/<id>/json` smaller still.
 */
export const DOCKER_MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/**
 * DockerApiSource asks the Docker Engine API over its unix socket (plain HTTP/1.1):
 * `GET /containers/<id>/json` then `GET /images/<image id>/json` for `RepoDigests`.
 * Each request has a hard deadline so a hung daemon costs at most `timeoutMs`, and a bounded
 * answer: a body over `maxResponseBytes` (declared or as it arrives) is refused at once.
 */
export class DockerApiSource implements ContainerSource {
  readonly name = 'docker-api';
  readonly runtimes: readonly ContainerRuntime[] = ['docker'];
  readonly #socket: string;
  readonly #timeoutMs: number;
  readonly #maxResponseBytes: number;

  constructor(socketPath: string, timeoutMs: number, maxResponseBytes = DOCKER_MAX_RESPONSE_BYTES) {
    this.#socket = socketPath;
    this.#timeoutMs = timeoutMs;
    this.#maxResponseBytes = maxResponseBytes;
  }

  async resolve(id: string): Promise<DigestResult> {
    try {
      const c = await this.#get(`/containers/${id}/json`);
      if (c === null) return { ok: false, reason: 'container_not_found' };
      const meta = parseDockerContainer(c);
      const img = await this.#get(`/images/${meta.imageId}/json`);
      const repoDigests = img === null ? [] : parseDockerImageRepoDigests(img);
      const r = dockerImageDigest(meta, repoDigests);
      return r.ok ? { ...r, names: meta.name === '' ? [] : [meta.name], image: { id: meta.imageId, names: meta.imageRef === '' ? [] : [meta.imageRef] } } : r;
    } catch (err) {
      return failure(err, 'socket_error');
    }
  }

  /** get returns the parsed JSON body, or null on 404. */
  #get(urlPath: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        req.destroy(new SourceError('socket_timeout', `docker API ${urlPath}: no answer within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      /** refuse: settles the call first (the destroyed response's own errors come later and are ignored) */
      const refuse = (): void => {
        const err = new SourceError('response_too_large', `docker API ${urlPath}: response larger than ${this.#maxResponseBytes} bytes`);
        clearTimeout(timer);
        reject(err);
        req.destroy(err);
      };
      // node:http is compiled on the first Docker API call, not at every collector start
      const http = require('node:http') as typeof Http;
      const req = http.get({ socketPath: this.#socket, path: urlPath, headers: { Host: 'docker' } }, (res) => {
        const chunks: Buffer[] = [];
        let received = 0;
        const declared = Number(res.headers['content-length'] ?? 0);
        if (declared > this.#maxResponseBytes) {
          refuse();
          return;
        }
        res.on('data', (c: Buffer) => {
          received += c.length;
          if (received > this.#maxResponseBytes) {
            refuse(); // stops reading: the rest is never buffered
            return;
          }
          chunks.push(c);
        });
        res.on('error', reject);
        res.on('end', () => {
          clearTimeout(timer);
          if (res.statusCode === 404) return resolve(null);
          if (res.statusCode !== 200) {
            return reject(new SourceError('socket_error', `docker API ${urlPath}: HTTP ${res.statusCode}`));
          }
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
          } catch (err) {
            reject(err);
          }
        });
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (err instanceof SourceError) return reject(err);
        const unavailable = err.code === 'ENOENT' || err.code === 'ECONNREFUSED';
        reject(new SourceError(unavailable ? 'source_unavailable' : 'socket_error', `docker API ${this.#socket}: ${err.message}`));
      });
    });
  }
}
