import * as fs from 'node:fs';
import * as path from 'node:path';
import { isObj, type StrictObject, type StrictValue } from '../encode/strict-json';
import { openStatement } from '../sign/statement-read';
import type { VerifyKey } from '../sign/keys';
import { chunkName, envelopeName } from '../store/layout';
import { verifyEvidence, type VerifyReport } from '../verify/evidence';
import { checkFunctionCalls, parsePredicate, probeField } from '../verify/predicate';
import type { ActivityBucket, CoverageFacts, EvidenceRef, FunctionHit, FunctionProbe, LoadedFile, Observations, ObservedProduct, ProductKey } from './observations';
import { productKeyString } from './observations';

/**
 * ScanObservations reads an evidence directory directly: `rtev verify`'s checks first, then
 * one pass over every sealed chunk, keeping only aggregates (per product: files, function
 * hits, per-second activity). The embedded index (src/index/) answers the same questions
 * from its tables; this reader needs no index and is the reference for the report tests.
 */
export interface ScanResult {
  verify: VerifyReport;
  observations: Observations;
}

interface ChunkFacts {
  seq: bigint;
  sha256: string;
  chainId: string;
  openedWall: bigint;
  openedMono: bigint;
  sealedWall: bigint;
  probes: string[];
  lost: Map<string, bigint>;
  functionCalls: Array<{ function: string; symbol: string; node_hash: string | null; calls: bigint }>;
  files: Map<string, string | null>;
  containerImages: Map<string, string>;
  hostname: string;
  machineId: string;
}

interface ProductAgg {
  files: Map<string, LoadedFile>;
  hits: Map<string, FunctionHit>;
  perSecond: Map<number, Map<string, number>>;
  containers: Set<string>;
  records: bigint;
}

const TS = /"ts_ns":(\d+)/;

export function scanEvidence(dir: string, keys: readonly VerifyKey[]): ScanResult {
  const verify = verifyEvidence(dir, keys);
  const chunks: ChunkFacts[] = [];
  const bad = new Set(verify.problems.map((p) => p.file));
  const products = new Map<string, ProductAgg>();
  const agg = (k: string): ProductAgg => {
    let a = products.get(k);
    if (a === undefined) products.set(k, (a = { files: new Map(), hits: new Map(), perSecond: new Map(), containers: new Set(), records: 0n }));
    return a;
  };
  let records = 0n;
  const names = fs.readdirSync(dir).filter((n) => /^chunk-\d{12}\.ndjson$/.test(n)).sort();
  let unverified = 0;
  for (const name of names) {
    const seq = Number(name.slice(6, 18));
    const envFile = path.join(dir, envelopeName(seq));
    if (!fs.existsSync(envFile)) continue;
    const opened = openStatement(fs.readFileSync(envFile));
    if (!opened.ok) continue;
    const parsed = parsePredicate(opened.value.predicate);
    if (!parsed.ok) continue;
    if (bad.has(name) || bad.has(envelopeName(seq)) || bad.has(chunkName(seq))) unverified++;
    const p = parsed.predicate;
    const producer = p.raw['producer'];
    const probes = isObj(producer) && Array.isArray(producer['probes']) ? producer['probes'].filter((x): x is string => typeof x === 'string') : [];
    const lost = new Map<string, bigint>();
    for (const [probe, w] of p.ledger.probes) lost.set(probe, probeField(w, 'kernel.ring_full') + probeField(w, 'user.rejected') + probeField(w, 'user.shed'));
    const fc = checkFunctionCalls(p.raw).entries;
    const facts: ChunkFacts = {
      seq: p.chain.seq, sha256: opened.value.subjectSha256, chainId: p.chain.chain_id,
      openedWall: p.clock.opened.wall_ns, openedMono: p.clock.opened.mono_ns, sealedWall: p.clock.sealed.wall_ns,
      probes, lost, functionCalls: fc.map((e) => ({ function: e.function, symbol: e.symbol, node_hash: e.node_hash, calls: e.calls })),
      ...attribution(p.raw['attribution']),
      hostname: p.host.hostname, machineId: p.host.machine_id,
    };
    chunks.push(facts);
    const text = fs.readFileSync(path.join(dir, name), 'utf8');
    let lineNo = 0;
    let start = 0;
    while (start < text.length) {
      let end = text.indexOf('\n', start);
      if (end < 0) end = text.length;
      const line = text.slice(start, end);
      start = end + 1;
      lineNo++;
      if (line === '') continue;
      let r: Record<string, unknown>;
      try {
        r = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      records++;
      const ev = r['event'] as Record<string, unknown> | undefined;
      const type = typeof ev?.['type'] === 'string' ? (ev['type'] as string) : 'unknown';
      const tsNs = BigInt(TS.exec(line)?.[1] ?? '0');
      const wallNs = tsNs - facts.openedMono + facts.openedWall;
      const containerId = typeof r['container_id'] === 'string' ? r['container_id'] : null;
      const imageDigest = typeof r['image_digest'] === 'string' ? r['image_digest'] : (containerId !== null ? facts.containerImages.get(containerId) ?? null : null);
      const key = imageDigest ?? (containerId === null ? 'host' : `container:${containerId}`);
      const a = agg(key);
      a.records++;
      if (containerId !== null) a.containers.add(containerId);
      const sec = Number(wallNs / 1_000_000_000n);
      let bucket = a.perSecond.get(sec);
      if (bucket === undefined) a.perSecond.set(sec, (bucket = new Map()));
      bucket.set(type, (bucket.get(type) ?? 0) + 1);
      const ref = (): EvidenceRef => ({ chainId: facts.chainId, seq: facts.seq, chunkSha256: facts.sha256, lineNo, tsNs, wallNs, pid: Number(r['pid']), comm: String(r['comm'] ?? ''), containerId, imageDigest });
      const file = type === 'file_open' ? ev?.['path'] : type === 'process_exec' ? ev?.['filename'] : type === 'function_call' ? ev?.['library'] : undefined;
      if (typeof file === 'string') {
        const f = a.files.get(file);
        if (f === undefined) a.files.set(file, { path: file, purl: facts.files.get(`${containerId ?? 'host'}\0${file}`) ?? null, records: 1n, firstWallNs: wallNs, lastWallNs: wallNs, ref: ref() });
        else {
          f.records++;
          if (wallNs < f.firstWallNs) f.firstWallNs = wallNs;
          if (wallNs > f.lastWallNs) f.lastWallNs = wallNs;
          if (f.purl === null) f.purl = facts.files.get(`${containerId ?? 'host'}\0${file}`) ?? null;
        }
      }
      if (type === 'function_call' && typeof ev?.['symbol'] === 'string' && typeof file === 'string') {
        const nh = typeof ev['node_hash'] === 'string' ? ev['node_hash'] : null;
        const k = `${file}\0${ev['symbol']}\0${nh ?? ''}`;
        const h = a.hits.get(k);
        if (h === undefined) {
          a.hits.set(k, { library: file, symbol: ev['symbol'], nodeHash: nh, runtime: String(ev['runtime'] ?? ''), records: 1n, firstWallNs: wallNs, lastWallNs: wallNs, refs: [ref()],
            stack: Array.isArray(ev['stack']) ? (ev['stack'] as unknown[]).map(String) : [] });
        } else {
          h.records++;
          if (wallNs > h.lastWallNs) h.lastWallNs = wallNs;
          if (h.refs.length < 5) h.refs.push(ref());
        }
      }
    }
  }
  const coverage = coverageOf(chunks, verify, records, unverified);
  const probeList = functionProbes(chunks);
  const obs: Observations = {
    coverage: async () => coverage,
    products: async (): Promise<ObservedProduct[]> => [...products].map(([k, a]) => ({
      key: k === 'host' ? { kind: 'host' } : { kind: 'image', digest: k }, containers: [...a.containers].sort(), imageNames: [], records: a.records,
    })),
    loadedFiles: async (p) => [...(products.get(productKeyString(p))?.files.values() ?? [])],
    functionHits: async (p) => [...(products.get(productKeyString(p))?.hits.values() ?? [])],
    functionProbes: async () => probeList,
    activity: async (p: ProductKey, n: number) => activity(products.get(productKeyString(p))?.perSecond, coverage, n),
  };
  return { verify, observations: obs };
}

function attribution(a: StrictValue | undefined): { files: Map<string, string | null>; containerImages: Map<string, string> } {
  const files = new Map<string, string | null>();
  const containerImages = new Map<string, string>();
  if (!isObj(a)) return { files, containerImages };
  for (const f of Array.isArray(a['files']) ? a['files'] : []) {
    if (isObj(f) && typeof f['scope'] === 'string' && typeof f['path'] === 'string') files.set(`${f['scope']}\0${f['path']}`, typeof f['purl'] === 'string' ? f['purl'] : null);
  }
  for (const c of Array.isArray(a['containers']) ? a['containers'] : []) {
    const img = isObj(c) ? (c['image'] as StrictObject | undefined) : undefined;
    if (isObj(c) && typeof c['container_id'] === 'string' && isObj(img) && typeof img['digest'] === 'string') containerImages.set(c['container_id'], img['digest']);
  }
  return { files, containerImages };
}

function coverageOf(chunks: ChunkFacts[], verify: VerifyReport, records: bigint, unverified: number): CoverageFacts {
  const probes = new Map<string, { chunks: number; lost: bigint }>();
  for (const c of chunks) {
    for (const p of c.probes) {
      const e = probes.get(p) ?? { chunks: 0, lost: 0n };
      e.chunks++;
      e.lost += c.lost.get(p) ?? 0n;
      probes.set(p, e);
    }
  }
  const hosts = new Map<string, { hostname: string; machineId: string }>();
  for (const c of chunks) hosts.set(`${c.hostname}\0${c.machineId}`, { hostname: c.hostname, machineId: c.machineId });
  return {
    fromWallNs: chunks.length === 0 ? null : chunks.reduce((m, c) => (c.openedWall < m ? c.openedWall : m), chunks[0]!.openedWall),
    toWallNs: chunks.length === 0 ? null : chunks.reduce((m, c) => (c.sealedWall > m ? c.sealedWall : m), chunks[0]!.sealedWall),
    chunks: chunks.length,
    records,
    lost: [...probes.values()].reduce((s, p) => s + p.lost, 0n),
    probes: [...probes].map(([probe, e]) => ({ probe, chunks: e.chunks, lost: e.lost })).sort((a, b) => (a.probe < b.probe ? -1 : 1)),
    gaps: verify.gaps.filter((g) => !/^recorded drops:|^the chain ends without a final chunk/.test(g.reason)).map((g) => `${g.file}: ${g.reason}`),
    unverifiedChunks: unverified,
    failures: verify.problems.map((p) => `${p.file}: ${p.reason}`),
    hosts: [...hosts.values()],
  };
}

function functionProbes(chunks: ChunkFacts[]): FunctionProbe[] {
  const m = new Map<string, FunctionProbe>();
  for (const c of chunks) {
    for (const e of c.functionCalls) {
      const k = `${e.function}\0${e.symbol}\0${e.node_hash ?? ''}`;
      const p = m.get(k);
      if (p === undefined) m.set(k, { function: e.function, symbol: e.symbol, nodeHash: e.node_hash, calls: e.calls, chunks: 1 });
      else {
        p.calls += e.calls;
        p.chunks++;
      }
    }
  }
  return [...m.values()];
}

function activity(perSecond: Map<number, Map<string, number>> | undefined, cov: CoverageFacts, n: number): ActivityBucket[] {
  if (cov.fromWallNs === null || cov.toWallNs === null || n <= 0) return [];
  const from = cov.fromWallNs;
  const span = cov.toWallNs - from > 0n ? cov.toWallNs - from : 1n;
  const buckets: ActivityBucket[] = Array.from({ length: n }, (_, i) => ({ startWallNs: from + (span * BigInt(i)) / BigInt(n), counts: {} }));
  for (const [sec, types] of perSecond ?? []) {
    const ns = BigInt(sec) * 1_000_000_000n;
    let i = Number(((ns - from) * BigInt(n)) / span);
    i = Math.max(0, Math.min(n - 1, i));
    for (const [t, c] of types) buckets[i]!.counts[t] = (buckets[i]!.counts[t] ?? 0) + c;
  }
  return buckets;
}
