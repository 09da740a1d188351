import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toCycloneDx } from '../../src/report/cyclonedx';
import type { CoverageFacts } from '../../src/report/observations';
import { toOpenVex } from '../../src/report/openvex';
import { parseOsvText } from '../../src/report/osv';
import { buildReport, jsonValue, statusCounts, type ReportModel } from '../../src/report/report';
import { parseSbomText } from '../../src/report/sbom';
import { toTable } from '../../src/report/table';
import { componentNodeHash, coverageGaps, type Product } from '../../src/report/verdict';
import { coverageOf, type ChunkRow } from '../../src/index/summary';
import { cycloneDxErrors, fixtureObservations, goVexRules, mapOwnership, openVexValidator, ref } from '../helpers/report';

const SSL = 'pkg:deb/debian/libssl3@3.0.19-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl';
const ZLIB = 'pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12&upstream=zlib';
const CURL = 'pkg:deb/debian/libcurl4@7.88.1-10+deb12u14?arch=amd64&distro=debian-12&upstream=curl';
const LIBSSL = '/usr/lib/x86_64-linux-gnu/libssl.so.3';
const T0 = 1_764_576_000_000_000_000n; // 2025-12-01T08:00:00Z

const sbom = parseSbomText(JSON.stringify({
  bomFormat: 'CycloneDX', specVersion: '1.6', version: 1, serialNumber: 'urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79',
  components: [
    { type: 'library', 'bom-ref': 'ssl', name: 'libssl3', version: '3.0.19-1~deb12u2', purl: SSL },
    { type: 'library', 'bom-ref': 'z', name: 'zlib1g', version: '1:1.2.13.dfsg-1', purl: ZLIB },
    { type: 'library', 'bom-ref': 'curl', name: 'libcurl4', version: '7.88.1-10+deb12u14', purl: CURL },
  ],
}), 'sbom.json');

function osv(id: string, name: string, events: object[], imports?: object[]): object {
  return { id, summary: `synthetic ${id}`, database_specific: { synthetic: true },
    affected: [{ package: { ecosystem: 'Debian:12', name }, ranges: [{ type: 'ECOSYSTEM', events }], ...(imports ? { ecosystem_specific: { imports } } : {}) }] };
}
const VULNS = parseOsvText(JSON.stringify([
  osv('SYN-CALLED', 'openssl', [{ introduced: '0' }, { fixed: '3.0.99-1' }], [{ path: 'libssl.so.3', symbols: ['SSL_select_next_proto'] }]),
  osv('SYN-PROBED', 'openssl', [{ introduced: '0' }, { fixed: '3.0.99-1' }], [{ path: 'libssl.so.3', symbols: ['SSL_get_shared_ciphers'] }]),
  osv('SYN-NOTLOADED', 'zlib', [{ introduced: '0' }, { fixed: '1:1.3-1' }]),
  osv('SYN-LOADED', 'curl', [{ introduced: '0' }, { fixed: '7.88.1-10+deb12u99' }]),
  osv('SYN-FIXED', 'openssl', [{ introduced: '3.0.0-1' }, { fixed: '3.0.10-1' }]),
  osv('SYN-NEVER', 'openssl', [{ introduced: '4.0.0-1' }, { fixed: '4.0.2-1' }]),
  osv('SYN-TILDE', 'openssl', [{ introduced: '0' }, { fixed: '3.0.19-1~deb12u1' }]),
  osv('SYN-TILDE2', 'openssl', [{ introduced: '0' }, { fixed: '3.0.19-1' }]),
]), 'vulns.json');

const host: Product = { key: { kind: 'host' }, id: 'urn:rtev:host:0123456789abcdef0123456789abcdef', name: 'test-host', containers: [] };

function coverage(lostFunctionCall = 0n, chunks = 3): CoverageFacts {
  return {
    fromWallNs: T0, toWallNs: T0 + 30_000_000_000n, chunks, records: 1000n, lost: lostFunctionCall,
    probes: ['file_open', 'process_exec', 'function_call'].map((probe) => ({ probe, chunks, lost: probe === 'function_call' ? lostFunctionCall : 0n })),
    gaps: [], unverifiedChunks: 0, failures: [], hosts: [{ hostname: 'test-host', machineId: '0123456789abcdef0123456789abcdef' }],
  };
}

async function report(o: { lost?: bigint; optIn?: boolean; unverified?: string; probeChunks?: number } = {}): Promise<ReportModel> {
  const comp = sbom.components[0]!;
  const nh = componentNodeHash(comp, { kind: 'native', path: 'libssl.so.3', symbol: 'SSL_select_next_proto' })!;
  const obs = fixtureObservations({
    coverage: coverage(o.lost ?? 0n),
    loaded: { host: [
      { path: LIBSSL, purl: null, records: 4n, firstWallNs: T0 + 1n, lastWallNs: T0 + 9n, ref: ref(1n, 3, 100, T0 + 1n) },
      { path: '/usr/lib/x86_64-linux-gnu/libcurl.so.4.8.0', purl: CURL, records: 2n, firstWallNs: T0 + 2n, lastWallNs: T0 + 3n, ref: ref(1n, 4, 100, T0 + 2n) },
    ] },
    hits: { host: [{ library: LIBSSL, symbol: 'SSL_select_next_proto', nodeHash: nh, runtime: 'native', records: 2n, firstWallNs: T0 + 5n, lastWallNs: T0 + 6n,
      refs: [ref(2n, 7, 100, T0 + 5n)], stack: ['0x7f0000001000', '0x55550000abcd', '0x0'] }] },
    probes: [
      { function: `${LIBSSL}:SSL_select_next_proto`, symbol: 'SSL_select_next_proto', nodeHash: nh, calls: 2n, chunks: 3 },
      { function: `${LIBSSL}:SSL_get_shared_ciphers`, symbol: 'SSL_get_shared_ciphers', nodeHash: null, calls: 0n, chunks: o.probeChunks ?? 3 },
    ],
  });
  const own = mapOwnership({ [LIBSSL]: SSL, '/usr/lib/x86_64-linux-gnu/libz.so.1.2.13': ZLIB });
  return buildReport([{ product: host, sbom }], { ...VULNS, files: 1 }, obs, own, {
    notObservedAsNotAffected: o.optIn ?? false, unverified: o.unverified, allowUnverified: o.unverified !== undefined, version: '0.1.0-test', now: new Date(0),
  });
}

function byId(m: ReportModel): Record<string, { status: string; step: string; justification?: string | undefined }> {
  return Object.fromEntries(m.products[0]!.verdicts.map((v) => [v.vulnId, { status: v.status, step: v.step, ...(v.justification ? { justification: v.justification } : {}) }]));
}

test('verdict ladder: every step, default policy', async () => {
  const m = await report();
  assert.deepEqual(byId(m), {
    'SYN-CALLED': { status: 'affected', step: 'function_executed' },
    'SYN-PROBED': { status: 'under_investigation', step: 'probed_not_called' },
    'SYN-NOTLOADED': { status: 'under_investigation', step: 'not_loaded' },
    'SYN-LOADED': { status: 'affected', step: 'component_loaded' },
    'SYN-FIXED': { status: 'fixed', step: 'fixed' },
    'SYN-NEVER': { status: 'not_affected', step: 'version_not_affected', justification: 'vulnerable_code_not_present' },
    'SYN-TILDE': { status: 'fixed', step: 'fixed' },
    'SYN-TILDE2': { status: 'affected', step: 'component_loaded' },
  });
  const called = m.products[0]!.verdicts.find((v) => v.vulnId === 'SYN-CALLED')!;
  assert.match(called.actionStatement!, /Upgrade libssl3 to 3\.0\.99-1 or later/);
  assert.deepEqual(called.refs.map((r) => [r.seq, r.lineNo, r.pid]), [[2n, 7, 100]]);
  assert.match(called.statusNotes, /SSL_select_next_proto in \/usr\/lib\/x86_64-linux-gnu\/libssl\.so\.3 \(2 function_call record/);
  assert.match(m.products[0]!.verdicts.find((v) => v.vulnId === 'SYN-LOADED')!.statusNotes, /component-level: libcurl4 was loaded/);
  assert.deepEqual(statusCounts(m), { affected: 3, not_affected: 1, fixed: 2, under_investigation: 2 });
  const table = toTable(m);
  assert.match(table, /SYN-CALLED\*\s+libssl3\s+3\.0\.19-1~deb12u2\s+affected\s+function_executed\s+2 call record\(s\), chunk 2 line 7 pid 100/);
});

test('opt-in: complete coverage turns "not observed" into not_affected / vulnerable_code_not_in_execute_path, never _not_present', async () => {
  const m = await report({ optIn: true });
  const v = byId(m);
  assert.deepEqual(v['SYN-PROBED'], { status: 'not_affected', step: 'probed_not_called', justification: 'vulnerable_code_not_in_execute_path' });
  assert.deepEqual(v['SYN-NOTLOADED'], { status: 'not_affected', step: 'not_loaded', justification: 'vulnerable_code_not_in_execute_path' });
  assert.equal(v['SYN-CALLED']!.status, 'affected');
  for (const x of m.products[0]!.verdicts) {
    if (x.step !== 'version_not_affected') assert.notEqual(x.justification, 'vulnerable_code_not_present', x.vulnId);
  }
  assert.match(m.products[0]!.verdicts.find((x) => x.vulnId === 'SYN-PROBED')!.impactStatement!, /window 2025-12-01T08:00:00\.000Z to 2025-12-01T08:00:30\.000Z .*all 3 chunk/);
});

test('opt-in: a function_call drop in the ledger, or a probe not active for the whole window, keeps under_investigation', async () => {
  const lossy = await report({ optIn: true, lost: 5n });
  const p = lossy.products[0]!.verdicts.find((x) => x.vulnId === 'SYN-PROBED')!;
  assert.equal(p.status, 'under_investigation');
  assert.deepEqual(p.coverageReasons, ['drop ledger: 5 function_call record(s) lost']);
  assert.match(p.statusNotes, /kept under_investigation \(coverage incomplete\).*5 function_call record\(s\) lost/);
  // file_open lost nothing: the never-loaded package is still not_affected
  assert.equal(lossy.products[0]!.verdicts.find((x) => x.vulnId === 'SYN-NOTLOADED')!.status, 'not_affected');
  const partial = await report({ optIn: true, probeChunks: 2 });
  const q = partial.products[0]!.verdicts.find((x) => x.vulnId === 'SYN-PROBED')!;
  assert.equal(q.status, 'under_investigation');
  assert.deepEqual(q.coverageReasons, ['SSL_get_shared_ciphers probed in 2 of 3 chunks']);
});

test('unverified evidence (allowed): evidence-based verdicts capped at under_investigation with the reason', async () => {
  const m = await report({ optIn: true, unverified: 'evidence failed verification: chunk-000000000002.ndjson digest mismatch' });
  const v = byId(m);
  for (const id of ['SYN-CALLED', 'SYN-PROBED', 'SYN-NOTLOADED', 'SYN-LOADED']) assert.equal(v[id]!.status, 'under_investigation', id);
  assert.equal(v['SYN-FIXED']!.status, 'fixed');
  assert.match(m.products[0]!.verdicts.find((x) => x.vulnId === 'SYN-CALLED')!.statusNotes, /^at most under_investigation: evidence failed verification/);
});

test('OpenVEX output validates against the OpenVEX 0.2.0 schema and go-vex rules; stable @id; unique statements', async () => {
  const validate = openVexValidator();
  for (const opts of [{}, { optIn: true }, { optIn: true, lost: 1n }, { unverified: 'x' }]) {
    const m = await report(opts);
    const text = toOpenVex(m);
    const doc = JSON.parse(text);
    assert.deepEqual(validate(doc), [], String(Object.keys(opts)));
    assert.deepEqual(goVexRules(doc), []);
    assert.equal(doc.version, 1);
    assert.equal(new Set(doc.statements.map((s: { '@id': string }) => s['@id'])).size, doc.statements.length);
    assert.equal(toOpenVex(await report(opts)), text, 'same input, same bytes');
  }
  const a = JSON.parse(toOpenVex(await report()));
  const b = JSON.parse(toOpenVex(await report({ optIn: true })));
  assert.notEqual(a['@id'], b['@id'], 'a content change is a new document id');
  const s = a.statements.find((x: { vulnerability: { name: string } }) => x.vulnerability.name === 'SYN-CALLED');
  assert.deepEqual(s.products, [{ '@id': host.id, subcomponents: [{ '@id': SSL }] }]);
  // the schema itself catches what it must: version 0, an affected statement without action
  assert.notDeepEqual(validate({ ...a, version: 0 }), []);
  const broken = structuredClone(a);
  delete broken.statements.find((x: { status: string }) => x.status === 'affected').action_statement;
  assert.notDeepEqual(validate(broken), []);
});

test('CycloneDX output validates with @cyclonedx/cyclonedx-library (1.6 strict): analysis, affects refs, evidence, rtev: properties', async () => {
  for (const opts of [{}, { optIn: true }]) {
    const text = toCycloneDx(await report(opts));
    assert.equal(await cycloneDxErrors(text), null);
    const bom = JSON.parse(text);
    const refs = new Set<string>();
    const walk = (cs: Array<Record<string, unknown>>): void => cs.forEach((c) => { refs.add(c['bom-ref'] as string); walk((c['components'] ?? []) as Array<Record<string, unknown>>); });
    walk(bom.components);
    for (const v of bom.vulnerabilities) for (const a of v.affects) assert.ok(refs.has(a.ref), a.ref);
    const called = bom.vulnerabilities.find((v: { id: string }) => v.id === 'SYN-CALLED');
    assert.equal(called.analysis.state, 'exploitable');
    assert.deepEqual(called.analysis.response, ['update']);
    const ssl = bom.components[0].components.find((c: { purl: string }) => c.purl === SSL);
    assert.deepEqual(ssl.evidence.occurrences[0], { location: LIBSSL, symbol: 'SSL_select_next_proto', additionalContext: ssl.evidence.occurrences[0].additionalContext });
    assert.deepEqual(ssl.evidence.callstack.frames[0], { module: LIBSSL, function: 'SSL_select_next_proto', fullFilename: LIBSSL });
    const probed = bom.vulnerabilities.find((v: { id: string }) => v.id === 'SYN-PROBED');
    assert.deepEqual(probed.analysis.state, opts.hasOwnProperty('optIn') ? 'not_affected' : 'in_triage');
    if (opts.hasOwnProperty('optIn')) assert.equal(probed.analysis.justification, 'code_not_reachable');
    assert.equal(bom.vulnerabilities.find((v: { id: string }) => v.id === 'SYN-FIXED').analysis.state, 'resolved');
  }
});

test('JSON report: bigint values exact as strings, counts present', async () => {
  const j = jsonValue(await report()) as { counts: Record<string, number>; coverage: { fromWallNs: string }; products: Array<{ verdicts: Array<{ evidence: Array<{ ts_ns: string }> }> }> };
  assert.equal(j.coverage.fromWallNs, T0.toString());
  assert.deepEqual(j.counts, { affected: 3, not_affected: 1, fixed: 2, under_investigation: 2 });
  assert.equal(typeof j.products[0]!.verdicts[0]!.evidence.length, 'number');
});

test('coverage: a probe whose ledger says a class was not observed (not_observed) is incomplete coverage for "never loaded"', () => {
  const IOU = { class: 'io_uring', sources: ['io_uring:openat', 'io_uring:openat2'], reason: 'this kernel has no tracepoint io_uring/io_uring_submit_req' };
  const ledger = (no: boolean) => JSON.stringify({
    complete: true, lost: 0, probes: {
      file_open: { in_chunk: 1, lost: 0, kernel: { submitted: 1, ring_full: 0 }, ...(no ? { not_observed: [IOU] } : {}) },
      process_exec: { in_chunk: 0, lost: 0, kernel: { submitted: 0, ring_full: 0 } },
    },
  });
  const row = (seq: number, no: boolean): ChunkRow => ({
    chunk_id: seq, file: `chunk-${seq}`, status: 'ok', reason: null, chain_id: 'c', seq: BigInt(seq), envelope_sha256: `e${seq}`,
    prev_envelope_sha256: seq === 1 ? null : `e${seq - 1}`, run_id: 'r', final: seq === 2, hostname: 'h', machine_id: 'm',
    opened_wall_ns: BigInt(seq), sealed_wall_ns: BigInt(seq + 1), count: 1n, lost: 0n, ledger_json: ledger(no), function_calls_json: null, restart_json: null,
  });
  const facts = (rows: ChunkRow[]): CoverageFacts => {
    const c = coverageOf(rows, rows);
    return { ...coverage(0n, rows.length), probes: c.probes.map((p) => ({ probe: p.probe, chunks: p.chunks, lost: p.lost, ...(p.notObserved !== undefined ? { notObserved: p.notObserved } : {}) })) };
  };
  const partial = facts([row(1, false), row(2, true)]);
  assert.deepEqual(partial.probes.find((p) => p.probe === 'file_open')!.notObserved, [`io_uring (io_uring:openat, io_uring:openat2): ${IOU.reason}`]);
  assert.deepEqual(coverageGaps(partial, [], 'not_loaded'), [`file_open events not observed: io_uring (io_uring:openat, io_uring:openat2): ${IOU.reason}`]);
  assert.deepEqual(coverageGaps(facts([row(1, false)]), [], 'not_loaded'), []);
});
