import type { EvidenceFilter } from '../index/filter';
import { coverageOf, functionCountsOf, type ChunkRow, type RetentionRange, type ScopeSummary, type Seen, type Summary } from '../index/summary';
import { fleetFilter, type FleetIndex } from './query';

/**
 * `rtev summary --db`: the summary of src/index/summary.ts over the fleet index in
 * PostgreSQL. The same filter (compileFilter's postgres dialect), the same sections, scopes
 * and coverage rules (coverageOf, functionCountsOf), the same Summary for the same renderers;
 * only the SQL is PostgreSQL's. Every chunk in the fleet index verified at ingest; chunks that
 * ingest rejected are listed as unverified, and open gaps (missing chunks) show in the chain's
 * coverage as they do locally.
 */

type Row = Record<string, unknown>;

const big = (v: unknown): bigint => (typeof v === 'bigint' ? v : BigInt((v as string | number | null) ?? 0));
const bigOrNull = (v: unknown): bigint | null => (v === null || v === undefined ? null : big(v));
const seen = (r: Row): Seen => ({ count: big(r['n']), firstWallNs: bigOrNull(r['first']), lastWallNs: bigOrNull(r['last']) });
const strings = (v: unknown): string[] => (Array.isArray(v) ? (v as unknown[]).filter((x): x is string => typeof x === 'string').sort() : []);

const SCOPE = `COALESCE(r.image_digest, r.container_id, 'host')`;

export function chunkWhere(f: EvidenceFilter): { where: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  const p = (v: unknown): string => {
    params.push(typeof v === 'bigint' ? v.toString() : v);
    return `$${params.length}`;
  };
  if (f.sinceWallNs !== undefined) parts.push(`k.sealed_wall_ns >= ${p(f.sinceWallNs)}::bigint`);
  if (f.untilWallNs !== undefined) parts.push(`k.opened_wall_ns < ${p(f.untilWallNs)}::bigint`);
  if (f.chains?.length) parts.push(`(${f.chains.map((c) => `k.chain_id = ${p(c)}`).join(' OR ')})`);
  if (f.hosts?.length) parts.push(`(${f.hosts.map((h) => { const q = p(h); return `k.hostname = ${q} OR k.machine_id = ${q}`; }).join(' OR ')})`);
  return { where: parts.length > 0 ? parts.join(' AND ') : 'TRUE', params };
}

/** fleetSummary computes the summary of the fleet records matching f. */
export async function fleetSummary(fleet: FleetIndex, f: EvidenceFilter): Promise<Summary> {
  const db = fleet.db;
  const { where, params } = fleetFilter(f);
  const q = async (sql: string, values: unknown[] = params): Promise<Row[]> => (await db.query(sql, values)).rows as Row[];
  // text in code point order, as the local index sorts it, whatever the database collation
  const ordered = (sql: string, by: string[]): Promise<Row[]> => q(`SELECT * FROM (${sql}) t ORDER BY ${by.map((c) => (c.startsWith('#') ? c.slice(1) : `${c} COLLATE "C"`)).join(', ')}`);
  const base = `FROM records r WHERE ${where}`;
  const attr = `LEFT JOIN attribution a ON a.chunk_id = r.chunk_id AND a.scope = COALESCE(r.container_id, 'host') AND a.path = COALESCE(r.path, r.library) AND a.purl IS NOT NULL`;
  const seenCols = 'COUNT(*) AS n, MIN(r.wall_ns) AS first, MAX(r.wall_ns) AS last';
  const purls = `array_agg(DISTINCT a.purl) FILTER (WHERE a.purl IS NOT NULL) AS purls`;
  await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const scopes = await q(`SELECT ${SCOPE} AS scope, COUNT(*) AS n, array_agg(DISTINCT r.container_id) FILTER (WHERE r.container_id IS NOT NULL) AS containers ${base} GROUP BY 1 ORDER BY 1`);
    const execs = await ordered(`SELECT ${SCOPE} AS scope, r.path, ${seenCols}, ${purls}
      FROM records r ${attr} WHERE ${where} AND r.type = 'process_exec' GROUP BY 1, 2`, ['scope', 'path']);
    const libs = await ordered(`SELECT ${SCOPE} AS scope, COALESCE(r.path, r.library) AS path, ${seenCols}, ${purls}
      FROM records r ${attr} WHERE ${where} AND ((r.type = 'file_open' AND r.path ~ '\\.so(\\.[0-9][0-9.]*)?$') OR (r.type = 'function_call' AND r.library IS NOT NULL))
      GROUP BY 1, 2`, ['scope', 'path']);
    const written = await ordered(`SELECT ${SCOPE} AS scope, r.path, ${seenCols}, ${purls}
      FROM records r ${attr} WHERE ${where} AND r.type = 'file_open' AND r.access IN ('write', 'read_write') GROUP BY 1, 2`, ['scope', 'path']);
    const peers = await ordered(`SELECT ${SCOPE} AS scope, r.peer_addr AS addr, r.peer_port AS port, ${seenCols}, array_agg(DISTINCT r.type) AS via
      ${base} AND r.type IN ('net_connect', 'tcp_state') AND r.peer_addr IS NOT NULL GROUP BY 1, 2, 3`, ['scope', 'addr', '#port']);
    const tls = await ordered(`SELECT ${SCOPE} AS scope, r.pid, r.comm, ${seenCols},
        COALESCE(SUM(r.ssl_bytes) FILTER (WHERE r.ssl_op = 'read'), 0)::numeric AS rd, COALESCE(SUM(r.ssl_bytes) FILTER (WHERE r.ssl_op = 'write'), 0)::numeric AS wr
      ${base} AND r.type = 'ssl_op' GROUP BY 1, 2, 3`, ['scope', '#pid', 'comm']);
    const fns = await ordered(`SELECT ${SCOPE} AS scope, r.symbol, r.library, r.node_hash, ${seenCols}
      ${base} AND r.type = 'function_call' GROUP BY 1, 2, 3, 4`, ['scope', 'symbol', 'library', 'node_hash']);
    const containerNames = new Map<string, string[]>();
    const imageNames = new Map<string, string[]>();
    for (const r of await q(`SELECT container_id, array_agg(DISTINCT name ORDER BY name) FILTER (WHERE name IS NOT NULL) AS names FROM containers GROUP BY 1`, [])) containerNames.set(r['container_id'] as string, strings(r['names']));
    for (const r of await q(`SELECT image_digest, array_agg(DISTINCT image_name ORDER BY image_name) AS names FROM images GROUP BY 1`, [])) imageNames.set(r['image_digest'] as string, strings(r['names']));
    const out = new Map<string, ScopeSummary>();
    for (const s of scopes) {
      const scope = s['scope'] as string;
      const kind = scope === 'host' ? 'host' : scope.startsWith('sha256:') ? 'image' : 'container';
      out.set(scope, {
        scope, kind, imageNames: imageNames.get(scope) ?? [], containers: strings(s['containers']).map((id) => ({ containerId: id, names: containerNames.get(id) ?? [] })),
        records: big(s['n']), executables: [], libraries: [], filesWritten: [], peers: [], tls: [], functions: [],
      });
    }
    // PostgreSQL orders text by the database collation; the local index by code point: sort here as it does
    const at = (r: Row): ScopeSummary | undefined => out.get(r['scope'] as string);
    for (const r of execs) at(r)?.executables.push({ path: r['path'] as string, packages: strings(r['purls']), ...seen(r) });
    for (const r of libs) at(r)?.libraries.push({ path: r['path'] as string, packages: strings(r['purls']), ...seen(r) });
    for (const r of written) at(r)?.filesWritten.push({ path: r['path'] as string, packages: strings(r['purls']), ...seen(r) });
    for (const r of peers) at(r)?.peers.push({ addr: r['addr'] as string, port: r['port'] === null ? null : Number(r['port']), via: strings(r['via']), ...seen(r) });
    for (const r of tls) at(r)?.tls.push({ pid: Number(r['pid']), comm: r['comm'] as string, readBytes: big(r['rd']), writeBytes: big(r['wr']), ...seen(r) });
    for (const r of fns) at(r)?.functions.push({ symbol: (r['symbol'] as string | null) ?? null, library: (r['library'] as string | null) ?? null, nodeHash: (r['node_hash'] as string | null) ?? null, ...seen(r) });
    const sorted = [...out.values()].sort((a, b) => (a.kind === 'host' ? -1 : b.kind === 'host' ? 1 : a.scope < b.scope ? -1 : 1));
    const window = await chunksOf(fleet, chunkWhere(f));
    const chains = [...new Set(window.map((k) => k.chain_id!))];
    const all = chains.length === 0 ? [] : await chunksOf(fleet, { where: 'k.chain_id = ANY($1::text[])', params: [chains] });
    const coverage = coverageOf(window, all, await fleetRetention(fleet, chains));
    coverage.unverified.push(...await rejected(fleet, f));
    if (coverage.unverified.length > 0) coverage.complete = false;
    const functionCalls = await functionCountsOf(window, f, async (library) => strings((await q(`SELECT array_agg(DISTINCT purl) AS purls FROM attribution WHERE scope = 'host' AND path = $1 AND purl IS NOT NULL`, [library]))[0]?.['purls']));
    return { filter: f, coverage, scopes: sorted, functionCalls };
  } finally {
    await db.query('COMMIT').catch(() => undefined);
  }
}

const CHUNK_COLUMNS = `k.chunk_id, k.host_id || '/' || k.chain_id || '/' || k.seq AS file, k.chain_id, k.seq, k.envelope_sha256, k.prev_envelope_sha256, k.run_id, k.final,
  k.hostname, k.machine_id, k.opened_wall_ns, k.sealed_wall_ns, k.count, k.lost, k.ledger_json, k.function_calls_json, k.restart_json`;

/**
 * fleetRetention: the seqs of these chains that the hosts' signed retention checkpoints (as
 * ingest accepted them, src/fleet/gaps.ts) name as removed before they were shipped: where they
 * are not indexed, they are deleted by retention (checkpointed), as `rtev fleet status` shows them.
 */
export async function fleetRetention(fleet: FleetIndex, chains: readonly string[]): Promise<RetentionRange[]> {
  if (chains.length === 0) return [];
  const r = await fleet.db.query(`SELECT chain_id, unshipped_from, unshipped_through, envelope_sha256, first_seq FROM checkpoints
    WHERE chain_id = ANY($1::text[]) AND unshipped_from IS NOT NULL AND unshipped_through IS NOT NULL ORDER BY chain_id, first_seq, envelope_sha256`, [chains]);
  return r.rows.map((c: Row) => ({
    chainId: c['chain_id'] as string, fromSeq: big(c['unshipped_from']), throughSeq: big(c['unshipped_through']),
    checkpointSha256: c['envelope_sha256'] as string, checkpointFirstSeq: big(c['first_seq']),
  }));
}

/** chunksOf: the chunks matching w, as the local summary reads them */
export async function chunksOf(fleet: FleetIndex, w: { where: string; params: unknown[] }): Promise<ChunkRow[]> {
  const r = await fleet.db.query(`SELECT ${CHUNK_COLUMNS} FROM chunks k WHERE ${w.where} ORDER BY k.chain_id, k.seq`, w.params);
  return r.rows.map((k: Row) => ({
    chunk_id: Number(k['chunk_id']), file: k['file'] as string, status: 'ok', reason: null, chain_id: k['chain_id'] as string, seq: big(k['seq']),
    envelope_sha256: k['envelope_sha256'] as string, prev_envelope_sha256: (k['prev_envelope_sha256'] as string | null) ?? null, run_id: k['run_id'] as string,
    final: k['final'] as boolean, hostname: k['hostname'] as string, machine_id: k['machine_id'] as string, opened_wall_ns: big(k['opened_wall_ns']),
    sealed_wall_ns: big(k['sealed_wall_ns']), count: big(k['count']), lost: big(k['lost']), ledger_json: k['ledger_json'] as string,
    function_calls_json: (k['function_calls_json'] as string | null) ?? null, restart_json: (k['restart_json'] as string | null) ?? null,
  }));
}

/** rejected: chunks of the filter's hosts and chains that ingest rejected and that are not indexed under another message */
export async function rejected(fleet: FleetIndex, f: EvidenceFilter): Promise<{ file: string; reason: string }[]> {
  const params: unknown[] = [];
  const parts: string[] = [`NOT EXISTS (SELECT 1 FROM chunks c WHERE c.host_id = j.host_id AND c.chain_id = j.chain_id AND c.seq = j.seq)`, `j.code NOT IN ('replay', 'duplicate')`];
  if (f.hosts?.length) {
    parts.push(`(${f.hosts.map((h) => { params.push(h); const q = `$${params.length}`; return `j.host_id = ${q} OR j.host_id IN (SELECT host_id FROM hosts WHERE hostname = ${q} OR machine_id = ${q})`; }).join(' OR ')})`);
  }
  if (f.chains?.length) parts.push(`(${f.chains.map((c) => { params.push(c); return `j.chain_id = $${params.length}`; }).join(' OR ')})`);
  const r = await fleet.db.query(`SELECT j.host_id, j.chain_id, j.seq, j.code, j.reason FROM rejections j WHERE ${parts.join(' AND ')} ORDER BY j.host_id, j.chain_id, j.seq, j.id`, params);
  return r.rows.map((j: Row) => ({ file: `${String(j['host_id'])}/${String(j['chain_id'] ?? '?')}/${String(j['seq'] ?? '?')}`, reason: `rejected at ingest: ${String(j['code'])}: ${String(j['reason'])}` }));
}
