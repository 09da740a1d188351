import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path/posix';
import { PackageURL } from 'packageurl-js';
import { canonicalSymbol } from '../symbolize/canonical';
import { ComponentResolver } from '../symbolize/component';
import { nodeHost } from '../symbolize/host';
import { loadObject } from '../symbolize/object-file';
import { InputError } from './input';
import type { ProductKey } from './observations';
import { productKeyString } from './observations';
import type { PlanHost } from './plan';
import { parsePurl, samePackage, type ParsedPurl } from './purl';
import type { Sbom, SbomComponent } from './sbom';
import type { Ownership, Product } from './verdict';

/**
 * Host edges of plan/report: products (the host, podman images), their roots on this host,
 * package ownership from the product's dpkg database and the SBOM, ELF symbol tables.
 */

/** hostProduct is the host as a product: `urn:rtev:host:<machine-id>` (docs/reachability.md). */
export function hostProduct(machineId?: string, hostname?: string): Product {
  const id = machineId ?? readTrim('/etc/machine-id') ?? 'unknown';
  return { key: { kind: 'host' }, id: `urn:rtev:host:${id}`, name: hostname ?? readTrim('/etc/hostname') ?? 'host', containers: [] };
}

/**
 * resolveInRoot follows symlinks of `p` inside `root` (absolute targets restart at the root,
 * `..` stops at it), so an image's `/lib/x -> /usr/lib/x` never resolves to the host's file.
 */
export function resolveInRoot(root: string, p: string): string | undefined {
  if (root === '') return p;
  const todo = p.split('/').filter((x) => x !== '' && x !== '.');
  const done: string[] = [];
  for (let hops = 0; todo.length > 0;) {
    const part = todo.shift()!;
    if (part === '..') {
      done.pop();
      continue;
    }
    const cur = '/' + [...done, part].join('/');
    let st: fs.Stats;
    try {
      st = fs.lstatSync(root + cur);
    } catch {
      return undefined;
    }
    if (!st.isSymbolicLink()) {
      done.push(part);
      continue;
    }
    if (++hops > 40) return undefined;
    const target = fs.readlinkSync(root + cur);
    if (target.startsWith('/')) done.length = 0;
    todo.unshift(...target.split('/').filter((x) => x !== '' && x !== '.'));
  }
  return '/' + done.join('/');
}

function isLink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function readTrim(f: string): string | undefined {
  try {
    const s = fs.readFileSync(f, 'utf8').trim();
    return s === '' ? undefined : s;
  } catch {
    return undefined;
  }
}

export interface ImageInfo {
  ref: string;
  id: string;
  digest: string;
  names: string[];
  product: Product;
}

/**
 * inspectImage asks podman for an image (name, id or digest). The product id is the purl-spec
 * OCI form: `pkg:oci/<last path segment, lowercased>@sha256:<manifest digest>?repository_url=...&tag=...`;
 * the digest is the one records carry in image_digest (docs/containers.md).
 */
export function inspectImage(ref: string): ImageInfo {
  let out: string;
  try {
    out = execFileSync('podman', ['image', 'inspect', '--format', 'json', ref], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (err) {
    const msg = String((err as { stderr?: string }).stderr ?? (err as Error).message).trim().split('\n').pop();
    throw new InputError(`--image ${ref}: podman image inspect failed: ${msg}`, "name a local image ('podman images'), by name, id or digest");
  }
  const info = (JSON.parse(out) as Array<Record<string, unknown>>)[0];
  if (info === undefined) throw new InputError(`--image ${ref}: podman knows no such image`);
  const id = String(info['Id']);
  const digest = String(info['Digest'] ?? '');
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new InputError(`--image ${ref}: podman reports no manifest digest`);
  const names = (Array.isArray(info['RepoTags']) ? info['RepoTags'] : []).map(String);
  const first = names[0] ?? ref;
  const m = /^(.*?)(?::([^:/]+))?$/.exec(first)!;
  const repo = m[1]!;
  const tag = m[2];
  const last = repo.split('/').pop()!.toLowerCase();
  const qualifiers: Record<string, string> = { repository_url: repo };
  if (tag !== undefined) qualifiers['tag'] = tag;
  const purl = new PackageURL('oci', undefined, last, digest, qualifiers, undefined).toString();
  return { ref, id, digest, names, product: { key: { kind: 'image', digest }, id: purl, name: first, containers: [] } };
}

/** imageRoot mounts the image read-only with `podman image mount` (it stays mounted for collect). */
export function imageRoot(image: ImageInfo): string {
  try {
    return execFileSync('podman', ['image', 'mount', image.id], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 }).trim();
  } catch (err) {
    const msg = String((err as { stderr?: string }).stderr ?? (err as Error).message).trim().split('\n').pop();
    throw new InputError(`--image ${image.ref}: podman image mount failed: ${msg}`, 'run as root');
  }
}

/**
 * ProductFiles implements PlanHost and Ownership over the products' roots: the package
 * database under each root (dpkg, through symbolize's ComponentResolver) and the SBOM's own
 * file lists. A file can belong to several components (a Go binary holds its modules).
 */
export class ProductFiles implements PlanHost, Ownership {
  readonly #resolver = new ComponentResolver(nodeHost);
  readonly #roots = new Map<string, string>();
  readonly #sbomFiles = new Map<string, Map<string, ParsedPurl[]>>();
  readonly #symbols = new Map<string, ReadonlySet<string> | string>();

  add(product: Product, root: string, sbom: Sbom): void {
    const k = productKeyString(product.key);
    this.#roots.set(k, root);
    const files = this.#sbomFiles.get(k) ?? new Map<string, ParsedPurl[]>();
    for (const c of sbom.components) for (const f of c.files) files.set(f, [...(files.get(f) ?? []), c.parsed]);
    this.#sbomFiles.set(k, files);
  }

  rootPrefix(product: Product): string {
    return this.#roots.get(productKeyString(product.key)) ?? '';
  }

  exists(product: Product, file: string): boolean {
    return fs.existsSync(this.rootPrefix(product) + file);
  }

  distinctFiles(product: Product, files: readonly string[]): string[] {
    const root = this.rootPrefix(product);
    const byInode = new Map<string, string>();
    const sorted = [...files].sort((a, b) => Number(isLink(root + a)) - Number(isLink(root + b)));
    for (const f of sorted) {
      let key: string;
      try {
        const real = resolveInRoot(root, f);
        if (real === undefined) continue;
        const st = fs.statSync(root + real);
        if (!st.isFile()) continue;
        key = `${st.dev}:${st.ino}`;
      } catch {
        continue;
      }
      if (!byInode.has(key)) byInode.set(key, f);
    }
    return [...byInode.values()].sort();
  }

  componentFiles(product: Product, c: SbomComponent): string[] {
    const out = new Set(c.files);
    if (c.parsed.type === 'deb') for (const f of this.#resolver.packageFiles(this.rootPrefix(product), c.parsed.name) ?? []) out.add(f);
    return [...out].sort();
  }

  symbols(hostPath: string): ReadonlySet<string> | string {
    let s = this.#symbols.get(hostPath);
    if (s === undefined) {
      try {
        const obj = loadObject(hostPath, hostPath, { host: nodeHost, root: '', debugDirs: ['/usr/lib/debug'], maxDebugInfoBytes: 256 << 20 });
        s = new Set(obj.all.map((f) => canonicalSymbol(f.go ? 'go' : 'native', f.name)));
      } catch (err) {
        s = (err as Error).message;
      }
      this.#symbols.set(hostPath, s);
    }
    return s;
  }

  owners(product: ProductKey, hostOrRootPath: string, signedPurl: string | null): ParsedPurl[] {
    const k = productKeyString(product);
    // a function_call of a probe planned on the image's mount names the file by its host path
    const root = this.#roots.get(k) ?? '';
    const file = root !== '' && hostOrRootPath.startsWith(root + '/') ? hostOrRootPath.slice(root.length) : hostOrRootPath;
    const out: ParsedPurl[] = [];
    const signed = signedPurl === null ? undefined : parsePurl(signedPurl);
    if (signed !== undefined) out.push(signed);
    for (const p of this.#sbomFiles.get(k)?.get(file) ?? []) out.push(p);
    const deb = this.#resolver.dpkgPurl(this.#roots.get(k) ?? '', file);
    const parsed = deb === undefined ? undefined : parsePurl(deb);
    if (parsed !== undefined && !out.some((o) => samePackage(o, parsed))) out.push(parsed);
    return out;
  }

  basenames(product: ProductKey, c: SbomComponent): ReadonlySet<string> {
    const asProduct: Product = { key: product, id: '', name: '', containers: [] };
    return new Set(this.componentFiles(asProduct, c).map((f) => path.basename(f)));
  }
}
