import type { EvidenceIndex } from '../index/index';
import { coverage as indexCoverage, functionCounts } from '../index/summary';
import type { CoverageFacts, EvidenceRef, FunctionProbe, Observations } from './observations';
import {
  coverageFacts, functionProbesOf, groupedObservations, refFromRow,
  type ActivityGroup, type ActivityWindow, type FileGroup, type HitGroup, type ObservationSource, type ProductGroup,
} from './observation-groups';

/**
 * indexObservations answers the report's questions (src/report/observations.ts,
 * /work/coord/iface-observations.md) from the evidence index of a directory (src/index/):
 * its per-chunk aggregates (schema.ts AGGREGATE_SQL, written when a chunk verified and was
 * indexed), the predicates' exact function counts and the index's coverage (ledger drops per
 * probe, chain gaps). The report never scans the records: each question is one grouped query
 * over the aggregates (thousands of rows per chunk at most), merged by the shared assembly
 * (src/report/observation-groups.ts, the same as for the fleet's PostgreSQL).
 */
export function indexObservations(index: EvidenceIndex): Observations {
  return groupedObservations(new IndexSource(index));
}

type Row = Record<string, unknown>;
const big = (v: unknown): bigint => (typeof v === 'bigint' ? v : BigInt((v as number | null) ?? 0));
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

class IndexSource implements ObservationSource {
  readonly #verified: string;
  #chunkMap: Promise<Map<number, { chainId: string; seq: bigint; sha: string }>> | undefined;

  constructor(private readonly index: EvidenceIndex) {
    this.#verified = index.allowUnverified ? 'TRUE' : 'a.verified';
  }

  async coverage(): Promise<CoverageFacts> {
    const c = await indexCoverage(this.index, {});
    return coverageFacts(c, [...this.index.sync.failed, ...c.unverified]);
  }

  async functionProbes(): Promise<FunctionProbe[]> {
    return functionProbesOf(await functionCounts(this.index, {}));
  }

  async productGroups(): Promise<ProductGroup[]> {
    const rows = await this.index.objects(`SELECT a.product, a.container_id, SUM(a.n)::UBIGINT AS n FROM agg_products a WHERE ${this.#verified} GROUP BY 1, 2`);
    return rows.map((r) => ({ product: str(r['product']), containerId: str(r['container_id']), records: big(r['n']) }));
  }

  async imageNames(): Promise<Map<string, string[]>> {
    const names = new Map<string, string[]>();
    for (const r of await this.index.objects(`SELECT image_digest, list(DISTINCT image_name ORDER BY image_name) AS names FROM images WHERE image_name IS NOT NULL GROUP BY 1`)) {
      names.set(r['image_digest'] as string, (r['names'] as string[]) ?? []);
    }
    return names;
  }

  async fileGroups(): Promise<FileGroup[]> {
    // merged per (product, scope, path) in SQL, the per-chunk rows stay in DuckDB: the earliest
    // group is the smallest (wall, chunk rank in (chain, seq) order, line), its ref read back by
    // a join; purl: the smallest attribution of (scope, path)
    const rows = await this.index.objects(
      `WITH k AS (SELECT chunk_id, chain_id, seq, chunk_sha256, row_number() OVER (ORDER BY chain_id, seq, chunk_id)::UINTEGER AS rk FROM chunks),
       g AS (SELECT a.product, a.scope, a.path, SUM(a.n)::UBIGINT AS n, MIN(a.first_wall) AS first, MAX(a.last_wall) AS last,
           MIN({w: a.ref_wall, rk: k.rk, line: a.ref_line, cid: a.chunk_id}) AS m
         FROM agg_files a JOIN k ON k.chunk_id = a.chunk_id WHERE ${this.#verified} GROUP BY 1, 2, 3),
       p AS (SELECT scope, path, MIN(purl) AS purl FROM attribution WHERE purl IS NOT NULL AND (scope, path) IN (SELECT scope, path FROM g) GROUP BY 1, 2)
       SELECT g.product, g.scope, g.path, g.n, g.first, g.last, p.purl, g.m.cid AS chunk_id, r.ref_line AS line_no, r.ref_ts AS ts_ns,
         r.ref_wall AS wall_ns, r.ref_pid AS pid, r.ref_comm AS comm, r.ref_container AS container_id, r.ref_image AS image_digest
       FROM g JOIN agg_files r ON r.chunk_id = g.m.cid AND r.product = g.product AND r.scope = g.scope AND r.path = g.path
         LEFT JOIN p ON p.scope = g.scope AND p.path = g.path`,
    );
    // chain, seq and digest from the chunk id in JS: three long strings less per row to convert
    const chunks = await this.#chunks();
    return rows.map((r) => {
      const k = chunks.get(Number(r['chunk_id']));
      return {
        product: r['product'] as string, scope: r['scope'] as string, path: r['path'] as string, purl: str(r['purl']),
        records: big(r['n']), firstWallNs: big(r['first']), lastWallNs: big(r['last']), ref: refFromRow({ ...r, chain_id: k?.chainId, seq: k?.seq, chunk_sha256: k?.sha }),
      };
    });
  }

  async hitGroups(): Promise<HitGroup[]> {
    const rows = await this.index.objects(
      `SELECT a.product, a.library, a.symbol, a.node_hash, MIN(a.runtime) AS runtime, SUM(a.n)::UBIGINT AS n, MIN(a.first_wall) AS first, MAX(a.last_wall) AS last,
         list({chain_id: k.chain_id, seq: k.seq, chunk_sha256: k.chunk_sha256, refs: a.refs}) AS chunks
       FROM agg_hits a JOIN chunks k ON k.chunk_id = a.chunk_id WHERE ${this.#verified} GROUP BY 1, 2, 3, 4`,
    );
    return rows.map((g) => ({
      product: g['product'] as string, library: g['library'] as string, symbol: g['symbol'] as string, nodeHash: str(g['node_hash']), runtime: str(g['runtime']) ?? '',
      records: big(g['n']), firstWallNs: big(g['first']), lastWallNs: big(g['last']),
      // each chunk's 5 earliest, with the chunk's chain, seq and digest
      refs: ((g['chunks'] as Row[] | null) ?? []).flatMap((k) => ((k['refs'] as Row[] | null) ?? []).map((x) => refFromRow({ ...x, chain_id: k['chain_id'], seq: k['seq'], chunk_sha256: k['chunk_sha256'] }))),
    }));
  }

  async activityGroups(w: ActivityWindow): Promise<ActivityGroup[]> {
    // seconds merged per bucket in SQL, with activityBucket()'s formula: clamp(floor((sec * 1e9 - from) * n / span), 0, n - 1)
    const span = w.to - w.from > 0n ? w.to - w.from : 1n;
    const d = `(a.sec::HUGEINT * 1000000000 - (${w.from})::HUGEINT)`;
    const bucket = `(CASE WHEN ${d} <= 0 THEN 0 ELSE LEAST((${d} * ${w.n}) // (${span})::HUGEINT, ${w.n - 1}) END)`;
    const rows = await this.index.objects(
      `SELECT a.product, a.type, ${bucket} AS b, MIN(a.sec) AS sec, SUM(a.n)::UBIGINT AS n FROM agg_activity a WHERE ${this.#verified} GROUP BY 1, 2, 3`,
    );
    return rows.map((r) => ({ product: r['product'] as string, type: r['type'] as string, second: big(r['sec']), records: big(r['n']) }));
  }

  #chunks(): Promise<Map<number, { chainId: string; seq: bigint; sha: string }>> {
    this.#chunkMap ??= this.index.objects('SELECT chunk_id, chain_id, seq, chunk_sha256 FROM chunks').then((rows) =>
      new Map(rows.map((k) => [Number(k['chunk_id']), { chainId: str(k['chain_id']) ?? '', seq: big(k['seq']), sha: str(k['chunk_sha256']) ?? '' }])));
    return this.#chunkMap;
  }

  async line(ref: EvidenceRef): Promise<string | undefined> {
    for (const [id, k] of await this.#chunks()) if (k.chainId === ref.chainId && k.seq === ref.seq) return this.index.lineAt(id, ref.lineNo);
    return undefined;
  }
}
