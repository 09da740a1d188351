import * as path from 'node:path';
import type { VerifyKey } from '../sign/keys';
import { readDirCheckpoint, type RetentionCheckpoint } from './checkpoints';
import { compileFilter, type EvidenceFilter } from './filter';
import { globToRegExp, isGlob } from '../util/glob';
import type { EvidenceIndex } from './index';

/**
 * What `rtev summary` answers: per image (and for the host) which programs ran, which
 * libraries were loaded, which files were written, which peers were contacted, how many TLS
 * bytes each process moved and which probed functions ran; and the coverage of the window,
 * so that "not seen" can be told from "not recorded".
 */

export interface Seen {
  count: bigint;
  firstWallNs: bigint | null;
  lastWallNs: bigint | null;
}

export interface PathSeen extends Seen {
  path: string;
  /** package purls owning the path in this scope (signed attribution); [] when unattributed */
  packages: string[];
}

export interface PeerSeen extends Seen {
  addr: string;
  port: number | null;
  via: string[];
}

export interface TlsSeen extends Seen {
  pid: number;
  comm: string;
  readBytes: bigint;
  writeBytes: bigint;
}

export interface FunctionSeen extends Seen {
  symbol: string | null;
  library: string | null;
  nodeHash: string | null;
}

export interface ScopeSummary {
  /** "host", or the image digest of container records (the container id when no digest is known) */
  scope: string;
  kind: 'host' | 'image' | 'container';
  imageNames: string[];
  containers: { containerId: string; names: string[] }[];
  records: bigint;
  executables: PathSeen[];
  libraries: PathSeen[];
  filesWritten: PathSeen[];
  peers: PeerSeen[];
  tls: TlsSeen[];
  /** function_call records (first-seen mode keeps one per window: see exact counts below) */
  functions: FunctionSeen[];
}

export interface FunctionCount {
  function: string;
  symbol: string;
  nodeHash: string | null;
  library: string;
  packages: string[];
  calls: bigint;
  emitted: bigint;
  suppressed: bigint;
  /** chunks of the window whose predicate lists the function */
  chunks: number;
  /** wall-clock window of the chunks in which it was called (calls > 0) */
  firstWallNs: bigint | null;
  lastWallNs: bigint | null;
}

export interface ProbeCoverage {
  probe: string;
  chunks: number;
  submitted: bigint;
  inChunk: bigint;
  ringFull: bigint;
  lost: bigint;
  /** classes of its events some chunks say the probe did not observe (ledger `not_observed`), as text; absent: none */
  notObserved?: string[];
}

export interface ChainCoverage {
  chainId: string;
  hostname: string;
  machineId: string;
  firstSeq: bigint;
  lastSeq: bigint;
  chunks: number;
  /**
   * missing sequence numbers, seqs deleted by retention (checkpointed) inside the window, broken
   * links, unclean restarts, a chain still open
   */
  gaps: string[];
  /**
   * the chain from seq 1 to its last indexed seq, every seq once: in the index (verified or
   * not), deleted by retention as a signed checkpoint records (checkpointed), or missing
   */
  account: { throughSeq: bigint; indexed: bigint; checkpointed: bigint; missing: bigint };
  /** runs of seqs deleted by retention, with the signed checkpoint that records them (before the window too) */
  checkpointed: CheckpointedRun[];
}

/** seqs of a chain deleted by retention, as the signed retention checkpoint sha256 (first seq checkpointFirstSeq) records */
export interface CheckpointedRun {
  fromSeq: bigint;
  throughSeq: bigint;
  checkpointSha256: string;
  checkpointFirstSeq: bigint;
}

/**
 * What signed retention checkpoints say about a chain's seqs that are not indexed (the caller
 * verified them): the seqs of each range are deleted by retention, not missing. A directory
 * gives the seqs before its checkpoint's first chunk (when that chunk is the indexed one the
 * checkpoint vouches for); the fleet index the unshipped ranges of the checkpoints ingest accepted.
 */
export interface RetentionRange {
  chainId: string;
  fromSeq: bigint;
  throughSeq: bigint;
  checkpointSha256: string;
  checkpointFirstSeq: bigint;
}

export interface Coverage {
  fromWallNs: bigint | null;
  toWallNs: bigint | null;
  chunks: number;
  records: bigint;
  lost: bigint;
  complete: boolean;
  probes: ProbeCoverage[];
  chains: ChainCoverage[];
  /** chunks in the window that failed verification (their records are not counted) */
  unverified: { file: string; reason: string }[];
}

export interface Summary {
  filter: EvidenceFilter;
  coverage: Coverage;
  scopes: ScopeSummary[];
  /** exact call counts from the chunk predicates (all processes of the host) */
  functionCalls: FunctionCount[];
}

type Row = Record<string, unknown>;

const big = (v: unknown): bigint => (typeof v === 'bigint' ? v : BigInt((v as number | null) ?? 0));
const bigOrNull = (v: unknown): bigint | null => (v === null || v === undefined ? null : big(v));
const seen = (r: Row): Seen => ({ count: big(r['n']), firstWallNs: bigOrNull(r['first']), lastWallNs: bigOrNull(r['last']) });
const purls = (v: unknown): string[] => (Array.isArray(v) ? (v as unknown[]).filter((x): x is string => typeof x === 'string').sort() : []);

/** The SQL of a scope key: image digest for container records, else the container id, else 'host'. */
const SCOPE = `COALESCE(r.image_digest, r.container_id, 'host')`;

/** chunkWindow gives the chunk filter for a time window (chunks overlapping it) and the other chunk-level filters. */
function chunkWhere(f: EvidenceFilter): { where: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  const p = (v: unknown): string => {
    params.push(v);
    return `$${params.length}`;
  };
  if (f.sinceWallNs !== undefined) parts.push(`k.sealed_wall_ns >= ${p(f.sinceWallNs)}::BIGINT`);
  if (f.untilWallNs !== undefined) parts.push(`k.opened_wall_ns < ${p(f.untilWallNs)}::BIGINT`);
  if (f.chains?.length) parts.push(`(${f.chains.map((c) => `k.chain_id = ${p(c)}`).join(' OR ')})`);
  if (f.hosts?.length) parts.push(`(${f.hosts.map((h) => { const q = p(h); return `k.hostname = ${q} OR k.machine_id = ${q}`; }).join(' OR ')})`);
  return { where: parts.length > 0 ? parts.join(' AND ') : 'TRUE', params };
}

/** summarize computes the summary of the records matching f. */
export async function summarize(index: EvidenceIndex, f: EvidenceFilter): Promise<Summary> {
  const { where, params } = compileFilter(f, 'duckdb');
  const verified = index.allowUnverified ? 'TRUE' : 'r.verified';
  const base = `FROM records r WHERE ${verified} AND ${where}`;
  const attr = `LEFT JOIN attribution a ON a.chunk_id = r.chunk_id AND a.scope = COALESCE(r.container_id, 'host') AND a.path = COALESCE(r.path, r.library) AND a.purl IS NOT NULL`;
  const q = (sql: string): Promise<Row[]> => index.objects(sql, params);
  // one connection runs one statement at a time
  const [scopes, execs, libs, written, peers, tls, fns] = await sequential([
    () => q(`SELECT ${SCOPE} AS scope, COUNT(*) AS n, list(DISTINCT r.container_id) FILTER (WHERE r.container_id IS NOT NULL) AS containers ${base} GROUP BY 1 ORDER BY 1`),
    () => q(`SELECT ${SCOPE} AS scope, r.path, COUNT(*) AS n, MIN(r.wall_ns) AS first, MAX(r.wall_ns) AS last, list(DISTINCT a.purl) FILTER (WHERE a.purl IS NOT NULL) AS purls
       FROM records r ${attr} WHERE ${verified} AND ${where} AND r.type = 'process_exec' GROUP BY 1, 2 ORDER BY 1, 2`),
    () => q(`SELECT ${SCOPE} AS scope, COALESCE(r.path, r.library) AS path, COUNT(*) AS n, MIN(r.wall_ns) AS first, MAX(r.wall_ns) AS last, list(DISTINCT a.purl) FILTER (WHERE a.purl IS NOT NULL) AS purls
       FROM records r ${attr} WHERE ${verified} AND ${where} AND ((r.type = 'file_open' AND regexp_matches(r.path, '\\.so(\\.[0-9][0-9.]*)?$')) OR (r.type = 'function_call' AND r.library IS NOT NULL))
       GROUP BY 1, 2 ORDER BY 1, 2`),
    () => q(`SELECT ${SCOPE} AS scope, r.path, COUNT(*) AS n, MIN(r.wall_ns) AS first, MAX(r.wall_ns) AS last, list(DISTINCT a.purl) FILTER (WHERE a.purl IS NOT NULL) AS purls
       FROM records r ${attr} WHERE ${verified} AND ${where} AND r.type = 'file_open' AND r.access IN ('write', 'read_write') GROUP BY 1, 2 ORDER BY 1, 2`),
    () => q(`SELECT ${SCOPE} AS scope, r.peer_addr AS addr, r.peer_port AS port, COUNT(*) AS n, MIN(r.wall_ns) AS first, MAX(r.wall_ns) AS last, list(DISTINCT r.type) AS via
       ${base} AND r.type IN ('net_connect', 'tcp_state') AND r.peer_addr IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`),
    () => q(`SELECT ${SCOPE} AS scope, r.pid, r.comm, COUNT(*) AS n, MIN(r.wall_ns) AS first, MAX(r.wall_ns) AS last,
         COALESCE(SUM(r.ssl_bytes) FILTER (WHERE r.ssl_op = 'read'), 0)::HUGEINT AS rd, COALESCE(SUM(r.ssl_bytes) FILTER (WHERE r.ssl_op = 'write'), 0)::HUGEINT AS wr
       ${base} AND r.type = 'ssl_op' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`),
    () => q(`SELECT ${SCOPE} AS scope, r.symbol, r.library, r.node_hash, COUNT(*) AS n, MIN(r.wall_ns) AS first, MAX(r.wall_ns) AS last
       ${base} AND r.type = 'function_call' GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`),
  ]);
  const names = await containerNames(index);
  const out = new Map<string, ScopeSummary>();
  for (const s of scopes) {
    const scope = s['scope'] as string;
    const ids = purls(s['containers']);
    const kind = scope === 'host' ? 'host' : scope.startsWith('sha256:') ? 'image' : 'container';
    out.set(scope, {
      scope, kind, imageNames: names.images.get(scope) ?? [], containers: ids.map((id) => ({ containerId: id, names: names.containers.get(id) ?? [] })),
      records: big(s['n']), executables: [], libraries: [], filesWritten: [], peers: [], tls: [], functions: [],
    });
  }
  const at = (r: Row): ScopeSummary | undefined => out.get(r['scope'] as string);
  for (const r of execs) at(r)?.executables.push({ path: r['path'] as string, packages: purls(r['purls']), ...seen(r) });
  for (const r of libs) at(r)?.libraries.push({ path: r['path'] as string, packages: purls(r['purls']), ...seen(r) });
  for (const r of written) at(r)?.filesWritten.push({ path: r['path'] as string, packages: purls(r['purls']), ...seen(r) });
  for (const r of peers) at(r)?.peers.push({ addr: r['addr'] as string, port: r['port'] === null ? null : Number(r['port']), via: purls(r['via']), ...seen(r) });
  for (const r of tls) at(r)?.tls.push({ pid: Number(r['pid']), comm: r['comm'] as string, readBytes: big(r['rd']), writeBytes: big(r['wr']), ...seen(r) });
  for (const r of fns) at(r)?.functions.push({ symbol: (r['symbol'] as string | null) ?? null, library: (r['library'] as string | null) ?? null, nodeHash: (r['node_hash'] as string | null) ?? null, ...seen(r) });
  const sorted = [...out.values()].sort((a, b) => (a.kind === 'host' ? -1 : b.kind === 'host' ? 1 : a.scope < b.scope ? -1 : 1));
  return { filter: f, coverage: await coverage(index, f), scopes: sorted, functionCalls: await functionCounts(index, f) };
}

async function containerNames(index: EvidenceIndex): Promise<{ containers: Map<string, string[]>; images: Map<string, string[]> }> {
  const containers = new Map<string, string[]>();
  const images = new Map<string, string[]>();
  for (const r of await index.objects(`SELECT container_id, list(DISTINCT name ORDER BY name) FILTER (WHERE name IS NOT NULL) AS names FROM containers GROUP BY 1`)) {
    containers.set(r['container_id'] as string, purls(r['names']));
  }
  for (const r of await index.objects(`SELECT image_digest, list(DISTINCT image_name ORDER BY image_name) AS names FROM images GROUP BY 1`)) {
    images.set(r['image_digest'] as string, purls(r['names']));
  }
  return { containers, images };
}

/** A chunk as the summary reads it (local index: chunks table; fleet index: the same columns). */
export interface ChunkRow {
  chunk_id: number;
  file: string;
  status: string;
  reason: string | null;
  chain_id: string | null;
  seq: bigint;
  envelope_sha256: string | null;
  prev_envelope_sha256: string | null;
  run_id: string | null;
  final: boolean | null;
  hostname: string | null;
  machine_id: string | null;
  opened_wall_ns: bigint | null;
  sealed_wall_ns: bigint | null;
  count: bigint | null;
  lost: bigint | null;
  ledger_json: string | null;
  function_calls_json: string | null;
  restart_json: string | null;
}

async function chunksOf(index: EvidenceIndex, f: EvidenceFilter, allChains = false): Promise<ChunkRow[]> {
  const w = allChains ? { where: 'TRUE', params: [] } : chunkWhere(f);
  return (await index.objects(
    `SELECT chunk_id, file, status, reason, chain_id, seq, envelope_sha256, prev_envelope_sha256, run_id, final, hostname, machine_id,
       opened_wall_ns, sealed_wall_ns, count, lost, ledger_json, function_calls_json, restart_json
     FROM chunks k WHERE ${w.where} ORDER BY chain_id, seq`, w.params,
  )) as unknown as ChunkRow[];
}

/** coverage describes the chunks of the window: drops per probe, gaps in each chain, unverified chunks. */
export async function coverage(index: EvidenceIndex, f: EvidenceFilter): Promise<Coverage> {
  const all = await chunksOf(index, f, true);
  return coverageOf(await chunksOf(index, f), all, dirRetention(index.source, all, index.keys));
}

/**
 * dirRetention reads the retention checkpoint of each evidence directory that holds a chain
 * whose indexed chunks start after seq 1: when the checkpoint is signed by a trusted key, is of
 * that chain and vouches for the envelope of its first indexed chunk, the seqs before it are
 * deleted by retention (checkpointed).
 */
export function dirRetention(source: string, all: readonly ChunkRow[], keys: readonly VerifyKey[]): RetentionRange[] {
  const first = new Map<string, ChunkRow>();
  for (const k of all) {
    if (k.chain_id === null || k.status !== 'ok') continue;
    const key = `${path.dirname(k.file)}\u0000${k.chain_id}`;
    const cur = first.get(key);
    if (cur === undefined || k.seq < cur.seq) first.set(key, k);
  }
  const out: RetentionRange[] = [];
  const read = new Map<string, RetentionCheckpoint | undefined>();
  for (const k of first.values()) {
    if (k.seq <= 1n) continue;
    const dir = path.dirname(k.file);
    if (!read.has(dir)) read.set(dir, readDirCheckpoint(source, dir === '.' ? '' : dir, keys));
    const cp = read.get(dir);
    if (cp === undefined || cp.chainId !== k.chain_id || cp.firstSeq !== k.seq || cp.firstEnvelopeSha256 !== k.envelope_sha256) continue;
    out.push({ chainId: cp.chainId, fromSeq: 1n, throughSeq: cp.firstSeq - 1n, checkpointSha256: cp.sha256, checkpointFirstSeq: cp.firstSeq });
  }
  return out;
}

/** coverageOf computes the coverage from the chunks of the window and all chunks of their chains (gaps are judged on the whole chain). */
export function coverageOf(rows: ChunkRow[], all: ChunkRow[], retention: readonly RetentionRange[] = []): Coverage {
  const out: Coverage = { fromWallNs: null, toWallNs: null, chunks: 0, records: 0n, lost: 0n, complete: true, probes: [], chains: [], unverified: [] };
  const probes = new Map<string, ProbeCoverage>();
  const chains = new Map<string, { c: ChainCoverage; rows: ChunkRow[] }>();
  for (const k of rows) {
    if (k.status !== 'ok') {
      out.unverified.push({ file: k.file, reason: k.reason ?? 'failed verification' });
      if (k.chain_id === null) continue;
    }
    out.chunks++;
    if (k.opened_wall_ns !== null && (out.fromWallNs === null || k.opened_wall_ns < out.fromWallNs)) out.fromWallNs = k.opened_wall_ns;
    if (k.sealed_wall_ns !== null && (out.toWallNs === null || k.sealed_wall_ns > out.toWallNs)) out.toWallNs = k.sealed_wall_ns;
    if (k.status === 'ok') out.records += big(k.count);
    out.lost += big(k.lost);
    const chainId = k.chain_id!;
    let ch = chains.get(chainId);
    if (ch === undefined) {
      ch = {
        c: { chainId, hostname: k.hostname ?? '', machineId: k.machine_id ?? '', firstSeq: k.seq, lastSeq: k.seq, chunks: 0, gaps: [], account: { throughSeq: 0n, indexed: 0n, checkpointed: 0n, missing: 0n }, checkpointed: [] },
        rows: [],
      };
      chains.set(chainId, ch);
    }
    ch.c.chunks++;
    ch.rows.push(k);
    if (k.seq < ch.c.firstSeq) ch.c.firstSeq = k.seq;
    if (k.seq > ch.c.lastSeq) ch.c.lastSeq = k.seq;
    if (k.ledger_json !== null) {
      const ledger = JSON.parse(k.ledger_json) as { probes?: Record<string, {
        in_chunk: number; lost: number; kernel: { submitted: number; ring_full: number };
        not_observed?: { class: string; sources: string[]; reason: string }[];
      }> };
      for (const [name, w] of Object.entries(ledger.probes ?? {})) {
        const p = probes.get(name) ?? { probe: name, chunks: 0, submitted: 0n, inChunk: 0n, ringFull: 0n, lost: 0n };
        p.chunks++;
        p.submitted += BigInt(w.kernel.submitted);
        p.inChunk += BigInt(w.in_chunk);
        p.ringFull += BigInt(w.kernel.ring_full);
        p.lost += BigInt(w.lost);
        for (const n of Array.isArray(w.not_observed) ? w.not_observed : []) {
          const text = `${String(n.class)} (${Array.isArray(n.sources) ? n.sources.join(', ') : ''}): ${String(n.reason)}`;
          if (!(p.notObserved ??= []).includes(text) && p.notObserved.length < 16) p.notObserved.push(text);
        }
        probes.set(name, p);
      }
    }
  }
  out.complete = out.lost === 0n && out.unverified.length === 0;
  out.probes = [...probes.values()].sort((a, b) => (a.probe < b.probe ? -1 : 1));
  // gaps are judged on the whole chain (a chunk missing just outside the window still matters at its edge)
  for (const { c } of chains.values()) {
    const chainRows = all.filter((k) => k.chain_id === c.chainId);
    const ranges = retention.filter((r) => r.chainId === c.chainId);
    const acc = chainAccount(chainRows, ranges);
    c.account = acc.account;
    c.checkpointed = acc.runs;
    c.gaps = chainGaps(chainRows, c.firstSeq, c.lastSeq, acc.runs);
    if (c.gaps.length > 0) out.complete = false;
  }
  out.chains = [...chains.values()].map((x) => x.c);
  return out;
}

async function sequential<T>(jobs: (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = [];
  for (const j of jobs) out.push(await j());
  return out;
}

/**
 * chainAccount accounts for every seq of a chain from 1 to its last indexed seq: indexed, deleted
 * by retention (a run of `ranges`, the checkpoint that reaches furthest where they overlap), or
 * missing. Linear in the indexed chunks and the ranges, not in the seqs.
 */
export function chainAccount(rows: readonly ChunkRow[], ranges: readonly RetentionRange[]): { account: ChainCoverage['account']; runs: CheckpointedRun[] } {
  const seqs = [...new Set(rows.map((k) => k.seq))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const through = seqs.length > 0 ? seqs[seqs.length - 1]! : 0n;
  const runs: CheckpointedRun[] = [];
  let checkpointed = 0n;
  // the holes between indexed seqs (and before the first), each split by the ranges
  let prev = 0n;
  for (const s of seqs) {
    for (let at = prev + 1n; at < s;) {
      let cover: RetentionRange | undefined;
      let next = s;
      for (const r of ranges) {
        if (r.fromSeq <= at && r.throughSeq >= at) {
          if (cover === undefined || r.throughSeq > cover.throughSeq) cover = r;
        } else if (r.fromSeq > at && r.fromSeq < next) next = r.fromSeq;
      }
      if (cover === undefined) {
        at = next;
        continue;
      }
      const end = cover.throughSeq < s - 1n ? cover.throughSeq : s - 1n;
      const last = runs[runs.length - 1];
      if (last !== undefined && last.throughSeq === at - 1n && last.checkpointSha256 === cover.checkpointSha256) last.throughSeq = end;
      else runs.push({ fromSeq: at, throughSeq: end, checkpointSha256: cover.checkpointSha256, checkpointFirstSeq: cover.checkpointFirstSeq });
      checkpointed += end - at + 1n;
      at = end + 1n;
    }
    prev = s;
  }
  const indexed = BigInt(seqs.length);
  return { account: { throughSeq: through, indexed, checkpointed, missing: through - indexed - checkpointed }, runs };
}

const seqText = (a: bigint, b: bigint): string => (a === b ? `seq ${a}` : `seq ${a}..${b}`);

/** checkpointedText: how a run of seqs deleted by retention shows in the coverage */
export function checkpointedText(r: CheckpointedRun): string {
  return `${seqText(r.fromSeq, r.throughSeq)} deleted by retention (checkpointed): recorded in the signed retention checkpoint sha256:${r.checkpointSha256.slice(0, 16)}... (first seq ${r.checkpointFirstSeq})`;
}

/**
 * retentionLines: what a chain's coverage says beyond its gaps when it is not whole from seq 1:
 * its account (every seq from 1 to the last indexed one, once) and the runs deleted by retention
 * before the window's first chunk (inside the window they are gaps). Empty for a whole chain.
 */
export function retentionLines(ch: ChainCoverage): string[] {
  const a = ch.account;
  if (a.checkpointed === 0n && a.missing === 0n) return [];
  return [
    `chain seq 1..${a.throughSeq}: ${a.indexed} indexed, ${a.checkpointed} deleted by retention (checkpointed), ${a.missing} missing`,
    ...ch.checkpointed.filter((r) => r.throughSeq < ch.firstSeq).map(checkpointedText),
  ];
}

function chainGaps(rows: ChunkRow[], from: bigint, to: bigint, checkpointed: readonly CheckpointedRun[] = []): string[] {
  const gaps: string[] = [];
  const bySeq = new Map(rows.map((k) => [k.seq, k]));
  for (let s = from; s <= to; s++) {
    const k = bySeq.get(s);
    if (k === undefined) {
      const run = checkpointed.find((r) => r.fromSeq <= s && r.throughSeq >= s);
      if (run !== undefined) {
        // one line per run of the window, not one per seq
        const end = run.throughSeq < to ? run.throughSeq : to;
        gaps.push(checkpointedText({ ...run, fromSeq: s, throughSeq: end }));
        s = end;
        continue;
      }
      gaps.push(`seq ${s} is missing`);
      continue;
    }
    if (k.status !== 'ok') gaps.push(`seq ${s} failed verification: ${k.reason ?? ''}`);
    const prev = bySeq.get(s - 1n);
    if (prev !== undefined && prev.envelope_sha256 !== null && k.prev_envelope_sha256 !== prev.envelope_sha256) gaps.push(`seq ${s} does not link to seq ${s - 1n}`);
    if (k.restart_json !== null) {
      const r = JSON.parse(k.restart_json) as { previous_run_closed?: boolean; previous_seq?: number };
      if (r.previous_run_closed !== true) gaps.push(`seq ${s}: the collector restarted after an unclean stop (after seq ${r.previous_seq ?? '?'}); records in between are missing`);
    }
  }
  const last = bySeq.get(to);
  const maxSeq = rows.reduce((m, k) => (k.seq > m ? k.seq : m), 0n);
  if (last !== undefined && last.final !== true && to === maxSeq) gaps.push(`seq ${to} is not final: the collector is still running or was killed`);
  return gaps;
}

/** functionCounts sums the predicates' exact function_calls over the chunks of the window. */
export async function functionCounts(index: EvidenceIndex, f: EvidenceFilter): Promise<FunctionCount[]> {
  return functionCountsOf(await chunksOf(index, f), f, async (library) => {
    const r = await index.objects(`SELECT list(DISTINCT purl) AS purls FROM attribution WHERE scope = 'host' AND path = $1 AND purl IS NOT NULL`, [library]);
    return purls(r[0]?.['purls']);
  });
}

/** functionCountsOf sums the exact function_calls of the chunks; packagesOf names the host packages of a library. */
export async function functionCountsOf(chunks: ChunkRow[], f: EvidenceFilter, packagesOf: (library: string) => Promise<string[]>): Promise<FunctionCount[]> {
  const rows = chunks.filter((k) => k.status === 'ok' && k.function_calls_json !== null);
  const acc = new Map<string, FunctionCount>();
  for (const k of rows) {
    const list = parseCalls(k.function_calls_json!);
    for (const e of list) {
      if (f.symbols?.length && !f.symbols.some((g) => (isGlob(g) ? globToRegExp(g, { flat: true }).test(e.symbol) : g === e.symbol))) continue;
      if (f.nodeHashes?.length && (e.node_hash === null || !f.nodeHashes.includes(e.node_hash))) continue;
      const key = `${e.function}\u0000${e.symbol}\u0000${e.node_hash ?? ''}`;
      let c = acc.get(key);
      if (c === undefined) {
        const library = e.function.endsWith(`:${e.symbol}`) ? e.function.slice(0, e.function.length - e.symbol.length - 1) : e.function;
        c = { function: e.function, symbol: e.symbol, nodeHash: e.node_hash, library, packages: [], calls: 0n, emitted: 0n, suppressed: 0n, chunks: 0, firstWallNs: null, lastWallNs: null };
        acc.set(key, c);
      }
      c.chunks++;
      c.calls += e.calls;
      c.emitted += e.emitted;
      c.suppressed += e.suppressed;
      if (e.calls > 0n) {
        if (k.opened_wall_ns !== null && (c.firstWallNs === null || k.opened_wall_ns < c.firstWallNs)) c.firstWallNs = k.opened_wall_ns;
        if (k.sealed_wall_ns !== null && (c.lastWallNs === null || k.sealed_wall_ns > c.lastWallNs)) c.lastWallNs = k.sealed_wall_ns;
      }
    }
  }
  const out = [...acc.values()].sort((a, b) => (a.function < b.function ? -1 : a.function > b.function ? 1 : a.symbol < b.symbol ? -1 : 1));
  for (const c of out) c.packages = await packagesOf(c.library);
  return out;
}

/** parseCalls reads a canonical function_calls array with exact counts. */
function parseCalls(json: string): { function: string; symbol: string; node_hash: string | null; calls: bigint; emitted: bigint; suppressed: bigint }[] {
  // counts are integers; quote them before JSON.parse so that no count is rounded
  const quoted = json.replace(/"(calls|emitted|suppressed)":(\d+)/g, '"$1":"$2"');
  return (JSON.parse(quoted) as { function: string; symbol: string; node_hash: string | null; calls: string; emitted: string; suppressed: string }[])
    .map((e) => ({ function: e.function, symbol: e.symbol, node_hash: e.node_hash, calls: BigInt(e.calls), emitted: BigInt(e.emitted), suppressed: BigInt(e.suppressed) }));
}
