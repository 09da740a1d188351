import * as path from 'node:path';
import {
  parseStorageContainers,
  parseStorageImages,
  storageImageDigest,
  type StorageContainer,
  type StorageImage,
} from '../metadata';
import type { ContainerRuntime, DigestResult } from '../types';
import { JsonFileCache, failure, type ContainerSource } from './source';

/**
 * StorageSource reads containers-storage (github.com/containers/storage), shared by podman
 * and CRI-O: <root>/<driver>-containers/containers.json maps a container to its image id,
 * <root>/<driver>-images/images.json gives the image's manifest digest. Several graph roots
 * may be given (rootful podman, CRI-O with its own root, rootless users' roots).
 */
export class StorageSource implements ContainerSource {
  readonly name = 'containers-storage';
  readonly runtimes: readonly ContainerRuntime[] = ['podman', 'cri-o'];
  readonly #roots: string[];
  readonly #driver: string;
  readonly #containers = new JsonFileCache<Map<string, StorageContainer>>(parseStorageContainers);
  readonly #images = new JsonFileCache<Map<string, StorageImage>>(parseStorageImages);

  constructor(roots: string[], driver = 'overlay') {
    this.#roots = roots;
    this.#driver = driver;
  }

  async resolve(id: string): Promise<DigestResult> {
    let last: DigestResult = { ok: false, reason: 'container_not_found' };
    for (const root of this.#roots) {
      const r = await this.#resolveIn(root, id);
      if (r.ok || r.reason !== 'container_not_found') return r;
      last = r;
    }
    return last;
  }

  async #resolveIn(root: string, id: string): Promise<DigestResult> {
    try {
      const containers = await this.#containers.read(path.join(root, `${this.#driver}-containers`, 'containers.json'));
      const c = containers.get(id);
      if (c === undefined) return { ok: false, reason: 'container_not_found' };
      const images = await this.#images.read(path.join(root, `${this.#driver}-images`, 'images.json'));
      const img = images.get(c.imageId);
      const r = storageImageDigest(img);
      return r.ok ? { ...r, names: c.names, image: { id: `sha256:${c.imageId}`, names: [...(img?.names ?? [])].sort() } } : r;
    } catch (err) {
      return failure(err, 'metadata_unreadable');
    }
  }
}
