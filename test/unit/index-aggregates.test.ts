import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { openEvidenceIndex, type EvidenceIndex } from '../../src/index/index';
import { parseLine } from '../../src/index/ingest';
import { coverage as indexCoverage, functionCounts } from '../../src/index/summary';
import type { AttributedRecord, AttributionTicket, ChunkAttribution } from '../../src/packages';
import { indexObservations } from '../../src/report/index-observations';
import {
  coverageFacts, floorSecond, functionProbesOf, groupedObservations,
  type ActivityGroup, type FileGroup, type HitGroup, type ObservationSource, type ProductGroup,
} from '../../src/report/observation-groups';
import type { EvidenceRef, Observations, ProductKey } from '../../src/report/observations';
import { parseOsvText } from '../../src/report/osv';
import { buildReport, jsonValue } from '../../src/report/report';
import { parseSbomText } from '../../src/report/sbom';
import type { Product } from '../../src/report/verdict';
import { loadVerifyKeyFile } from '../../src/sign/key-files';
import type { AttributionSource } from '../../src/store/sink';
import { mapOwnership } from '../helpers/report';
import { newKey, SYNTH_CONTAINERS, SYNTH_FUNCTIONS, SYNTH_IMAGES, writeSynthetic } from '../helpers/synthetic-evidence';

/**
 * The report reads per-chunk aggregates the index writes (src/index/schema.ts AGGREGATE_SQL),
 * never the records. Here the same questions are answered from the records themselves (every
 * indexed record read back with rows(), its product resolved in JS from its chunk's container
 * facts, one group per record) and both go through the same assembly: every Observations
 * answer and the whole report must be equal. The evidence has many chunks in two collector
 * runs, two containers (one whose records carry no image digest: its image comes from the
 * signed container facts, present in some chunks only, so some of its records have no
 * product), package attribution that changes between chunks, drops in the ledger, a tampered
 * chunk (with --allow-unverified) and a chunk removed by retention.
 */

const WALL0 = 1_764_576_000_000_000_000n;
const ZLIB = 'pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12';

/** Attribution the synthetic chunks sign: container facts (the docker one's image known in every other chunk) and purls for libraries and tools. */
class ScriptedAttribution implements AttributionSource {
  readonly windowFull = false;
  #files = new Map<string, { key: string; scope: string; path: string }>();
  #containers = new Map<string, string | undefined>();
  #chunk = 0;

  note(r: AttributedRecord): void {
    const scope = r.container_id ?? 'host';
    const p = r.event.path ?? r.event.filename ?? r.event.library;
    if (p !== undefined) this.#files.set(`${scope}\0${p}`, { key: `${scope}\0${p}`, scope, path: p });
    if (r.container_id !== undefined) this.#containers.set(r.container_id, r.image_digest);
  }

  takeWindow(): AttributionTicket {
    const t = { files: [...this.#files.values()], containers: this.#containers, omitted: 0, takenAtMs: 0 };
    this.#files = new Map();
    this.#containers = new Map();
    return t;
  }

  async finish(t: AttributionTicket): Promise<ChunkAttribution> {
    const n = this.#chunk++;
    const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
    const containers = [...t.containers.keys()].sort(cmp).map((id) => {
      const i = SYNTH_CONTAINERS.indexOf(id);
      const digest = i === 0 || n % 2 === 0 ? SYNTH_IMAGES[i]! : null;
      return {
        container_id: id, runtime: id.split(':')[0]!, id: id.split('//')[1]!, names: [`synth-${i}`],
        image: { names: [`registry.example/synth-${i}:1`], digest, digest_basis: digest === null ? null : 'manifest' as const, id: null }, reason: null,
      };
    });
    const purlOf = (p: string): string | null =>
      p.includes('/libz') ? ZLIB : p.startsWith('/usr/bin/tool') ? `pkg:deb/debian/tools@1.0-${1 + (n % 3)}?arch=amd64&distro=debian-12` : null;
    const files = [...t.files].sort((a, b) => cmp(a.scope, b.scope) || cmp(a.path, b.path)).map((f) => {
      const purl = purlOf(f.path);
      return { scope: f.scope, path: f.path, purl, via: purl === null ? null : 'dpkg' as const, root: purl === null ? null : 'host' as const, reason: purl === null ? 'not_owned' as const : null, components: [] };
    });
    const reasons: Record<string, number> = {};
    for (const f of files) if (f.reason !== null) reasons[f.reason] = (reasons[f.reason] ?? 0) + 1;
    return { containers, files, omitted: 0, reasons };
  }
}

interface Fixture {
  root: string;
  dir: string;
  pub: string;
}

async function fixture(): Promise<Fixture> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-agg-'));
  const { keyFile } = newKey(path.join(root, 'keys'));
  const dir = path.join(root, 'ev');
  // two collector runs of the same chain, small chunks: many chunks, a function hit in most
  for (const [from, n] of [[0, 2600], [2600, 1900]] as const) {
    await writeSynthetic(dir, keyFile, n, { from, chunkMaxBytes: 48 * 1024, wallStart: WALL0, stepNs: 7_000_000n, attribution: new ScriptedAttribution(), omitSecondImage: true, dropEvery: 997 });
  }
  return { root, dir, pub: `${keyFile}.pub` };
}

/** recordsSource: the same questions from the records themselves, one group per record. */
async function recordsSource(index: EvidenceIndex): Promise<ObservationSource> {
  const chunkOf = new Map<string, number>();
  for (const k of await index.objects('SELECT chunk_id, chain_id, seq FROM chunks')) chunkOf.set(`${k['chain_id']}\0${k['seq']}`, Number(k['chunk_id']));
  const images = new Map<string, string>();
  for (const c of await index.objects('SELECT chunk_id, container_id, image_digest FROM containers WHERE image_digest IS NOT NULL')) {
    const key = `${c['chunk_id']}\0${c['container_id']}`;
    const d = c['image_digest'] as string;
    if (!images.has(key) || d < images.get(key)!) images.set(key, d);
  }
  const purls = new Map<string, string>();
  for (const a of await index.objects('SELECT scope, path, purl FROM attribution WHERE purl IS NOT NULL')) {
    const key = `${a['scope']}\0${a['path']}`;
    const u = a['purl'] as string;
    if (!purls.has(key) || u < purls.get(key)!) purls.set(key, u);
  }
  const files: FileGroup[] = [];
  const hits: HitGroup[] = [];
  const activity: ActivityGroup[] = [];
  const products: ProductGroup[] = [];
  const lines = new Map<string, string>();
  for await (const r of index.rows({})) {
    // as the index parses it: each \udXXX escape read as \ufffd (DuckDB's JSON reader refuses lone surrogates; docs/architecture.md)
    const p = parseLine(r.line.replace(/\\ud.../g, '\\ufffd'));
    assert.ok(typeof p !== 'string', p as string);
    const chunk = chunkOf.get(`${r.chainId}\0${r.seq}`)!;
    const product = r.containerId === null ? 'host' : r.imageDigest ?? images.get(`${chunk}\0${r.containerId}`) ?? null;
    const ref: EvidenceRef = { chainId: r.chainId, seq: r.seq, chunkSha256: r.chunkSha256, lineNo: r.lineNo, tsNs: r.tsNs, wallNs: r.wallNs, pid: r.pid, comm: r.comm, containerId: r.containerId, imageDigest: r.imageDigest };
    lines.set(`${r.chainId}\0${r.seq}\0${r.lineNo}`, r.line);
    products.push({ product, containerId: r.containerId, records: 1n });
    if (product === null) continue;
    activity.push({ product, second: floorSecond(r.wallNs), type: r.type, records: 1n });
    const file = p.path ?? p.library;
    if (['file_open', 'process_exec', 'function_call'].includes(p.type) && file !== null) {
      const scope = r.containerId ?? 'host';
      files.push({ product, scope, path: file, purl: purls.get(`${scope}\0${file}`) ?? null, records: 1n, firstWallNs: r.wallNs, lastWallNs: r.wallNs, ref });
    }
    if (p.type === 'function_call' && p.symbol !== null && p.library !== null) {
      hits.push({ product, library: p.library, symbol: p.symbol, nodeHash: p.nodeHash, runtime: p.runtime ?? '', records: 1n, firstWallNs: r.wallNs, lastWallNs: r.wallNs, refs: [ref] });
    }
  }
  const names = new Map<string, string[]>();
  for (const r of await index.objects('SELECT DISTINCT image_digest, image_name FROM images WHERE image_name IS NOT NULL ORDER BY 2')) {
    names.set(r['image_digest'] as string, [...(names.get(r['image_digest'] as string) ?? []), r['image_name'] as string]);
  }
  return {
    coverage: async () => {
      const c = await indexCoverage(index, {});
      return coverageFacts(c, [...index.sync.failed, ...c.unverified]);
    },
    functionProbes: async () => functionProbesOf(await functionCounts(index, {})),
    productGroups: async () => products,
    imageNames: async () => names,
    fileGroups: async () => files,
    hitGroups: async () => hits,
    activityGroups: async () => activity,
    line: async (ref) => lines.get(`${ref.chainId}\0${ref.seq}\0${ref.lineNo}`),
  };
}

const HOST: ProductKey = { kind: 'host' };
const KEYS: ProductKey[] = [HOST, ...SYNTH_IMAGES.map((digest) => ({ kind: 'image' as const, digest }))];

/** everything the report can ask, as one comparable value */
async function answers(o: Observations): Promise<unknown> {
  const out: Record<string, unknown> = { coverage: await o.coverage(), probes: await o.functionProbes(), products: await o.products() };
  for (const k of KEYS) {
    const id = k.kind === 'host' ? 'host' : k.digest;
    out[`files ${id}`] = await o.loadedFiles(k);
    out[`hits ${id}`] = await o.functionHits(k);
    for (const n of [60, 7, 1]) out[`activity ${n} ${id}`] = await o.activity(k, n);
  }
  return out;
}

const sbom = parseSbomText(JSON.stringify({
  bomFormat: 'CycloneDX', specVersion: '1.6', version: 1, serialNumber: 'urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79',
  components: [
    { type: 'library', 'bom-ref': 'ssl', name: 'libssl3', version: '3.0.19-1', purl: 'pkg:deb/debian/libssl3@3.0.19-1?arch=amd64&distro=debian-12' },
    { type: 'library', 'bom-ref': 'app', name: 'synth-app', version: '1.0-1', purl: 'pkg:deb/debian/synth-app@1.0-1?arch=amd64&distro=debian-12' },
    { type: 'library', 'bom-ref': 'z', name: 'zlib1g', version: '1:1.2.13.dfsg-1', purl: ZLIB },
    { type: 'library', 'bom-ref': 'tools', name: 'tools', version: '1.0-1', purl: 'pkg:deb/debian/tools@1.0-1?arch=amd64&distro=debian-12' },
  ],
}), 'sbom.json');
const osv = (id: string, name: string, imports?: object[]): object => ({
  id, summary: `synthetic ${id}`, database_specific: { synthetic: true },
  affected: [{ package: { ecosystem: 'Debian:12', name }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '9.9-1' }] }], ...(imports ? { ecosystem_specific: { imports } } : {}) }],
});
const VULNS = parseOsvText(JSON.stringify([
  osv('SYN-SSL', 'libssl3', [{ path: 'libssl.so.3', symbols: ['SSL_read'] }]),
  osv('SYN-APP', 'synth-app', [{ path: '/opt/app/bin/app', symbols: ['vuln_func', 'never_called'] }]),
  osv('SYN-Z', 'zlib1g'),
  osv('SYN-TOOLS', 'tools'),
]), 'vulns.json');

async function reportOf(o: Observations, unverified: boolean): Promise<unknown> {
  const own = mapOwnership({ [SYNTH_FUNCTIONS[0]!.library]: 'pkg:deb/debian/libssl3@3.0.19-1?arch=amd64&distro=debian-12', [SYNTH_FUNCTIONS[1]!.library]: 'pkg:deb/debian/synth-app@1.0-1?arch=amd64&distro=debian-12' });
  const products: Product[] = [
    { key: HOST, id: 'urn:rtev:host:test', name: 'synth-host', containers: [] },
    ...SYNTH_IMAGES.map((digest, i) => ({ key: { kind: 'image' as const, digest }, id: `pkg:oci/synth-${i}@${digest}`, name: `synth-${i}`, containers: [SYNTH_CONTAINERS[i]!] })),
  ];
  return jsonValue(await buildReport(products.map((product) => ({ product, sbom })), { ...VULNS, files: 1 }, o, own, {
    notObservedAsNotAffected: true, allowUnverified: unverified, unverified: unverified ? 'a chunk failed verification' : undefined, version: '0.1.0-test', now: new Date(0),
  }));
}

async function compare(fx: Fixture, indexPath: string, allowUnverified = false): Promise<{ agg: unknown }> {
  const idx = await openEvidenceIndex({ source: fx.dir, indexPath, keys: [loadVerifyKeyFile(fx.pub)], allowUnverified });
  try {
    const fromAggregates = indexObservations(idx);
    const fromRecords = groupedObservations(await recordsSource(idx));
    const agg = await answers(fromAggregates);
    assert.deepEqual(agg, await answers(fromRecords));
    assert.deepEqual(await reportOf(indexObservations(idx), allowUnverified), await reportOf(groupedObservations(await recordsSource(idx)), allowUnverified));
    return { agg };
  } finally {
    await idx.close();
  }
}

test('report from the per-chunk aggregates equals the report from the records', async () => {
  const fx = await fixture();
  try {
    const idxFile = path.join(fx.root, 'idx.duckdb');
    const { agg } = (await compare(fx, idxFile)) as { agg: Record<string, any> };
    // the fixture is what it claims to be: many chunks, drops, products resolved three ways, hits with refs
    assert.ok(agg['coverage'].chunks >= 8, `chunks ${agg['coverage'].chunks}`);
    assert.ok(agg['coverage'].lost > 0n);
    const products = (agg['products'] as Array<{ key: ProductKey; records: bigint }>).map((p) => (p.key.kind === 'host' ? 'host' : p.key.digest));
    assert.deepEqual(products, ['host', ...SYNTH_IMAGES]);
    const idx = await openEvidenceIndex({ source: fx.dir, indexPath: idxFile, keys: [loadVerifyKeyFile(fx.pub)] });
    try {
      const noProduct = await idx.scalar(`SELECT SUM(n) FROM agg_products WHERE product IS NULL`);
      assert.ok(BigInt(noProduct as bigint) > 0n, 'some docker records have no known image');
      const viaFacts = await idx.scalar(`SELECT COUNT(*) FROM records r WHERE r.container_id = $1 AND r.image_digest IS NULL`, [SYNTH_CONTAINERS[1]]);
      assert.ok(BigInt(viaFacts as bigint) > 0n);
    } finally {
      await idx.close();
    }
    assert.ok((agg[`hits ${SYNTH_IMAGES[1]}`] as unknown[]).length > 0, 'hits of the image known only from the container facts');
    assert.ok((agg['hits host'] as Array<{ refs: unknown[] }>).every((h) => h.refs.length === 5));
    const tools = (agg['files host'] as Array<{ path: string; purl: string | null }>).filter((f) => f.path.startsWith('/usr/bin/tool'));
    assert.ok(tools.length > 0 && tools.every((f) => f.purl === 'pkg:deb/debian/tools@1.0-1?arch=amd64&distro=debian-12'));

    // retention: a chunk gone leaves the index with its aggregates; incremental equals rebuilt
    const chunks = fs.readdirSync(fx.dir).filter((f) => /^chunk-.*\.ndjson$/.test(f)).sort();
    fs.rmSync(path.join(fx.dir, chunks[1]!));
    const after = await compare(fx, idxFile);
    const rebuilt = await compare(fx, path.join(fx.root, 'idx2.duckdb'));
    assert.deepEqual(after.agg, rebuilt.agg);
    assert.notDeepEqual(after.agg, agg);

    // a tampered chunk, indexed with --allow-unverified: its rows count on both sides
    const victim = path.join(fx.dir, chunks[3]!);
    const bytes = fs.readFileSync(victim);
    bytes[bytes.indexOf('"pid":') + 6] = '9'.charCodeAt(0);
    fs.writeFileSync(victim, bytes);
    const tampered = (await compare(fx, path.join(fx.root, 'idx3.duckdb'), true)) as { agg: Record<string, any> };
    assert.equal(tampered.agg['coverage'].unverifiedChunks, 1);
  } finally {
    fs.rmSync(fx.root, { recursive: true, force: true });
  }
});
