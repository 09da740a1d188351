import type { EvidenceIndex } from '../index/index';
import { coverage as indexCoverage, functionCounts } from '../index/summary';
import type { ActivityBucket, CoverageFacts, EvidenceRef, FunctionHit, FunctionProbe, LoadedFile, Observations, ObservedProduct, ProductKey } from './observations';
import { productKeyString } from './observations';

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
 * image_digest, else the image of its container in the signed facts of its own chunk. Queries
 * group the records first by (container, own digest, chunk when the digest must be looked up)
 * and resolve the product on those groups: one scan of the records serves every product.
 */
const KEYS = `r.container_id AS cont, r.image_digest AS dig, CASE WHEN r.container_id IS NOT NULL AND r.image_digest IS NULL THEN r.chunk_id END AS cid`;
const RESOLVE = `CASE WHEN s.cont IS NULL THEN 'host' ELSE COALESCE(s.dig, ci.image_digest) END`;
const CI = `(SELECT chunk_id, container_id, min(image_digest) AS image_digest FROM containers WHERE image_digest IS NOT NULL GROUP BY 1, 2) ci
    ON ci.chunk_id = s.cid AND ci.container_id = s.cont`;
/** the earliest record of a group: by wall_ns, then chunk and line (deterministic for one index) */
const REF = `arg_min({chunk_id: r.chunk_id, line_no: r.line_no, ts_ns: r.ts_ns, wall_ns: r.wall_ns, pid: r.pid, comm: r.comm, container_id: r.container_id,
  image_digest: r.image_digest}, (r.wall_ns, r.chunk_id, r.line_no))`;

interface ChunkIds { chainId: string; seq: bigint; sha: string }

class IndexObservations implements Observations {
  #coverage: Promise<CoverageFacts> | undefined;
  #files: Promise<Map<string, LoadedFile[]>> | undefined;
  #hits: Promise<Map<string, FunctionHit[]>> | undefined;
  #activity = new Map<number, Promise<Map<string, ActivityBucket[]>>>();
  #chunks: Promise<Map<number, ChunkIds>> | undefined;
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
      probes: c.probes.map((p) => ({ probe: p.probe, chunks: p.chunks, lost: p.lost, ...(p.notObserved !== undefined ? { notObserved: p.notObserved } : {}) })),
      gaps, unverifiedChunks: c.unverified.length,
      failures: [...failures].map(([file, reason]) => `${file}: ${reason}`),
      hosts: [...hosts.values()],
    };
  }

  #chunkIds(): Promise<Map<number, ChunkIds>> {
    this.#chunks ??= this.index.objects('SELECT chunk_id, chain_id, seq, chunk_sha256 FROM chunks').then((rows) =>
      new Map(rows.map((k) => [Number(k['chunk_id']), { chainId: str(k['chain_id']) ?? '', seq: big(k['seq']), sha: str(k['chunk_sha256']) ?? '' }])));
    return this.#chunks;
  }

  async #ref(x: Row): Promise<EvidenceRef> {
    const k = (await this.#chunkIds()).get(Number(x['chunk_id']));
    return {
      chainId: k?.chainId ?? '', seq: k?.seq ?? 0n, chunkSha256: k?.sha ?? '', lineNo: Number(x['line_no']),
      tsNs: big(x['ts_ns']), wallNs: big(x['wall_ns']), pid: Number(x['pid']), comm: str(x['comm']) ?? '',
      containerId: str(x['container_id']), imageDigest: str(x['image_digest']),
    };
  }

  async products(): Promise<ObservedProduct[]> {
    const rows = await this.index.objects(
      `WITH s AS (SELECT ${KEYS}, COUNT(*) AS n FROM records r WHERE ${this.#verified} GROUP BY ALL)
       SELECT COALESCE(${RESOLVE}, 'container:' || s.cont) AS product, SUM(s.n)::UBIGINT AS n, list(DISTINCT s.cont) FILTER (WHERE s.cont IS NOT NULL) AS containers
       FROM s LEFT JOIN ${CI} GROUP BY 1 ORDER BY 1`,
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
    this.#files ??= this.#allFiles();
    return (await this.#files).get(productKeyString(p)) ?? [];
  }

  async #allFiles(): Promise<Map<string, LoadedFile[]>> {
    // grouped per (container, digest, path) first: the product and attribution joins run on the groups, not on the records
    const rows = await this.index.objects(
      `WITH s AS (
         SELECT ${KEYS}, COALESCE(r.path, r.library) AS path, COUNT(*) AS n, MIN(r.wall_ns) AS first, MAX(r.wall_ns) AS last, ${REF} AS ref
         FROM records r WHERE ${this.#verified} AND r.type IN ('file_open', 'process_exec', 'function_call') AND COALESCE(r.path, r.library) IS NOT NULL
         GROUP BY ALL),
       g AS (SELECT ${RESOLVE} AS product, COALESCE(s.cont, 'host') AS scope, s.path, s.n, s.first, s.last, s.ref FROM s LEFT JOIN ${CI}),
       a AS (SELECT scope, path, arg_min(purl, chunk_id) AS purl FROM attribution WHERE purl IS NOT NULL AND (scope, path) IN (SELECT scope, path FROM g) GROUP BY 1, 2)
       SELECT g.product, g.path, SUM(g.n)::UBIGINT AS n, MIN(g.first) AS first, MAX(g.last) AS last, arg_min(a.purl, a.purl) AS purl,
         arg_min(g.ref, (g.ref.wall_ns, g.ref.chunk_id, g.ref.line_no)) AS ref
       FROM g LEFT JOIN a ON a.scope = g.scope AND a.path = g.path WHERE g.product IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2`,
    );
    const out = new Map<string, LoadedFile[]>();
    for (const r of rows) {
      const k = r['product'] as string;
      const list = out.get(k) ?? [];
      list.push({ path: r['path'] as string, purl: str(r['purl']), records: big(r['n']), firstWallNs: big(r['first']), lastWallNs: big(r['last']), ref: await this.#ref(r['ref'] as Row) });
      out.set(k, list);
    }
    return out;
  }

  async functionHits(p: ProductKey): Promise<FunctionHit[]> {
    this.#hits ??= this.#allHits();
    return (await this.#hits).get(productKeyString(p)) ?? [];
  }

  async #allHits(): Promise<Map<string, FunctionHit[]>> {
    const where = `${this.#verified} AND r.type = 'function_call' AND r.symbol IS NOT NULL AND r.library IS NOT NULL`;
    const group = `${RESOLVE}, s.library, s.symbol, s.node_hash`;
    const rows = await this.index.objects(
      `WITH s AS (
         SELECT ${KEYS}, r.library, r.symbol, r.node_hash, any_value(r.runtime) AS runtime, COUNT(*) AS n, MIN(r.wall_ns) AS first, MAX(r.wall_ns) AS last,
           arg_min({chunk_id: r.chunk_id, line_no: r.line_no, ts_ns: r.ts_ns, wall_ns: r.wall_ns, pid: r.pid, comm: r.comm, container_id: r.container_id,
             image_digest: r.image_digest}, (r.wall_ns, r.chunk_id, r.line_no), 5) AS refs
         FROM records r WHERE ${where} GROUP BY ALL)
       SELECT ${RESOLVE} AS product, s.library, s.symbol, s.node_hash, any_value(s.runtime) AS runtime, SUM(s.n)::UBIGINT AS n, MIN(s.first) AS first, MAX(s.last) AS last,
         flatten(list(s.refs)) AS refs
       FROM s LEFT JOIN ${CI} WHERE ${RESOLVE} IS NOT NULL GROUP BY ${group} ORDER BY 1, 2, 3, 4 NULLS FIRST`,
    );
    const out = new Map<string, FunctionHit[]>();
    for (const g of rows) {
      // the 5 earliest of the groups' earliest five
      const refs = ((g['refs'] as Row[] | null) ?? []).slice().sort((a, b) => cmpBig(big(a['wall_ns']), big(b['wall_ns'])) || Number(a['chunk_id']) - Number(b['chunk_id']) || Number(a['line_no']) - Number(b['line_no'])).slice(0, 5);
      const first = refs[0];
      const k = g['product'] as string;
      const list = out.get(k) ?? [];
      list.push({
        library: g['library'] as string, symbol: g['symbol'] as string, nodeHash: str(g['node_hash']), runtime: str(g['runtime']) ?? '',
        records: big(g['n']), firstWallNs: big(g['first']), lastWallNs: big(g['last']),
        refs: await Promise.all(refs.map((r) => this.#ref(r))),
        stack: first === undefined ? [] : stackOf(await this.index.lineAt(Number(first['chunk_id']), Number(first['line_no']))),
      });
      out.set(k, list);
    }
    return out;
  }

  async functionProbes(): Promise<FunctionProbe[]> {
    return (await functionCounts(this.index, {})).map((f) => ({ function: f.function, symbol: f.symbol, nodeHash: f.nodeHash, calls: f.calls, chunks: f.chunks }));
  }

  async activity(p: ProductKey, n: number): Promise<ActivityBucket[]> {
    const cov = await this.coverage();
    if (cov.fromWallNs === null || cov.toWallNs === null || n <= 0) return [];
    let all = this.#activity.get(n);
    if (all === undefined) this.#activity.set(n, (all = this.#allActivity(cov.fromWallNs, cov.toWallNs, n)));
    return (await all).get(productKeyString(p)) ?? emptyBuckets(cov.fromWallNs, cov.toWallNs, n);
  }

  async #allActivity(from: bigint, to: bigint, n: number): Promise<Map<string, ActivityBucket[]>> {
    const span = to - from > 0n ? to - from : 1n;
    // bucket = floor((w - from) * n / span), clamped; in BIGINT while (w - from) * n cannot overflow (windows up to ~4 years at n = 60)
    const lim = (1n << 62n) / BigInt(n);
    const num = span < lim
      ? `(CASE WHEN r.wall_ns < ${from} THEN -1 WHEN r.wall_ns - ${from} > ${span} THEN ${n} ELSE ((r.wall_ns - ${from}) * ${n}) // ${span} END)`
      : `(((r.wall_ns::HUGEINT - ${from}::HUGEINT) * ${n}) // ${span}::HUGEINT)`;
    const rows = await this.index.objects(
      `WITH s AS (SELECT ${KEYS}, LEAST(GREATEST(${num}, 0), ${n - 1})::INTEGER AS b, r.type, COUNT(*) AS c FROM records r WHERE ${this.#verified} GROUP BY ALL)
       SELECT ${RESOLVE} AS product, s.b, s.type, SUM(s.c)::UBIGINT AS c FROM s LEFT JOIN ${CI} WHERE ${RESOLVE} IS NOT NULL GROUP BY 1, 2, 3`,
    );
    const out = new Map<string, ActivityBucket[]>();
    for (const r of rows) {
      const k = r['product'] as string;
      let buckets = out.get(k);
      if (buckets === undefined) out.set(k, (buckets = emptyBuckets(from, to, n)));
      buckets[Number(r['b'])]!.counts[r['type'] as string] = Number(r['c']);
    }
    return out;
  }
}

function emptyBuckets(from: bigint, to: bigint, n: number): ActivityBucket[] {
  const span = to - from > 0n ? to - from : 1n;
  return Array.from({ length: n }, (_, i) => ({ startWallNs: from + (span * BigInt(i)) / BigInt(n), counts: {} }));
}

function cmpBig(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
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
