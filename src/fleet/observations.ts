import type { EvidenceFilter } from '../index/filter';
import { coverageOf, functionCountsOf } from '../index/summary';
import {
  coverageFacts, functionProbesOf, groupedObservations, refFromRow,
  type ActivityGroup, type ActivityWindow, type FileGroup, type HitGroup, type ObservationSource, type ProductGroup,
} from '../report/observation-groups';
import type { CoverageFacts, EvidenceRef, FunctionProbe, Observations } from '../report/observations';
import { LINE, type FleetIndex } from './query';
import { sqlU64 } from './rows';
import { chunksOf, chunkWhere, fleetRetention, rejected } from './summary';

/**
 * fleetObservations answers the report's questions (src/report/observations.ts,
 * /work/coord/iface-observations.md) from the fleet index in PostgreSQL, for `rtev report --db`:
 * the same semantics as indexObservations over a directory's index, in PostgreSQL's SQL, through
 * the shared assembly (src/report/observation-groups.ts). Each question is one grouped query
 * for all products at once (the product of a record resolved in SQL), not one per product.
 * The scope is every host of the index, or the hosts named (hostname or machine id), applied
 * to every query alike. Every indexed chunk verified at ingest; chunks ingest rejected and did
 * not index later are the coverage's failures.
 */
export function fleetObservations(fleet: FleetIndex, hosts: string[] = []): Observations {
  return groupedObservations(new FleetSource(fleet, hosts));
}

type Row = Record<string, unknown>;
const big = (v: unknown): bigint => (typeof v === 'bigint' ? v : BigInt((v as string | number | null) ?? 0));
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/**
 * the product of record r (iface-observations.md): host outside containers, else the record's
 * image digest, else the image of its container in its own chunk's signed container facts,
 * else none (NULL)
 */
const PRODUCT = `CASE WHEN r.container_id IS NULL THEN 'host' ELSE COALESCE(r.image_digest, ci.image_digest) END`;
const CONTAINER_IMAGES = `LEFT JOIN (SELECT chunk_id, container_id, min(image_digest) AS image_digest FROM containers WHERE image_digest IS NOT NULL GROUP BY 1, 2) ci
  ON ci.chunk_id = r.chunk_id AND ci.container_id = r.container_id`;
/** the columns of an evidence reference, from x (records with their product) and k (its chunk) */
const REF_COLUMNS = `k.chain_id, k.seq, k.chunk_sha256, x.line_no, ${sqlU64('x.ts_ns_biased')}::text AS ts_ns, x.wall_ns, x.pid, x.comm, x.container_id, x.image_digest`;
/** (ts_ns is biased in records, schema v5: mapped back to the u64 only in the reference columns, not per record scanned) */
const X_COLUMNS = `r.chunk_id, r.line_no, r.ts_ns_biased, r.wall_ns, r.pid, r.comm, r.container_id, r.image_digest`;
/** the earliest record first; chain ids in code point order, whatever the database collation */
const ORDER = `x.wall_ns, k.chain_id COLLATE "C", k.seq, x.line_no`;

class FleetSource implements ObservationSource {
  readonly #filter: EvidenceFilter;

  constructor(private readonly fleet: FleetIndex, private readonly hosts: string[]) {
    this.#filter = hosts.length > 0 ? { hosts } : {};
  }

  async #q(sql: string, params: unknown[]): Promise<Row[]> {
    return (await this.fleet.db.query(sql, params)).rows as Row[];
  }

  /** the host scope of records r, params appended to ps */
  #scope(ps: unknown[]): string {
    if (this.hosts.length === 0) return 'TRUE';
    ps.push(this.hosts);
    return `r.chunk_id IN (SELECT h.chunk_id FROM chunks h WHERE h.hostname = ANY($${ps.length}::text[]) OR h.machine_id = ANY($${ps.length}::text[]))`;
  }

  async coverage(): Promise<CoverageFacts> {
    const window = await chunksOf(this.fleet, chunkWhere(this.#filter));
    const chains = [...new Set(window.map((k) => k.chain_id!))];
    const all = chains.length === 0 ? [] : await chunksOf(this.fleet, { where: 'k.chain_id = ANY($1::text[])', params: [chains] });
    const c = coverageOf(window, all, await fleetRetention(this.fleet, chains));
    return coverageFacts(c, [...(await rejected(this.fleet, this.#filter)), ...c.unverified]);
  }

  async functionProbes(): Promise<FunctionProbe[]> {
    const window = await chunksOf(this.fleet, chunkWhere(this.#filter));
    return functionProbesOf(await functionCountsOf(window, {}, async () => []));
  }

  async productGroups(): Promise<ProductGroup[]> {
    const ps: unknown[] = [];
    const rows = await this.#q(`SELECT ${PRODUCT} AS product, r.container_id, COUNT(*) AS n FROM records r ${CONTAINER_IMAGES} WHERE ${this.#scope(ps)} GROUP BY 1, 2`, ps);
    return rows.map((r) => ({ product: str(r['product']), containerId: str(r['container_id']), records: big(r['n']) }));
  }

  async imageNames(): Promise<Map<string, string[]>> {
    const names = new Map<string, string[]>();
    for (const r of await this.#q(`SELECT image_digest, array_agg(DISTINCT image_name ORDER BY image_name) AS names FROM images WHERE image_name IS NOT NULL GROUP BY 1`, [])) {
      names.set(r['image_digest'] as string, (r['names'] as string[]) ?? []);
    }
    return names;
  }

  async fileGroups(): Promise<FileGroup[]> {
    const ps: unknown[] = [];
    // per (product, scope, path): counts, the earliest record, and the smallest attribution purl of (scope, path)
    const rows = await this.#q(
      `WITH x AS (
         SELECT ${PRODUCT} AS product, COALESCE(r.container_id, 'host') AS scope, COALESCE(r.path, r.library) AS path, ${X_COLUMNS}
         FROM records r ${CONTAINER_IMAGES}
         WHERE r.type IN ('file_open', 'process_exec', 'function_call') AND COALESCE(r.path, r.library) IS NOT NULL AND ${this.#scope(ps)}),
       g AS (SELECT product, scope, path, COUNT(*) AS n, MIN(wall_ns) AS first, MAX(wall_ns) AS last FROM x WHERE product IS NOT NULL GROUP BY 1, 2, 3),
       a AS (SELECT scope, path, MIN(purl COLLATE "C") AS purl FROM attribution
         WHERE purl IS NOT NULL AND (scope, path) IN (SELECT scope, path FROM g) GROUP BY 1, 2),
       ref AS (SELECT DISTINCT ON (x.product, x.scope, x.path) x.product, x.scope, x.path, ${REF_COLUMNS}
         FROM x JOIN chunks k ON k.chunk_id = x.chunk_id WHERE x.product IS NOT NULL ORDER BY x.product, x.scope, x.path, ${ORDER})
       SELECT g.product, g.scope, g.path, g.n, g.first, g.last, a.purl, ref.chain_id, ref.seq, ref.chunk_sha256, ref.line_no, ref.ts_ns, ref.wall_ns,
         ref.pid, ref.comm, ref.container_id, ref.image_digest
       FROM g JOIN ref ON ref.product = g.product AND ref.scope = g.scope AND ref.path = g.path
         LEFT JOIN a ON a.scope = g.scope AND a.path = g.path`, ps);
    return rows.map((r) => ({
      product: r['product'] as string, scope: r['scope'] as string, path: r['path'] as string, purl: str(r['purl']),
      records: big(r['n']), firstWallNs: big(r['first']), lastWallNs: big(r['last']), ref: refFromRow(r),
    }));
  }

  async hitGroups(): Promise<HitGroup[]> {
    const ps: unknown[] = [];
    const x = `SELECT ${PRODUCT} AS product, r.library, r.symbol, r.node_hash, r.runtime, ${X_COLUMNS}
      FROM records r ${CONTAINER_IMAGES} WHERE r.type = 'function_call' AND r.symbol IS NOT NULL AND r.library IS NOT NULL AND ${this.#scope(ps)}`;
    const groups = await this.#q(
      `WITH x AS (${x}) SELECT product, library, symbol, node_hash, min(runtime) AS runtime, COUNT(*) AS n, MIN(wall_ns) AS first, MAX(wall_ns) AS last
       FROM x WHERE product IS NOT NULL GROUP BY 1, 2, 3, 4`, ps);
    if (groups.length === 0) return [];
    // the 5 earliest records of each group
    const refs = await this.#q(
      `WITH x AS (${x}) SELECT * FROM (SELECT x.product, x.library, x.symbol, x.node_hash, ${REF_COLUMNS},
           row_number() OVER (PARTITION BY x.product, x.library, x.symbol, x.node_hash ORDER BY ${ORDER}) AS rn
         FROM x JOIN chunks k ON k.chunk_id = x.chunk_id WHERE x.product IS NOT NULL) y WHERE rn <= 5`, ps);
    const key = (r: Row): string => `${r['product']}\0${r['library']}\0${r['symbol']}\0${r['node_hash'] ?? '\u0001'}`;
    const byKey = new Map<string, EvidenceRef[]>();
    for (const r of refs) {
      const list = byKey.get(key(r));
      if (list === undefined) byKey.set(key(r), [refFromRow(r)]);
      else list.push(refFromRow(r));
    }
    return groups.map((g) => ({
      product: g['product'] as string, library: g['library'] as string, symbol: g['symbol'] as string, nodeHash: str(g['node_hash']), runtime: str(g['runtime']) ?? '',
      records: big(g['n']), firstWallNs: big(g['first']), lastWallNs: big(g['last']), refs: byKey.get(key(g)) ?? [],
    }));
  }

  async activityGroups(w: ActivityWindow): Promise<ActivityGroup[]> {
    const span = w.to - w.from > 0n ? w.to - w.from : 1n;
    // a record counts at the start of its wall-clock second; seconds merged per bucket (activityBucket's formula)
    const ps: unknown[] = [String(w.from), String(span), w.n];
    const rows = await this.#q(
      `SELECT ${PRODUCT} AS product, r.type,
         LEAST(GREATEST(floor(((floor(r.wall_ns::numeric / 1000000000) * 1000000000 - $1::numeric) * $3::int) / $2::numeric), 0), $3::int - 1)::int AS b,
         MIN(floor(r.wall_ns::numeric / 1000000000))::text AS sec, COUNT(*) AS n
       FROM records r ${CONTAINER_IMAGES} WHERE ${this.#scope(ps)} GROUP BY 1, 2, 3`, ps);
    return rows.filter((r) => r['product'] !== null).map((r) => ({ product: r['product'] as string, type: r['type'] as string, second: BigInt(r['sec'] as string), records: big(r['n']) }));
  }

  async line(ref: EvidenceRef): Promise<string | undefined> {
    const r = await this.#q(`SELECT ${LINE} AS line FROM records r JOIN chunks k ON k.chunk_id = r.chunk_id
      WHERE k.chain_id = $1 AND k.seq = $2 AND r.line_no = $3 LIMIT 1`, [ref.chainId, String(ref.seq), ref.lineNo]);
    return str(r[0]?.['line']) ?? undefined;
  }
}
