import type { EvidenceIndex } from '../index/index';
import { coverage as indexCoverage, functionCounts } from '../index/summary';
import type { ActivityBucket, CoverageFacts, EvidenceRef, FunctionHit, FunctionProbe, LoadedFile, Observations, ObservedProduct, ProductKey } from './observations';

/**
 * indexObservations answers the report's questions (src/report/observations.ts,
 * /work/coord/iface-observations.md) from the evidence index of a directory (src/index/):
 * rows of chunks that verified when they were indexed (signature, digest, predicate counts),
 * the predicates' exact function counts, the index's coverage (ledger drops per probe, chain
 * gaps). Every method is one or a few grouped queries; no method reads all records into JS.
 */
export function indexObservations(index: EvidenceIndex): Observations {
  return new IndexObservations(index);
}

type Row = Record<string, unknown>;
const big = (v: unknown): bigint => (typeof v === 'bigint' ? v : BigInt((v as number | null) ?? 0));
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/**
 * The product of a record (iface-observations.md): host when it has no container; else its own
 * image_digest, else the image of its container in the signed facts of its own chunk.
 */
function productWhere(p: ProductKey, param: string): string {
  if (p.kind === 'host') return 'r.container_id IS NULL';
  return `r.container_id IS NOT NULL AND (r.image_digest = ${param} OR (r.image_digest IS NULL AND EXISTS (
      SELECT 1 FROM containers c WHERE c.chunk_id = r.chunk_id AND c.container_id = r.container_id AND c.image_digest = ${param})))`;
}

const REF_COLUMNS = `k.chain_id, r.seq, k.chunk_sha256, r.line_no, r.ts_ns, r.wall_ns, r.pid, r.comm, r.container_id, r.image_digest`;
const ORDER = `r.wall_ns, k.chain_id, r.seq, r.line_no`;

function refOf(x: Row): EvidenceRef {
  return {
    chainId: str(x['chain_id']) ?? '', seq: big(x['seq']), chunkSha256: str(x['chunk_sha256']) ?? '', lineNo: Number(x['line_no']),
    tsNs: big(x['ts_ns']), wallNs: big(x['wall_ns']), pid: Number(x['pid']), comm: str(x['comm']) ?? '',
    containerId: str(x['container_id']), imageDigest: str(x['image_digest']),
  };
}

class IndexObservations implements Observations {
  #coverage: Promise<CoverageFacts> | undefined;
  readonly #verified: string;

  constructor(private readonly index: EvidenceIndex) {
    this.#verified = index.allowUnverified ? 'TRUE' : 'r.verified';
  }

  coverage(): Promise<CoverageFacts> {
    this.#coverage ??= this.#computeCoverage();
    return this.#coverage;
  }

  async #computeCoverage(): Promise<CoverageFacts> {
    const c = await indexCoverage(this.index, {});
    const hosts = new Map<string, { hostname: string; machineId: string }>();
    for (const ch of c.chains) hosts.set(`${ch.hostname}\0${ch.machineId}`, { hostname: ch.hostname, machineId: ch.machineId });
    // a chain whose last chunk is not final is still being written (or the collector was killed,
    // which a later run records as an unclean restart): the window ends at its last sealed chunk
    const gaps = c.chains.flatMap((ch) => ch.gaps.filter((g) => !/ is not final: /.test(g)).map((g) => `chain ${ch.chainId.slice(0, 8)}: ${g}`));
    const failures = new Map<string, string>();
    for (const f of [...this.index.sync.failed, ...c.unverified]) if (!failures.has(f.file)) failures.set(f.file, f.reason);
    return {
      fromWallNs: c.fromWallNs, toWallNs: c.toWallNs, chunks: c.chunks, records: c.records, lost: c.lost,
      probes: c.probes.map((p) => ({ probe: p.probe, chunks: p.chunks, lost: p.lost })),
      gaps, unverifiedChunks: c.unverified.length,
      failures: [...failures].map(([file, reason]) => `${file}: ${reason}`),
      hosts: [...hosts.values()],
    };
  }

  async products(): Promise<ObservedProduct[]> {
    const rows = await this.index.objects(
      `SELECT CASE WHEN r.container_id IS NULL THEN 'host' ELSE COALESCE(r.image_digest, ci.image_digest, 'container:' || r.container_id) END AS product,
          COUNT(*) AS n, list(DISTINCT r.container_id) FILTER (WHERE r.container_id IS NOT NULL) AS containers
        FROM records r LEFT JOIN (SELECT chunk_id, container_id, any_value(image_digest) AS image_digest FROM containers WHERE image_digest IS NOT NULL GROUP BY 1, 2) ci
          ON ci.chunk_id = r.chunk_id AND ci.container_id = r.container_id
        WHERE ${this.#verified} GROUP BY 1 ORDER BY 1`,
    );
    const names = new Map<string, string[]>();
    for (const r of await this.index.objects(`SELECT image_digest, list(DISTINCT image_name ORDER BY image_name) AS names FROM images WHERE image_name IS NOT NULL GROUP BY 1`)) {
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
    const params = p.kind === 'host' ? [] : [p.digest];
    // grouped per (scope, path) first, so that the attribution join runs on the groups, not on the records
    const rows = await this.index.objects(
      `WITH g AS (
         SELECT COALESCE(r.path, r.library) AS path, COALESCE(r.container_id, 'host') AS scope, COUNT(*) AS n, MIN(r.wall_ns) AS first, MAX(r.wall_ns) AS last,
           arg_min({chain_id: k.chain_id, seq: r.seq, chunk_sha256: k.chunk_sha256, line_no: r.line_no, ts_ns: r.ts_ns, wall_ns: r.wall_ns, pid: r.pid, comm: r.comm,
             container_id: r.container_id, image_digest: r.image_digest}, (r.wall_ns, k.chain_id, r.seq, r.line_no)) AS ref
         FROM records r JOIN chunks k ON k.chunk_id = r.chunk_id
         WHERE ${this.#verified} AND r.type IN ('file_open', 'process_exec', 'function_call') AND COALESCE(r.path, r.library) IS NOT NULL AND ${productWhere(p, '$1')}
         GROUP BY 1, 2),
       a AS (SELECT scope, path, arg_min(purl, chunk_id) AS purl FROM attribution WHERE purl IS NOT NULL AND (scope, path) IN (SELECT scope, path FROM g) GROUP BY 1, 2)
       SELECT g.path, SUM(g.n)::UBIGINT AS n, MIN(g.first) AS first, MAX(g.last) AS last, arg_min(a.purl, g.first) FILTER (WHERE a.purl IS NOT NULL) AS purl,
         arg_min(g.ref, (g.ref.wall_ns, g.ref.chain_id, g.ref.seq, g.ref.line_no)) AS ref
       FROM g LEFT JOIN a ON a.scope = g.scope AND a.path = g.path GROUP BY 1 ORDER BY 1`,
      params,
    );
    return rows.map((r) => ({
      path: r['path'] as string, purl: str(r['purl']), records: big(r['n']), firstWallNs: big(r['first']), lastWallNs: big(r['last']), ref: refOf(r['ref'] as Row),
    }));
  }

  async functionHits(p: ProductKey): Promise<FunctionHit[]> {
    const params = p.kind === 'host' ? [] : [p.digest];
    const where = `${this.#verified} AND r.type = 'function_call' AND r.symbol IS NOT NULL AND r.library IS NOT NULL AND ${productWhere(p, '$1')}`;
    const groups = await this.index.objects(
      `SELECT r.library, r.symbol, r.node_hash, any_value(r.runtime) AS runtime, COUNT(*) AS n, MIN(r.wall_ns) AS first, MAX(r.wall_ns) AS last
       FROM records r WHERE ${where} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 NULLS FIRST`, params,
    );
    if (groups.length === 0) return [];
    const refs = await this.index.objects(
      `SELECT r.library, r.symbol, r.node_hash, r.chunk_id AS chunk_id_, ${REF_COLUMNS}
       FROM records r JOIN chunks k ON k.chunk_id = r.chunk_id WHERE ${where}
       QUALIFY row_number() OVER (PARTITION BY r.library, r.symbol, r.node_hash ORDER BY ${ORDER}) <= 5
       ORDER BY r.library, r.symbol, r.node_hash, ${ORDER}`, params,
    );
    const key = (r: Row): string => `${r['library']}\0${r['symbol']}\0${r['node_hash'] ?? ''}`;
    const byKey = new Map<string, Row[]>();
    for (const r of refs) {
      const list = byKey.get(key(r)) ?? [];
      list.push(r);
      byKey.set(key(r), list);
    }
    const out: FunctionHit[] = [];
    for (const g of groups) {
      const mine = byKey.get(key(g)) ?? [];
      const first = mine[0];
      out.push({
        library: g['library'] as string, symbol: g['symbol'] as string, nodeHash: str(g['node_hash']), runtime: str(g['runtime']) ?? '',
        records: big(g['n']), firstWallNs: big(g['first']), lastWallNs: big(g['last']),
        refs: mine.map(refOf), stack: first === undefined ? [] : stackOf(await this.index.lineAt(Number(first['chunk_id_']), Number(first['line_no']))),
      });
    }
    return out;
  }

  async functionProbes(): Promise<FunctionProbe[]> {
    return (await functionCounts(this.index, {})).map((f) => ({ function: f.function, symbol: f.symbol, nodeHash: f.nodeHash, calls: f.calls, chunks: f.chunks }));
  }

  async activity(p: ProductKey, n: number): Promise<ActivityBucket[]> {
    const cov = await this.coverage();
    if (cov.fromWallNs === null || cov.toWallNs === null || n <= 0) return [];
    const from = cov.fromWallNs;
    const span = cov.toWallNs - from > 0n ? cov.toWallNs - from : 1n;
    const buckets: ActivityBucket[] = Array.from({ length: n }, (_, i) => ({ startWallNs: from + (span * BigInt(i)) / BigInt(n), counts: {} }));
    const params: unknown[] = p.kind === 'host' ? [] : [p.digest];
    const rows = await this.index.objects(
      `SELECT LEAST(GREATEST(((r.wall_ns::HUGEINT - ${from}::HUGEINT) * ${n}) // ${span}::HUGEINT, 0), ${n - 1})::INTEGER AS b, r.type, COUNT(*) AS c
       FROM records r WHERE ${this.#verified} AND ${productWhere(p, '$1')} GROUP BY 1, 2`, params,
    );
    for (const r of rows) buckets[Number(r['b'])]!.counts[r['type'] as string] = Number(r['c']);
    return buckets;
  }
}

/** stackOf reads event.stack (frame addresses as strings) from a record line. */
function stackOf(line: string | undefined): string[] {
  if (line === undefined) return [];
  try {
    const rec = JSON.parse(line) as { event?: { stack?: unknown } };
    return Array.isArray(rec.event?.stack) ? rec.event.stack.slice(0, 256).map(String) : [];
  } catch {
    return [];
  }
}
