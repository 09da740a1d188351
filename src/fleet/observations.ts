import type { EvidenceFilter } from '../index/filter';
import { coverageOf, functionCountsOf } from '../index/summary';
import { activityOf, coverageFacts, emptyBuckets, functionProbesOf, refFromRow as refOf, stackOf } from '../report/observation-groups';
import type { ActivityBucket, CoverageFacts, FunctionHit, FunctionProbe, LoadedFile, Observations, ObservedProduct, ProductKey } from '../report/observations';
import { productKeyString } from '../report/observations';
import type { FleetIndex } from './query';
import { chunksOf, chunkWhere, rejected } from './summary';

/**
 * fleetObservations answers the report's questions (src/report/observations.ts,
 * /work/coord/iface-observations.md) from the fleet index in PostgreSQL, for `rtev report --db`:
 * the same semantics as indexObservations over a directory's index, in PostgreSQL's SQL. The
 * scope is every host of the index, or the hosts named (hostname or machine id), applied to
 * every method alike. Every indexed chunk verified at ingest; chunks ingest rejected and did not
 * index later are the coverage's failures. Every method is one or a few grouped queries.
 */
export function fleetObservations(fleet: FleetIndex, hosts: string[] = []): Observations {
  return new FleetObservations(fleet, hosts);
}

type Row = Record<string, unknown>;
const big = (v: unknown): bigint => (typeof v === 'bigint' ? v : BigInt((v as string | number | null) ?? 0));
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

const REF_COLUMNS = `k.chain_id, r.seq, k.chunk_sha256, r.line_no, r.ts_ns, r.wall_ns, r.pid, r.comm, r.container_id, r.image_digest`;
/** the earliest record first; chain ids in code point order, whatever the database collation */
const ORDER = `r.wall_ns, k.chain_id COLLATE "C", r.seq, r.line_no`;

class FleetObservations implements Observations {
  #coverage: Promise<CoverageFacts> | undefined;
  readonly #filter: EvidenceFilter;

  constructor(private readonly fleet: FleetIndex, private readonly hosts: string[]) {
    this.#filter = hosts.length > 0 ? { hosts } : {};
  }

  async #q(sql: string, params: unknown[]): Promise<Row[]> {
    return (await this.fleet.db.query(sql, params)).rows as Row[];
  }

  /** the WHERE part for records: the product (iface-observations.md) and the host scope; params appended to ps */
  #where(p: ProductKey | undefined, ps: unknown[]): string {
    const parts: string[] = [];
    if (p !== undefined && p.kind === 'host') parts.push('r.container_id IS NULL');
    if (p !== undefined && p.kind === 'image') {
      ps.push(p.digest);
      const d = `$${ps.length}`;
      parts.push(`r.container_id IS NOT NULL AND (r.image_digest = ${d} OR (r.image_digest IS NULL AND EXISTS (
        SELECT 1 FROM containers c WHERE c.chunk_id = r.chunk_id AND c.container_id = r.container_id AND c.image_digest = ${d})))`);
    }
    if (this.hosts.length > 0) {
      ps.push(this.hosts);
      parts.push(`r.chunk_id IN (SELECT h.chunk_id FROM chunks h WHERE h.hostname = ANY($${ps.length}::text[]) OR h.machine_id = ANY($${ps.length}::text[]))`);
    }
    return parts.length > 0 ? parts.join(' AND ') : 'TRUE';
  }

  coverage(): Promise<CoverageFacts> {
    this.#coverage ??= this.#computeCoverage();
    return this.#coverage;
  }

  async #computeCoverage(): Promise<CoverageFacts> {
    const window = await chunksOf(this.fleet, chunkWhere(this.#filter));
    const chains = [...new Set(window.map((k) => k.chain_id!))];
    const all = chains.length === 0 ? [] : await chunksOf(this.fleet, { where: 'k.chain_id = ANY($1::text[])', params: [chains] });
    const c = coverageOf(window, all);
    // the shared assembly (src/report/observation-groups.ts), as for a directory's index
    return coverageFacts(c, [...(await rejected(this.fleet, this.#filter)), ...c.unverified]);
  }

  async products(): Promise<ObservedProduct[]> {
    const ps: unknown[] = [];
    const rows = await this.#q(
      `SELECT CASE WHEN r.container_id IS NULL THEN 'host' ELSE COALESCE(r.image_digest, ci.image_digest, 'container:' || r.container_id) END AS product,
          COUNT(*) AS n, array_agg(DISTINCT r.container_id) FILTER (WHERE r.container_id IS NOT NULL) AS containers
        FROM records r LEFT JOIN (SELECT chunk_id, container_id, min(image_digest) AS image_digest FROM containers WHERE image_digest IS NOT NULL GROUP BY 1, 2) ci
          ON ci.chunk_id = r.chunk_id AND ci.container_id = r.container_id
        WHERE ${this.#where(undefined, ps)} GROUP BY 1 ORDER BY 1`, ps);
    const names = new Map<string, string[]>();
    for (const r of await this.#q(`SELECT image_digest, array_agg(DISTINCT image_name ORDER BY image_name) AS names FROM images WHERE image_name IS NOT NULL GROUP BY 1`, [])) {
      names.set(r['image_digest'] as string, (r['names'] as string[]) ?? []);
    }
    return rows.filter((r) => !(r['product'] as string).startsWith('container:')).map((r) => {
      const k = r['product'] as string;
      return {
        key: k === 'host' ? { kind: 'host' } : { kind: 'image', digest: k },
        containers: ((r['containers'] as string[] | null) ?? []).slice().sort(), imageNames: names.get(k) ?? [], records: big(r['n']),
      };
    });
  }

  async loadedFiles(p: ProductKey): Promise<LoadedFile[]> {
    const ps: unknown[] = [];
    const where = `r.type IN ('file_open', 'process_exec', 'function_call') AND COALESCE(r.path, r.library) IS NOT NULL AND ${this.#where(p, ps)}`;
    // grouped per (scope, path) first, so that the attribution lookup runs on the groups, not on the records
    const rows = await this.#q(
      `WITH g AS (
         SELECT COALESCE(r.path, r.library) AS path, COALESCE(r.container_id, 'host') AS scope, COUNT(*) AS n, MIN(r.wall_ns) AS first, MAX(r.wall_ns) AS last
         FROM records r WHERE ${where} GROUP BY 1, 2),
       a AS (SELECT scope, path, MIN(purl COLLATE "C") AS purl FROM attribution
         WHERE purl IS NOT NULL AND (scope, path) IN (SELECT scope, path FROM g) GROUP BY 1, 2),
       ref AS (SELECT DISTINCT ON (COALESCE(r.path, r.library)) COALESCE(r.path, r.library) AS path, ${REF_COLUMNS}
         FROM records r JOIN chunks k ON k.chunk_id = r.chunk_id WHERE ${where} ORDER BY COALESCE(r.path, r.library), ${ORDER}),
       s AS (SELECT g.path, SUM(g.n) AS n, MIN(g.first) AS first, MAX(g.last) AS last,
           MIN(a.purl COLLATE "C") AS purl
         FROM g LEFT JOIN a ON a.scope = g.scope AND a.path = g.path GROUP BY 1)
       SELECT s.path, s.n, s.first, s.last, s.purl, ref.chain_id, ref.seq, ref.chunk_sha256, ref.line_no, ref.ts_ns, ref.wall_ns, ref.pid, ref.comm, ref.container_id, ref.image_digest
       FROM s JOIN ref ON ref.path = s.path ORDER BY s.path COLLATE "C"`, ps);
    return rows.map((r) => ({ path: r['path'] as string, purl: str(r['purl']), records: big(r['n']), firstWallNs: big(r['first']), lastWallNs: big(r['last']), ref: refOf(r) }));
  }

  async functionHits(p: ProductKey): Promise<FunctionHit[]> {
    const ps: unknown[] = [];
    const where = `r.type = 'function_call' AND r.symbol IS NOT NULL AND r.library IS NOT NULL AND ${this.#where(p, ps)}`;
    const groups = await this.#q(
      `SELECT r.library, r.symbol, r.node_hash, min(r.runtime) AS runtime, COUNT(*) AS n, MIN(r.wall_ns) AS first, MAX(r.wall_ns) AS last
       FROM records r WHERE ${where} GROUP BY 1, 2, 3 ORDER BY r.library COLLATE "C", r.symbol COLLATE "C", r.node_hash COLLATE "C" NULLS FIRST`, ps);
    if (groups.length === 0) return [];
    const refs = await this.#q(
      `SELECT * FROM (SELECT r.library, r.symbol, r.node_hash, ${REF_COLUMNS}, r.line,
           row_number() OVER (PARTITION BY r.library, r.symbol, r.node_hash ORDER BY ${ORDER}) AS rn
         FROM records r JOIN chunks k ON k.chunk_id = r.chunk_id WHERE ${where}) x
       WHERE rn <= 5 ORDER BY library, symbol, node_hash, rn`, ps);
    const key = (r: Row): string => `${r['library']}\0${r['symbol']}\0${r['node_hash'] ?? ''}`;
    const byKey = new Map<string, Row[]>();
    for (const r of refs) {
      const list = byKey.get(key(r)) ?? [];
      list.push(r);
      byKey.set(key(r), list);
    }
    return groups.map((g) => {
      const mine = byKey.get(key(g)) ?? [];
      return {
        library: g['library'] as string, symbol: g['symbol'] as string, nodeHash: str(g['node_hash']), runtime: str(g['runtime']) ?? '',
        records: big(g['n']), firstWallNs: big(g['first']), lastWallNs: big(g['last']),
        refs: mine.map(refOf), stack: stackOf(str(mine[0]?.['line'])),
      };
    });
  }

  async functionProbes(): Promise<FunctionProbe[]> {
    const window = await chunksOf(this.fleet, chunkWhere(this.#filter));
    return functionProbesOf(await functionCountsOf(window, {}, async () => []));
  }

  async activity(p: ProductKey, n: number): Promise<ActivityBucket[]> {
    const cov = await this.coverage();
    if (cov.fromWallNs === null || cov.toWallNs === null || n <= 0) return [];
    const from = cov.fromWallNs;
    const span = cov.toWallNs - from > 0n ? cov.toWallNs - from : 1n;
    // a record counts at the start of its wall-clock second (iface-observations.md); seconds merged per bucket here, bucketed by the shared activityOf
    const ps: unknown[] = [String(from), String(span), n];
    const rows = await this.#q(
      `SELECT LEAST(GREATEST(floor(((floor(r.wall_ns::numeric / 1000000000) * 1000000000 - $1::numeric) * $3::int) / $2::numeric), 0), $3::int - 1)::int AS b,
         MIN(floor(r.wall_ns::numeric / 1000000000))::text AS sec, r.type, COUNT(*) AS c
       FROM records r WHERE ${this.#where(p, ps)} GROUP BY 1, 3`, ps);
    const key = productKeyString(p);
    return activityOf(rows.map((r) => ({ product: key, second: BigInt(r['sec'] as string), type: r['type'] as string, records: big(r['c']) })), from, cov.toWallNs, n).get(key)
      ?? emptyBuckets(from, cov.toWallNs, n);
  }
}
