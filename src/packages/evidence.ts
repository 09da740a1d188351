import { parsePurl } from './purl';

/**
 * The `attribution` field of a chunk predicate (docs/format.md, "Attribution"): what the
 * collector learned of each container and of the package owning each file the chunk's
 * records name, signed and chained with the chunk.
 */

export type AttributionVia = 'dpkg' | 'python-record' | 'npm' | 'go-buildinfo' | 'jar-pom' | 'jar-manifest';
export const ATTRIBUTION_VIAS: readonly AttributionVia[] = ['dpkg', 'python-record', 'npm', 'go-buildinfo', 'jar-pom', 'jar-manifest'];

export type AttributionRoot = 'host' | 'proc-root' | 'image-layers';
export const ATTRIBUTION_ROOTS: readonly AttributionRoot[] = ['host', 'proc-root', 'image-layers'];

/** Why a file has no purl; counted in `reasons`. */
export type UnknownReason =
  | 'not_owned' | 'no_database' | 'no_os_release' | 'db_malformed' | 'db_too_large' | 'root_gone'
  | 'unreadable' | 'not_found' | 'queue_full' | 'timeout' | 'not_resolved';
export const UNKNOWN_REASONS: readonly UnknownReason[] = [
  'db_malformed', 'db_too_large', 'no_database', 'no_os_release', 'not_found', 'not_owned', 'not_resolved', 'queue_full', 'root_gone', 'timeout', 'unreadable',
];

export interface FileAttribution {
  /** `host`, or the records' `container_id` */
  scope: string;
  /** the record's path, as written in the record */
  path: string;
  purl: string | null;
  via: AttributionVia | null;
  root: AttributionRoot | null;
  reason: UnknownReason | null;
  /** embedded components the file declares itself (Go build info), sorted, at most MAX_COMPONENTS */
  components: string[];
}

export interface ContainerImageFacts {
  names: string[];
  digest: string | null;
  digest_basis: 'manifest' | 'image_id' | null;
  id: string | null;
}

export interface ContainerFacts {
  container_id: string;
  runtime: string;
  id: string;
  names: string[];
  image: ContainerImageFacts;
  reason: string | null;
}

export interface ChunkAttribution {
  containers: ContainerFacts[];
  files: FileAttribution[];
  /** distinct (scope, path) of the chunk not listed in files */
  omitted: number;
  /** files entries per reason; keys sorted */
  reasons: Record<string, number>;
}

export const HOST_SCOPE = 'host';
export const MAX_COMPONENTS = 256;

/** compareUtf16 is the order of keys in canonical JSON (and of scopes and paths here). */
export function compareUtf16(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function fileKey(scope: string, path: string): string {
  return `${scope}\u0000${path}`;
}

/** The subjects one record gives: its scope, the path fields attributions are kept for, its container. */
export interface RecordSubjects {
  scope: string;
  paths: string[];
  containerId?: string;
  imageDigest?: string;
}

/** subjectsOf reads a record (as parsed JSON) for the attribution check. */
export function subjectsOf(rec: { container_id?: unknown; image_digest?: unknown; event?: unknown }): RecordSubjects {
  const ev = (rec.event ?? {}) as Record<string, unknown>;
  const containerId = typeof rec.container_id === 'string' ? rec.container_id : undefined;
  const out: RecordSubjects = { scope: containerId ?? HOST_SCOPE, paths: [] };
  if (containerId !== undefined) out.containerId = containerId;
  if (typeof rec.image_digest === 'string') out.imageDigest = rec.image_digest;
  const p = attributedPath(ev);
  if (p !== undefined) out.paths.push(p);
  return out;
}

/** attributedPath: file_open.path, process_exec.filename, function_call.library. */
export function attributedPath(ev: Record<string, unknown>): string | undefined {
  const v = ev.type === 'file_open' ? ev.path : ev.type === 'process_exec' ? ev.filename : ev.type === 'function_call' ? ev.library : undefined;
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** AttributionSubjects accumulates what a chunk's records need attributed (verify side). */
export class AttributionSubjects {
  readonly files = new Set<string>();
  readonly containers = new Map<string, Set<string | undefined>>();

  add(s: RecordSubjects): void {
    for (const p of s.paths) this.files.add(fileKey(s.scope, p));
    if (s.containerId !== undefined) {
      let d = this.containers.get(s.containerId);
      if (d === undefined) this.containers.set(s.containerId, (d = new Set()));
      d.add(s.imageDigest);
    }
  }
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function strArray(v: unknown, what: string, problems: string[]): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    problems.push(`${what} is not an array of strings`);
    return [];
  }
  for (let i = 1; i < v.length; i++) {
    if (compareUtf16(v[i - 1] as string, v[i] as string) >= 0) {
      problems.push(`${what} is not sorted and unique`);
      break;
    }
  }
  return v as string[];
}

function exactKeys(o: Record<string, unknown>, keys: string[], what: string, problems: string[]): boolean {
  const have = Object.keys(o).sort();
  const want = [...keys].sort();
  if (have.length !== want.length || have.some((k, i) => k !== want[i])) {
    problems.push(`${what} has fields [${have.join(',')}], expected [${want.join(',')}]`);
    return false;
  }
  return true;
}

function count(v: unknown): v is number | bigint {
  return (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) || (typeof v === 'bigint' && v >= 0n);
}

/**
 * checkAttribution checks an `attribution` value against the chunk's records: shape, order,
 * exactly one container entry per container id of the records (with the records' image
 * digest), exactly one file entry per distinct (scope, path) except `omitted` of them, purl
 * syntax, and that `reasons` counts the entries. Returns problems (empty: valid).
 */
export function checkAttribution(value: unknown, seen: AttributionSubjects): string[] {
  const problems: string[] = [];
  if (!isObj(value)) return ['attribution is not an object'];
  if (!exactKeys(value, ['containers', 'files', 'omitted', 'reasons'], 'attribution', problems)) return problems;
  if (!Array.isArray(value.containers) || !Array.isArray(value.files)) return ['attribution containers/files are not arrays'];
  if (!count(value.omitted)) problems.push('attribution.omitted is not a non-negative integer');
  // containers
  let prev: string | undefined;
  const listed = new Set<string>();
  for (const [i, c] of value.containers.entries()) {
    const w = `attribution.containers[${i}]`;
    if (!isObj(c)) {
      problems.push(`${w} is not an object`);
      continue;
    }
    if (!exactKeys(c, ['container_id', 'runtime', 'id', 'names', 'image', 'reason'], w, problems)) continue;
    if (typeof c.container_id !== 'string' || typeof c.runtime !== 'string' || typeof c.id !== 'string' || c.container_id !== `${c.runtime}://${c.id}`) {
      problems.push(`${w}: container_id must be runtime://id`);
      continue;
    }
    if (prev !== undefined && compareUtf16(prev, c.container_id) >= 0) problems.push(`${w}: containers not sorted by container_id, or listed twice`);
    prev = c.container_id;
    listed.add(c.container_id);
    strArray(c.names, `${w}.names`, problems);
    if (c.reason !== null && typeof c.reason !== 'string') problems.push(`${w}.reason is neither null nor a string`);
    const img = c.image;
    if (!isObj(img) || !exactKeys(img, ['names', 'digest', 'digest_basis', 'id'], `${w}.image`, problems)) continue;
    strArray(img.names, `${w}.image.names`, problems);
    if (img.digest !== null && !(typeof img.digest === 'string' && DIGEST.test(img.digest))) problems.push(`${w}.image.digest is not sha256:<hex> or null`);
    if (img.id !== null && !(typeof img.id === 'string' && DIGEST.test(img.id))) problems.push(`${w}.image.id is not sha256:<hex> or null`);
    if (!(img.digest_basis === null || img.digest_basis === 'manifest' || img.digest_basis === 'image_id')) problems.push(`${w}.image.digest_basis is invalid`);
    if ((img.digest === null) !== (img.digest_basis === null)) problems.push(`${w}.image: digest and digest_basis must both be null or both set`);
    const digests = seen.containers.get(c.container_id);
    if (digests === undefined) problems.push(`${w}: container ${c.container_id} has no record in the chunk`);
    else {
      for (const d of digests) {
        if (d !== undefined && d !== img.digest) problems.push(`${w}: records of ${c.container_id} carry image_digest ${d}, the facts say ${String(img.digest)}`);
      }
    }
  }
  for (const id of seen.containers.keys()) if (!listed.has(id)) problems.push(`attribution.containers lacks ${id}, which records of the chunk carry`);
  // files
  let prevKey: string | undefined;
  let missing = seen.files.size;
  const reasons: Record<string, number> = {};
  for (const [i, f] of value.files.entries()) {
    const w = `attribution.files[${i}]`;
    if (!isObj(f)) {
      problems.push(`${w} is not an object`);
      continue;
    }
    if (!exactKeys(f, ['scope', 'path', 'purl', 'via', 'root', 'reason', 'components'], w, problems)) continue;
    if (typeof f.scope !== 'string' || typeof f.path !== 'string') {
      problems.push(`${w}: scope and path must be strings`);
      continue;
    }
    const key = fileKey(f.scope, f.path);
    if (prevKey !== undefined && compareUtf16(prevKey, key) >= 0) problems.push(`${w}: files not sorted by scope then path, or listed twice`);
    prevKey = key;
    if (!seen.files.has(key)) problems.push(`${w}: (${f.scope}, ${f.path}) is named by no record of the chunk`);
    else missing--;
    if (f.scope !== HOST_SCOPE && !seen.containers.has(f.scope)) problems.push(`${w}: scope ${f.scope} is no container of the chunk`);
    if (f.purl === null) {
      if (typeof f.reason !== 'string' || !(UNKNOWN_REASONS as readonly string[]).includes(f.reason)) problems.push(`${w}: no purl and no known reason`);
      else reasons[f.reason] = (reasons[f.reason] ?? 0) + 1;
      if (f.via !== null) problems.push(`${w}: via without a purl`);
    } else {
      if (typeof f.purl !== 'string' || parsePurl(f.purl) === undefined) problems.push(`${w}: purl ${String(f.purl)} does not parse`);
      if (f.reason !== null) problems.push(`${w}: both a purl and a reason`);
      if (typeof f.via !== 'string' || !(ATTRIBUTION_VIAS as readonly string[]).includes(f.via)) problems.push(`${w}: unknown via ${String(f.via)}`);
    }
    if (f.root !== null && !(ATTRIBUTION_ROOTS as readonly string[]).includes(f.root as string)) problems.push(`${w}: unknown root ${String(f.root)}`);
    const comps = strArray(f.components, `${w}.components`, problems);
    if (comps.length > MAX_COMPONENTS) problems.push(`${w}: more than ${MAX_COMPONENTS} components`);
    for (const c of comps) if (parsePurl(c) === undefined) problems.push(`${w}: component ${c} does not parse`);
  }
  if (count(value.omitted) && BigInt(value.omitted) !== BigInt(missing)) {
    problems.push(`attribution.omitted is ${value.omitted} but ${missing} of the chunk's ${seen.files.size} (scope, path) are not listed`);
  }
  const rs = value.reasons;
  if (!isObj(rs)) problems.push('attribution.reasons is not an object');
  else {
    const keys = Object.keys(rs);
    const want = Object.keys(reasons).sort();
    if (keys.length !== want.length || !want.every((k) => count(rs[k]) && BigInt(rs[k] as number) === BigInt(reasons[k]!))) {
      problems.push(`attribution.reasons ${JSON.stringify(Object.fromEntries(keys.map((k) => [k, String(rs[k])])))} does not count the files entries ${JSON.stringify(reasons)}`);
    }
  }
  return problems;
}

/** findContainersByName returns the facts whose names (or id prefix) match NAME (for --container after --rm). */
export function findContainersByName(list: readonly ContainerFacts[], name: string): ContainerFacts[] {
  return list.filter((c) => c.names.includes(name) || (name.length >= 3 && /^[a-f0-9]+$/.test(name) && c.id.startsWith(name)) || c.container_id === name);
}
