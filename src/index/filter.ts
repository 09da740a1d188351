import { EVENT_TYPES, type EventType } from '../model/record';
import { globToRegExp, globToRegex, isGlob } from '../util/glob';

/**
 * The filters of `rtev query` / `rtev summary`, as plain data, and their translation to SQL
 * for the embedded index (DuckDB) and for a PostgreSQL store with the same tables
 * (/work/coord/iface-index.md). AND across fields, OR within one field; an absent or empty
 * field does not filter. matchRecord is the same semantics in JavaScript, for sources that
 * are not indexed and for cross-checks.
 */

export interface PeerSpec {
  /** address as records write it: "127.0.0.1", "::1" */
  addr: string;
  port?: number;
}

export interface EvidenceFilter {
  types?: EventType[];
  /** inclusive, Unix time in ns (wall clock derived from the chunk's time anchors) */
  sinceWallNs?: bigint;
  /** exclusive */
  untilWallNs?: bigint;
  pids?: number[];
  /** exact comm */
  comms?: string[];
  /** globs (`*` within a component, `**` across, `?` one character) on file_open.path and process_exec.filename */
  paths?: string[];
  /** net_connect addr/port; tcp_state daddr/dport or saddr/sport */
  peers?: PeerSpec[];
  /** full container id, id prefix (>= 4 hex characters) or a name from the signed container facts */
  containers?: string[];
  /** "sha256:<64 hex>" image digest, or an image name from the signed container facts */
  images?: string[];
  /** only records outside containers (no container_id) */
  hostOnly?: boolean;
  /** function_call symbol: exact, or a glob when it contains `*` or `?` */
  symbols?: string[];
  /** function_call node_hash, exact */
  nodeHashes?: string[];
  /** purl; without `@version` any version matches */
  packages?: string[];
  /** chain ids */
  chains?: string[];
  /** hostname or machine id */
  hosts?: string[];
}

export type Dialect = 'duckdb' | 'postgres';
export type SqlParam = string | number | bigint | boolean;

export interface CompiledFilter {
  /** a boolean SQL expression over `r` (records), "TRUE" when nothing filters */
  where: string;
  params: SqlParam[];
}

const HEX_PREFIX = /^[0-9a-f]{4,64}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/**
 * purlKey splits a purl into its identity without version ("pkg:type/namespace/name", type
 * lowercased, components percent-decoded) and its decoded version (null without "@").
 * Qualifiers and subpath do not take part in matching.
 */
export function purlKey(purl: string): { base: string; version: string | null } {
  let s = purl.trim();
  const hash = s.indexOf('#');
  if (hash >= 0) s = s.slice(0, hash);
  const q = s.indexOf('?');
  if (q >= 0) s = s.slice(0, q);
  const at = s.lastIndexOf('@');
  const slash = s.lastIndexOf('/');
  let version: string | null = null;
  if (at > slash && at >= 0) {
    version = decode(s.slice(at + 1));
    s = s.slice(0, at);
  }
  const m = /^pkg:([^/]+)\/(.*)$/i.exec(s.replace(/^pkg:\/+/i, 'pkg:'));
  if (m === null) return { base: s, version };
  return { base: `pkg:${m[1]!.toLowerCase()}/${m[2]!.split('/').map(decode).join('/')}`, version };
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** compileFilter builds the WHERE expression; placeholders are $N in both dialects, from firstParam. */
export function compileFilter(f: EvidenceFilter, dialect: Dialect, firstParam = 1): CompiledFilter {
  const params: SqlParam[] = [];
  const p = (v: SqlParam): string => {
    params.push(dialect === 'postgres' && typeof v === 'bigint' ? v.toString() : v);
    return `$${firstParam + params.length - 1}`;
  };
  const i64 = (v: bigint): string => (dialect === 'postgres' ? `${p(v)}::bigint` : `${p(v)}::BIGINT`);
  const re = (col: string, regex: string): string => (dialect === 'postgres' ? `${col} ~ ${p(regex)}` : `regexp_full_match(${col}, ${p(regex)})`);
  const any = (parts: string[]): string => (parts.length === 1 ? parts[0]! : `(${parts.join(' OR ')})`);
  const inList = (col: string, values: SqlParam[]): string => any(values.map((v) => `${col} = ${p(v)}`));
  const and: string[] = [];

  if (f.types !== undefined && f.types.length > 0) and.push(inList('r.type', f.types));
  if (f.sinceWallNs !== undefined) and.push(`r.wall_ns >= ${i64(f.sinceWallNs)}`);
  if (f.untilWallNs !== undefined) and.push(`r.wall_ns < ${i64(f.untilWallNs)}`);
  if (f.pids !== undefined && f.pids.length > 0) and.push(inList('r.pid', f.pids));
  if (f.comms !== undefined && f.comms.length > 0) and.push(inList('r.comm', f.comms));
  if (f.paths !== undefined && f.paths.length > 0) {
    and.push(`(r.type IN ('file_open', 'process_exec') AND ${any(f.paths.map((g) => re('r.path', globToRegex(g))))})`);
  }
  if (f.peers !== undefined && f.peers.length > 0) {
    and.push(any(f.peers.map((peer) => {
      const remote = peer.port === undefined ? `r.peer_addr = ${p(peer.addr)}` : `(r.peer_addr = ${p(peer.addr)} AND r.peer_port = ${p(peer.port)})`;
      const local = peer.port === undefined ? `r.local_addr = ${p(peer.addr)}` : `(r.local_addr = ${p(peer.addr)} AND r.local_port = ${p(peer.port)})`;
      return `(r.type IN ('net_connect', 'tcp_state') AND (${remote} OR ${local}))`;
    })));
  }
  if (f.hostOnly === true) and.push('r.container_id IS NULL');
  if (f.containers !== undefined && f.containers.length > 0) {
    and.push(any(f.containers.map((c) => {
      const alts = [`r.container_id = ${p(c)}`];
      // ids are "runtime://<64 hex>": a hex prefix matches the part after "://"
      if (HEX_PREFIX.test(c)) alts.push(`r.container_id LIKE '%://' || ${p(c)} || '%'`);
      alts.push(`r.container_id IN (SELECT c.container_id FROM containers c WHERE c.name = ${p(c)})`);
      return any(alts);
    })));
  }
  if (f.images !== undefined && f.images.length > 0) {
    and.push(any(f.images.map((img) => {
      if (DIGEST.test(img)) return `r.image_digest = ${p(img)}`;
      const param = p(img);
      return `r.image_digest IN (SELECT i.image_digest FROM images i WHERE i.image_name = ${param} OR i.image_name = ${param} || ':latest' OR i.image_name LIKE '%/' || ${param} OR i.image_name LIKE '%/' || ${param} || ':latest')`;
    })));
  }
  if (f.symbols !== undefined && f.symbols.length > 0) {
    and.push(`(r.type = 'function_call' AND ${any(f.symbols.map((s) => (isGlob(s) ? re('r.symbol', globToRegex(s, { flat: true })) : `r.symbol = ${p(s)}`)))})`);
  }
  if (f.nodeHashes !== undefined && f.nodeHashes.length > 0) and.push(`(r.type = 'function_call' AND ${inList('r.node_hash', f.nodeHashes)})`);
  if (f.packages !== undefined && f.packages.length > 0) {
    const match = any(f.packages.map((purl) => {
      const k = purlKey(purl);
      return k.version === null ? `a.purl_base = ${p(k.base)}` : `(a.purl_base = ${p(k.base)} AND a.version = ${p(k.version)})`;
    }));
    // the record's own chunk attributes the path in the record's scope (its container, else the host)
    and.push(`EXISTS (SELECT 1 FROM attribution a WHERE a.chunk_id = r.chunk_id AND a.path = COALESCE(r.path, r.library) AND a.scope = COALESCE(r.container_id, 'host') AND ${match})`);
  }
  if (f.chains !== undefined && f.chains.length > 0) and.push(`r.chunk_id IN (SELECT k.chunk_id FROM chunks k WHERE ${inList('k.chain_id', f.chains)})`);
  if (f.hosts !== undefined && f.hosts.length > 0) {
    and.push(`r.chunk_id IN (SELECT k.chunk_id FROM chunks k WHERE ${any(f.hosts.map((h) => { const q = p(h); return `k.hostname = ${q} OR k.machine_id = ${q}`; }))})`);
  }
  return { where: and.length === 0 ? 'TRUE' : and.join(' AND '), params };
}

/** The record fields matchRecord looks at (a parsed canonical line). */
export interface RecordLike {
  ts_ns: bigint;
  pid: number;
  comm: string;
  container_id?: string;
  image_digest?: string;
  event: { type: string; [k: string]: unknown };
}

/** Facts matchRecord needs beyond the record (what the SQL reads from other tables). */
export interface MatchContext {
  wallNs?: bigint;
  chainId?: string;
  hostname?: string;
  machineId?: string;
  containerNames?: ReadonlyMap<string, readonly string[]>;
  imageNames?: ReadonlyMap<string, readonly string[]>;
  /** purl owning a path in a scope ('host' or a container id) */
  purlOf?: (scope: string, path: string) => string | undefined;
}

/** matchRecord applies a filter in JavaScript, with the semantics of compileFilter. */
export function matchRecord(f: EvidenceFilter, r: RecordLike, ctx: MatchContext = {}): boolean {
  const e = r.event;
  const path = e.type === 'file_open' ? (e['path'] as string) : e.type === 'process_exec' ? (e['filename'] as string) : undefined;
  const owned = path ?? (e.type === 'function_call' ? (e['library'] as string | undefined) : undefined);
  if (f.types?.length && !f.types.includes(e.type as EventType)) return false;
  if (f.sinceWallNs !== undefined && (ctx.wallNs === undefined || ctx.wallNs < f.sinceWallNs)) return false;
  if (f.untilWallNs !== undefined && (ctx.wallNs === undefined || ctx.wallNs >= f.untilWallNs)) return false;
  if (f.pids?.length && !f.pids.includes(r.pid)) return false;
  if (f.comms?.length && !f.comms.includes(r.comm)) return false;
  if (f.paths?.length && (path === undefined || !f.paths.some((g) => globToRegExp(g).test(path)))) return false;
  if (f.peers?.length) {
    const [ra, rp, la, lp] = e.type === 'net_connect' ? [e['addr'], e['port'], undefined, undefined] : e.type === 'tcp_state' ? [e['daddr'], e['dport'], e['saddr'], e['sport']] : [];
    if (ra === undefined && la === undefined) return false;
    if (!f.peers.some((peer) => (ra === peer.addr && (peer.port === undefined || rp === peer.port)) || (la === peer.addr && (peer.port === undefined || lp === peer.port)))) return false;
  }
  if (f.hostOnly === true && r.container_id !== undefined) return false;
  if (f.containers?.length) {
    const id = r.container_id;
    if (id === undefined) return false;
    if (!f.containers.some((c) => id === c || (HEX_PREFIX.test(c) && id.slice(id.indexOf('://') + 3).startsWith(c)) || (ctx.containerNames?.get(id) ?? []).includes(c))) return false;
  }
  if (f.images?.length) {
    const d = r.image_digest;
    if (d === undefined) return false;
    const names = ctx.imageNames?.get(d) ?? [];
    if (!f.images.some((img) => (DIGEST.test(img) ? d === img : names.some((name) => name === img || name === `${img}:latest` || name.endsWith(`/${img}`) || name.endsWith(`/${img}:latest`))))) return false;
  }
  if (f.symbols?.length) {
    if (e.type !== 'function_call' || typeof e['symbol'] !== 'string') return false;
    const s = e['symbol'];
    if (!f.symbols.some((g) => (isGlob(g) ? globToRegExp(g, { flat: true }).test(s) : g === s))) return false;
  }
  if (f.nodeHashes?.length && (e.type !== 'function_call' || !f.nodeHashes.includes(e['node_hash'] as string))) return false;
  if (f.packages?.length) {
    if (owned === undefined) return false;
    const purl = ctx.purlOf?.(r.container_id ?? 'host', owned);
    const have = purl === undefined ? undefined : purlKey(purl);
    if (have === undefined || !f.packages.some((want) => { const k = purlKey(want); return k.base === have.base && (k.version === null || k.version === have.version); })) return false;
  }
  if (f.chains?.length && (ctx.chainId === undefined || !f.chains.includes(ctx.chainId))) return false;
  if (f.hosts?.length && !f.hosts.some((h) => h === ctx.hostname || h === ctx.machineId)) return false;
  return true;
}

/** checkTypes refuses unknown event types (a usage error in the CLI). */
export function unknownTypes(types: readonly string[]): string[] {
  return types.filter((t) => !(EVENT_TYPES as readonly string[]).includes(t));
}
