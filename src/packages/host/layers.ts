import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path/posix';
import type { ByteSource } from '../../symbolize/host';
import { DEFAULT_PACKAGE_LIMITS, TooLargeError, type PackageLimits } from '../limits';
import { DirRoot, resolveConfined, type RootFs } from './root';

const HEX64 = /^[a-f0-9]{64}$/;
const MAX_LAYERS = 256;
const MAX_META_BYTES = 64 * 1024 * 1024;

/**
 * storageLayerChain lists the diff directories of an image in containers-storage, top layer
 * first: `<root>/<driver>-images/images.json` gives the image's top layer,
 * `<root>/<driver>-layers/layers.json` each layer's parent, `<root>/<driver>/<layer>/diff` its files.
 * A container's own writable layer (containers.json `layer`) goes on top while it exists.
 */
export async function storageLayerChain(storageRoot: string, imageId: string, containerId?: string, driver = 'overlay'): Promise<string[] | undefined> {
  const readJson = async (f: string): Promise<unknown> => {
    const st = await fsp.stat(f);
    if (st.size > MAX_META_BYTES) throw new TooLargeError(`${f} has ${st.size} bytes`);
    return JSON.parse(await fsp.readFile(f, 'utf8'));
  };
  const id = imageId.replace(/^sha256:/, '');
  if (!HEX64.test(id)) return undefined;
  let images: unknown;
  let layers: unknown;
  try {
    images = await readJson(path.join(storageRoot, `${driver}-images`, 'images.json'));
    layers = await readJson(path.join(storageRoot, `${driver}-layers`, 'layers.json'));
  } catch {
    return undefined;
  }
  if (!Array.isArray(images) || !Array.isArray(layers)) return undefined;
  const img = images.find((e: { id?: unknown }) => e?.id === id) as { layer?: unknown } | undefined;
  if (img === undefined || typeof img.layer !== 'string' || !HEX64.test(img.layer)) return undefined;
  const parent = new Map<string, string | undefined>();
  for (const l of layers as Array<{ id?: unknown; parent?: unknown }>) {
    if (typeof l?.id === 'string' && HEX64.test(l.id)) parent.set(l.id, typeof l.parent === 'string' && HEX64.test(l.parent) ? l.parent : undefined);
  }
  const chain: string[] = [];
  if (containerId !== undefined) {
    try {
      const cs = await readJson(path.join(storageRoot, `${driver}-containers`, 'containers.json'));
      const c = Array.isArray(cs) ? (cs.find((e: { id?: unknown }) => e?.id === containerId) as { layer?: unknown } | undefined) : undefined;
      if (c !== undefined && typeof c.layer === 'string' && HEX64.test(c.layer)) chain.push(c.layer);
    } catch {
      // the container is gone (podman run --rm): the image's layers are what is left
    }
  }
  for (let l: string | undefined = img.layer; l !== undefined && chain.length < MAX_LAYERS; l = parent.get(l)) {
    if (chain.includes(l)) return undefined; // a cycle in hostile metadata
    chain.push(l);
  }
  const dirs: string[] = [];
  for (const l of chain) {
    const d = path.join(storageRoot, driver, l, 'diff');
    if (fs.existsSync(d)) dirs.push(d);
  }
  return dirs.length === 0 ? undefined : dirs;
}

function isWhiteout(st: fs.Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/**
 * LayersRoot shows the union of overlay diff directories (top first) the way overlayfs
 * does: the topmost layer holding a name wins; a whiteout (a 0/0 character device, or an
 * AUFS-style `.wh.<name>` file) hides the name below it. Opaque directories marked only by
 * the `trusted.overlay.opaque` xattr are not seen (Node cannot read xattrs); their lower
 * entries then show through. Used to attribute files of a container that is gone.
 */
export class LayersRoot implements RootFs {
  readonly kind = 'image-layers' as const;
  readonly key: string;
  readonly #layers: DirRoot[];
  readonly #dirs: string[];
  readonly #limits: PackageLimits;

  constructor(dirs: string[], limits: PackageLimits = DEFAULT_PACKAGE_LIMITS) {
    this.#dirs = dirs;
    this.#layers = dirs.map((d) => new DirRoot('image-layers', d, d, limits));
    this.key = `layers:${dirs.join(':')}`;
    this.#limits = limits;
  }

  /** #find returns the index of the layer that shows `p` (canonical inside path) and its lstat. */
  async #find(p: string): Promise<{ layer: number; st: fs.Stats } | undefined> {
    if (p === '/') {
      const st = await this.#layers[0]!.lstat('/');
      return st === undefined ? undefined : { layer: 0, st };
    }
    const dir = path.dirname(p);
    const base = path.basename(p);
    for (let i = 0; i < this.#layers.length; i++) {
      const st = await this.#layers[i]!.lstat(p);
      if (st !== undefined) return isWhiteout(st) ? undefined : { layer: i, st };
      if ((await this.#layers[i]!.lstat(path.join(dir, `.wh.${base}`))) !== undefined) return undefined;
      if ((await this.#layers[i]!.lstat(path.join(dir, '.wh..wh..opq'))) !== undefined) return undefined;
    }
    return undefined;
  }

  async lstat(p: string): Promise<fs.Stats | undefined> {
    return (await this.#find(p))?.st;
  }

  resolve(p: string): Promise<string | undefined> {
    return resolveConfined(
      p,
      (i) => this.lstat(i),
      async (i) => {
        const f = await this.#find(i);
        if (f === undefined) throw Object.assign(new Error(`${i} vanished`), { code: 'ENOENT' });
        return fsp.readlink(path.join(this.#dirs[f.layer]!, i));
      },
      this.#limits.maxSymlinks,
    );
  }

  async readFile(p: string, max: number): Promise<Buffer | undefined> {
    const r = await this.resolve(p);
    if (r === undefined) return undefined;
    const f = await this.#find(r);
    return f === undefined ? undefined : this.#layers[f.layer]!.readFile(r, max);
  }

  async readdir(p: string): Promise<string[] | undefined> {
    const r = await this.resolve(p);
    if (r === undefined) return undefined;
    const seen = new Set<string>();
    const hidden = new Set<string>();
    let any = false;
    for (const layer of this.#layers) {
      const names = await layer.readdir(r);
      if (names === undefined) continue;
      any = true;
      let opaque = false;
      for (const n of names) {
        if (n === '.wh..wh..opq') opaque = true;
        else if (n.startsWith('.wh.')) hidden.add(n.slice(4));
        else if (!hidden.has(n)) seen.add(n);
        if (seen.size > this.#limits.maxDirEntries) throw new TooLargeError(`${p} has more than ${this.#limits.maxDirEntries} entries`);
      }
      if (opaque) break;
    }
    return any ? [...seen] : undefined;
  }

  async open(p: string): Promise<ByteSource | undefined> {
    const r = await this.resolve(p);
    if (r === undefined) return undefined;
    const f = await this.#find(r);
    return f === undefined ? undefined : this.#layers[f.layer]!.open(r);
  }

  close(): void {}
}
