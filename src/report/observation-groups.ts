import type { ChunkFailure } from '../index/index';
import { retentionLines, type Coverage, type FunctionCount } from '../index/summary';
import type { ActivityBucket, CoverageFacts, EvidenceRef, FunctionHit, FunctionProbe, LoadedFile, Observations, ObservedProduct, ProductKey } from './observations';
import { productKeyString } from './observations';

/**
 * The report's observations assembled from grouped records, the same way for every backend
 * (/work/coord/iface-observations.md): the directory's DuckDB index (src/report/index-observations.ts,
 * one group per chunk from its per-chunk aggregates) and the fleet's PostgreSQL index
 * (src/fleet/observations.ts, one group per GROUP BY). A backend gives groups of verified
 * records, already resolved to their product; groups with the same key may come split in any
 * way (per chunk, per host) and are merged here: counts summed, first/last as min/max, the
 * earliest references kept. Everything here is pure and exact: the result is the same as if
 * the records themselves had been grouped once.
 */

/**
 * Verified file_open / process_exec / function_call records of one product with
 * COALESCE(path, library) = path, in one scope (COALESCE(container_id, 'host')). `purl`: the
 * smallest signed attribution purl for (scope, path) over all chunks, null if none; `ref`: the
 * earliest record of the group in refOrder.
 */
export interface FileGroup extends LoadedFile {
  /** productKeyString: 'host' or the image digest */
  product: string;
  scope: string;
}

/**
 * Verified function_call records (with symbol and library) of one product and (library,
 * symbol, node_hash); `refs`: at least the 5 earliest records of the group in refOrder (more
 * is fine). The stack is read by the assembly.
 */
export interface HitGroup extends Omit<FunctionHit, 'stack'> {
  product: string;
}

/** Verified records of one product, type and wall-clock second (floor(wall_ns / 1e9)). */
export interface ActivityGroup {
  product: string;
  second: bigint;
  type: string;
  records: bigint;
}

/** Verified records per product and container (product null: a container whose image is unknown). */
export interface ProductGroup {
  product: string | null;
  containerId: string | null;
  records: bigint;
}

/** What a backend answers: grouped aggregates, never records (except one line per function hit for its stack). */
export interface ObservationSource {
  coverage(): Promise<CoverageFacts>;
  functionProbes(): Promise<FunctionProbe[]>;
  productGroups(): Promise<ProductGroup[]>;
  /** image digest -> image names */
  imageNames(): Promise<Map<string, string[]>>;
  fileGroups(): Promise<FileGroup[]>;
  hitGroups(): Promise<HitGroup[]>;
  /**
   * activity groups over the window: one per (product, type, second), or coarser where the
   * seconds merged fall into the same bucket of the window (activityBucket); `second` is then
   * any second of the group
   */
  activityGroups(window: ActivityWindow): Promise<ActivityGroup[]>;
  /** the original line of a referenced record */
  line(ref: EvidenceRef): Promise<string | undefined>;
}

/** The window activity() slices: n buckets over [from, to]. */
export interface ActivityWindow {
  from: bigint;
  to: bigint;
  n: number;
}

/** The earliest references a function hit keeps. */
export const HIT_REFS = 5;
export const NS_PER_SECOND = 1_000_000_000n;

const cmp = <T extends bigint | number | string>(a: T, b: T): number => (a < b ? -1 : a > b ? 1 : 0);

/** refOrder: earliest first, by wall_ns, then chain id (code points), seq and line. */
export function refOrder(a: EvidenceRef, b: EvidenceRef): number {
  return cmp(a.wallNs, b.wallNs) || cmp(a.chainId, b.chainId) || cmp(a.seq, b.seq) || a.lineNo - b.lineNo;
}

/**
 * refFromRow reads an EvidenceRef from a database row with the column names of both stores
 * (chain_id, seq, chunk_sha256, line_no, ts_ns, wall_ns, pid, comm, container_id, image_digest);
 * u64 values may come as bigint, number or decimal string.
 */
export function refFromRow(x: Record<string, unknown>): EvidenceRef {
  const big = (v: unknown): bigint => (typeof v === 'bigint' ? v : BigInt((v as string | number | null) ?? 0));
  const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  return {
    chainId: str(x['chain_id']) ?? '', seq: big(x['seq']), chunkSha256: str(x['chunk_sha256']) ?? '', lineNo: Number(x['line_no']),
    tsNs: big(x['ts_ns']), wallNs: big(x['wall_ns']), pid: Number(x['pid']), comm: str(x['comm']) ?? '',
    containerId: str(x['container_id']), imageDigest: str(x['image_digest']),
  };
}

/** floorSecond: floor(wallNs / 1e9), also below 0. */
export function floorSecond(wallNs: bigint): bigint {
  const q = wallNs / NS_PER_SECOND;
  return wallNs < 0n && q * NS_PER_SECOND !== wallNs ? q - 1n : q;
}

/**
 * activityBucket: the bucket of a record of the given wall-clock second among n equal slices of
 * [from, to]: clamp(floor((second * 1e9 - from) * n / span), 0, n - 1), span = max(to - from, 1).
 */
export function activityBucket(second: bigint, from: bigint, to: bigint, n: number): number {
  const span = to - from > 0n ? to - from : 1n;
  const d = second * NS_PER_SECOND - from;
  if (d <= 0n) return 0;
  const b = (d * BigInt(n)) / span;
  return b >= BigInt(n) ? n - 1 : Number(b);
}

export function emptyBuckets(from: bigint, to: bigint, n: number): ActivityBucket[] {
  const span = to - from > 0n ? to - from : 1n;
  return Array.from({ length: n }, (_, i) => ({ startWallNs: from + (span * BigInt(i)) / BigInt(n), counts: {} }));
}

/** activityOf buckets the activity groups of every product over the window. */
export function activityOf(groups: Iterable<ActivityGroup>, from: bigint, to: bigint, n: number): Map<string, ActivityBucket[]> {
  const acc = new Map<string, Map<string, bigint>[]>();
  for (const g of groups) {
    let per = acc.get(g.product);
    if (per === undefined) acc.set(g.product, (per = Array.from({ length: n }, () => new Map<string, bigint>())));
    const m = per[activityBucket(g.second, from, to, n)]!;
    m.set(g.type, (m.get(g.type) ?? 0n) + g.records);
  }
  const out = new Map<string, ActivityBucket[]>();
  for (const [product, per] of acc) {
    const buckets = emptyBuckets(from, to, n);
    per.forEach((m, i) => {
      for (const [type, c] of [...m].sort((a, b) => cmp(a[0], b[0]))) buckets[i]!.counts[type] = Number(c);
    });
    out.set(product, buckets);
  }
  return out;
}

/** loadedFilesOf merges file groups per (product, path); each product's list is in path order. */
export function loadedFilesOf(groups: Iterable<FileGroup>): Map<string, LoadedFile[]> {
  const acc = new Map<string, Map<string, LoadedFile>>();
  for (const g of groups) {
    let per = acc.get(g.product);
    if (per === undefined) acc.set(g.product, (per = new Map()));
    const f = per.get(g.path);
    if (f === undefined) {
      per.set(g.path, { path: g.path, purl: g.purl, records: g.records, firstWallNs: g.firstWallNs, lastWallNs: g.lastWallNs, ref: g.ref });
      continue;
    }
    f.records += g.records;
    if (g.firstWallNs < f.firstWallNs) f.firstWallNs = g.firstWallNs;
    if (g.lastWallNs > f.lastWallNs) f.lastWallNs = g.lastWallNs;
    if (g.purl !== null && (f.purl === null || g.purl < f.purl)) f.purl = g.purl;
    if (refOrder(g.ref, f.ref) < 0) f.ref = g.ref;
  }
  const out = new Map<string, LoadedFile[]>();
  for (const [product, per] of acc) out.set(product, [...per.values()].sort((a, b) => cmp(a.path, b.path)));
  return out;
}

/** functionHitsOf merges hit groups per (product, library, symbol, node_hash), keeps the 5 earliest refs and reads the first one's stack. */
export async function functionHitsOf(groups: Iterable<HitGroup>, line: (ref: EvidenceRef) => Promise<string | undefined>): Promise<Map<string, FunctionHit[]>> {
  const acc = new Map<string, Map<string, FunctionHit>>();
  for (const g of groups) {
    let per = acc.get(g.product);
    if (per === undefined) acc.set(g.product, (per = new Map()));
    const key = `${g.library}\0${g.symbol}\0${g.nodeHash ?? '\u0001'}`;
    const h = per.get(key);
    if (h === undefined) {
      per.set(key, { library: g.library, symbol: g.symbol, nodeHash: g.nodeHash, runtime: g.runtime, records: g.records, firstWallNs: g.firstWallNs, lastWallNs: g.lastWallNs, refs: earliest(g.refs), stack: [] });
      continue;
    }
    h.records += g.records;
    if (g.firstWallNs < h.firstWallNs) h.firstWallNs = g.firstWallNs;
    if (g.lastWallNs > h.lastWallNs) h.lastWallNs = g.lastWallNs;
    if (g.runtime < h.runtime) h.runtime = g.runtime;
    h.refs = earliest([...h.refs, ...g.refs]);
  }
  const out = new Map<string, FunctionHit[]>();
  for (const [product, per] of acc) {
    // library, symbol, then node_hash with null first
    const list = [...per.values()].sort((a, b) => cmp(a.library, b.library) || cmp(a.symbol, b.symbol) || cmpNullFirst(a.nodeHash, b.nodeHash));
    for (const h of list) h.stack = h.refs[0] === undefined ? [] : stackOf(await line(h.refs[0]));
    out.set(product, list);
  }
  return out;
}

function cmpNullFirst(a: string | null, b: string | null): number {
  return a === b ? 0 : a === null ? -1 : b === null ? 1 : cmp(a, b);
}

function earliest(refs: EvidenceRef[]): EvidenceRef[] {
  return [...refs].sort(refOrder).slice(0, HIT_REFS);
}

/** productsOf lists the products with their containers and image names (containers without a known image are left out). */
export function productsOf(groups: Iterable<ProductGroup>, imageNames: Map<string, string[]>): ObservedProduct[] {
  const acc = new Map<string, { records: bigint; containers: Set<string> }>();
  for (const g of groups) {
    if (g.product === null) continue;
    let p = acc.get(g.product);
    if (p === undefined) acc.set(g.product, (p = { records: 0n, containers: new Set() }));
    p.records += g.records;
    if (g.containerId !== null) p.containers.add(g.containerId);
  }
  return [...acc].sort((a, b) => cmp(a[0], b[0])).map(([k, p]) => ({
    key: k === 'host' ? { kind: 'host' } : { kind: 'image', digest: k },
    containers: [...p.containers].sort(), imageNames: [...(imageNames.get(k) ?? [])].sort(), records: p.records,
  }));
}

/**
 * coverageFacts turns the index coverage (src/index/summary.ts coverageOf, the same for both
 * backends) into the report's: a chain whose last chunk is not final is still being written
 * (or the collector was killed, which a later run records as an unclean restart), so that is
 * not a gap; failures are every chunk that failed verification, once per file.
 */
export function coverageFacts(c: Coverage, failed: ChunkFailure[]): CoverageFacts {
  const hosts = new Map<string, { hostname: string; machineId: string }>();
  for (const ch of c.chains) hosts.set(`${ch.hostname}\0${ch.machineId}`, { hostname: ch.hostname, machineId: ch.machineId });
  const gaps = c.chains.flatMap((ch) => ch.gaps.filter((g) => !/ is not final: /.test(g)).map((g) => `chain ${ch.chainId.slice(0, 8)}: ${g}`));
  const failures = new Map<string, string>();
  for (const f of failed) if (!failures.has(f.file)) failures.set(f.file, f.reason);
  const retention = c.chains.flatMap((ch) => retentionLines(ch).map((l) => `chain ${ch.chainId.slice(0, 8)}: ${l}`));
  return {
    ...(retention.length > 0 ? { retention } : {}),
    fromWallNs: c.fromWallNs, toWallNs: c.toWallNs, chunks: c.chunks, records: c.records, lost: c.lost,
    probes: c.probes.map((p) => ({ probe: p.probe, chunks: p.chunks, lost: p.lost, ...(p.notObserved !== undefined ? { notObserved: p.notObserved } : {}) })),
    gaps, unverifiedChunks: failures.size,
    failures: [...failures].map(([file, reason]) => `${file}: ${reason}`),
    hosts: [...hosts.values()],
  };
}

export function functionProbesOf(counts: FunctionCount[]): FunctionProbe[] {
  return counts.map((f) => ({ function: f.function, symbol: f.symbol, nodeHash: f.nodeHash, calls: f.calls, chunks: f.chunks }));
}

/** stackOf reads event.stack (frame addresses as strings) from a record line. */
export function stackOf(line: string | null | undefined): string[] {
  if (line === null || line === undefined) return [];
  try {
    const rec = JSON.parse(line) as { event?: { stack?: unknown } };
    return Array.isArray(rec.event?.stack) ? rec.event.stack.slice(0, 256).map(String) : [];
  } catch {
    return [];
  }
}

/** groupedObservations answers the report's questions from a source's groups, each question asked once for all products. */
export function groupedObservations(src: ObservationSource): Observations {
  let coverage: Promise<CoverageFacts> | undefined;
  let files: Promise<Map<string, LoadedFile[]>> | undefined;
  let hits: Promise<Map<string, FunctionHit[]>> | undefined;
  const buckets = new Map<number, Promise<Map<string, ActivityBucket[]>>>();
  const cov = (): Promise<CoverageFacts> => (coverage ??= src.coverage());
  return {
    coverage: cov,
    functionProbes: () => src.functionProbes(),
    products: async () => productsOf(await src.productGroups(), await src.imageNames()),
    loadedFiles: async (p: ProductKey) => (await (files ??= src.fileGroups().then(loadedFilesOf))).get(productKeyString(p)) ?? [],
    functionHits: async (p: ProductKey) => (await (hits ??= src.hitGroups().then((g) => functionHitsOf(g, (r) => src.line(r))))).get(productKeyString(p)) ?? [],
    activity: async (p: ProductKey, n: number) => {
      const c = await cov();
      if (c.fromWallNs === null || c.toWallNs === null || n <= 0) return [];
      const from = c.fromWallNs;
      const to = c.toWallNs;
      let all = buckets.get(n);
      if (all === undefined) buckets.set(n, (all = src.activityGroups({ from, to, n }).then((g) => activityOf(g, from, to, n))));
      return (await all).get(productKeyString(p)) ?? emptyBuckets(from, to, n);
    },
  };
}
