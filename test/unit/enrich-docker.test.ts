/**
 * The Docker Engine API client against a real HTTP/1.1 server on a unix socket (the real
 * dockerd is not installed here; the protocol is plain HTTP, so node:http speaks it as dockerd
 * does): a well-formed answer, and answers over the response cap, declared or streamed.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { Enricher } from '../../src/enrich/enricher';
import { DOCKER_MAX_RESPONSE_BYTES, DockerApiSource } from '../../src/enrich/host/docker-source';

const ID = 'd0'.repeat(32);
const IMAGE = `sha256:${'1a'.repeat(32)}`;
const DIGEST = `sha256:${'2b'.repeat(32)}`;
/** deadline of calls that the local server answers: only a ceiling, never what the test waits for */
const CEILING_MS = 30_000;

type Handler = (url: string, res: http.ServerResponse) => void;

async function withServer(handler: Handler, run: (socket: string) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-docker-unit-'));
  const socket = path.join(dir, 'docker.sock');
  const server = http.createServer((req, res) => {
    res.on('error', () => {}); // the client may go away mid-answer
    handler(req.url ?? '', res);
  });
  await new Promise<void>((r) => server.listen(socket, r));
  try {
    await run(socket);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function json(res: http.ServerResponse, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const wellFormed: Handler = (url, res) => {
  if (url === `/containers/${ID}/json`) json(res, { Id: ID, Name: '/web', Image: IMAGE, Config: { Image: 'nginx:1' } });
  else if (url === `/images/${IMAGE}/json`) json(res, { Id: IMAGE, RepoDigests: [`nginx@${DIGEST}`] });
  else {
    res.writeHead(404);
    res.end();
  }
};

test('docker API: a well-formed answer gives the repo digest, names and image', async () => {
  await withServer(wellFormed, async (socket) => {
    const r = await new DockerApiSource(socket, CEILING_MS).resolve(ID);
    assert.deepEqual(r, { ok: true, digest: DIGEST, basis: 'manifest', names: ['web'], image: { id: IMAGE, names: ['nginx:1'] } });
    assert.deepEqual(await new DockerApiSource(socket, CEILING_MS).resolve('ee'.repeat(32)), { ok: false, reason: 'container_not_found' });
  });
});

test('docker API: an answer over the cap is refused as response_too_large, without buffering it all', async () => {
  // streamed without a length (chunked): the client stops reading once past the cap
  let sent = 0;
  await withServer((_url, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const pump = (): void => {
      while (sent < 64 * 1024 * 1024 && !res.destroyed) {
        sent += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
      if (!res.destroyed) res.end();
    };
    res.write('{"Id":"');
    pump();
  }, async (socket) => {
    const r = await new DockerApiSource(socket, CEILING_MS).resolve(ID);
    assert.equal(!r.ok && r.reason, 'response_too_large', JSON.stringify(r));
    assert.match(!r.ok ? r.detail ?? '' : '', new RegExp(`larger than ${DOCKER_MAX_RESPONSE_BYTES} bytes`));
  });
  assert.ok(sent < 64 * 1024 * 1024, `the client stopped the answer (server sent ${sent} bytes)`);
  // a declared length over the cap is refused before any of the body is read
  await withServer((_url, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(DOCKER_MAX_RESPONSE_BYTES + 1) });
    res.write('{');
  }, async (socket) => {
    const r = await new DockerApiSource(socket, CEILING_MS).resolve(ID);
    assert.equal(!r.ok && r.reason, 'response_too_large', JSON.stringify(r));
  });
  // a smaller cap, given explicitly: the well-formed container answer (about 200 bytes) is over it
  await withServer(wellFormed, async (socket) => {
    const r = await new DockerApiSource(socket, CEILING_MS, 100).resolve(ID);
    assert.equal(!r.ok && r.reason, 'response_too_large', JSON.stringify(r));
  });
});

test('docker API: the enricher counts a refused answer and warns once', async () => {
  const mount = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-cg-'));
  fs.mkdirSync(path.join(mount, `system.slice/docker-${ID}.scope`), { recursive: true });
  const warnings: string[] = [];
  try {
    await withServer(wellFormed, async (socket) => {
      const e = new Enricher({
        cgroup2Mount: mount, storageRoots: [], dockerRoot: null, containerdSocket: null, warn: (m) => warnings.push(m),
        sources: [new DockerApiSource(socket, CEILING_MS, 100)],
      });
      const id = fs.statSync(path.join(mount, `system.slice/docker-${ID}.scope`), { bigint: true }).ino;
      assert.deepEqual(await e.whenSettled(id, CEILING_MS), { containerId: `docker://${ID}` });
      assert.equal(e.counters().errors.response_too_large, 1);
      assert.equal(e.counters().resolvedNoDigest, 1);
      e.close();
    });
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /docker-api: response_too_large/);
  } finally {
    fs.rmSync(mount, { recursive: true, force: true });
  }
});
