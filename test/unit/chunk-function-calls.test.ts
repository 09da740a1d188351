import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { canonicalize, type CanonicalValue } from '../../src/encode/canonical';
import { serializeEnvelope, signEnvelope } from '../../src/sign/envelope';
import { IN_TOTO_PAYLOAD_TYPE } from '../../src/sign/statement';
import { openEvidenceDir } from '../../src/store/output';
import type { FunctionCallTotal, OutputContext, OutputOptions } from '../../src/store/sink';
import { parseStrict } from '../../src/encode/strict-json';
import { verifyEvidence } from '../../src/verify';
import { renderText } from '../../src/cli/commands/verify';
import { FakeLedger, makeHarness, PRODUCER, syntheticRecord, type Harness } from '../helpers/evidence-fixtures';

/** Chunk predicates with exact function call counts (function_calls) and per-chunk first-seen windows. */

const E = (n: number) => `chunk-${String(n).padStart(12, '0')}.dsse.json`;

const SSL = '/usr/lib/x86_64-linux-gnu/libssl.so.3:SSL_read';
const VULN = '/tmp/app:vuln_func';

/** FakeFunctions stands in for FunctionProbes: cumulative counts and a window rotation log. */
class FakeFunctions {
  readonly totals: FunctionCallTotal[] = [
    { function: VULN, symbol: 'vuln_func', node_hash: 'sha256:' + '1'.repeat(64), calls: 0n, emitted: 0n, suppressed: 0n },
    { function: SSL, symbol: 'SSL_read', calls: 0n, emitted: 0n, suppressed: 0n },
  ];
  seals = 0;
  /** first-seen per window: the first call of a function in a window is emitted */
  #seenInWindow = new Set<string>();

  call(fn: string, n = 1): number {
    let emitted = 0;
    const t = this.totals.find((x) => x.function === fn)!;
    for (let i = 0; i < n; i++) {
      t.calls++;
      if (this.#seenInWindow.has(fn)) {
        t.suppressed++;
      } else {
        this.#seenInWindow.add(fn);
        t.emitted++;
        emitted++;
      }
    }
    return emitted;
  }

  rotateWindow(): void {
    this.seals++;
    this.#seenInWindow.clear();
  }
}

function openWith(h: Harness, fns: FakeFunctions | undefined, options: Partial<OutputOptions> = {}) {
  h.ledger = new FakeLedger();
  const context: OutputContext = {
    producer: PRODUCER, ledger: () => h.ledger.snapshot(), notice: (m) => h.notices.push(m),
    ...(fns !== undefined ? { functionCalls: () => fns.totals.map((t) => ({ ...t })), onSeal: () => fns.rotateWindow() } : {}),
  };
  return openEvidenceDir({ stdout: false, outDir: h.dir, keyFile: h.keyFile, ...options }, context, h.env, false);
}

function statement(h: Harness, seq: number): Record<string, any> {
  const env = JSON.parse(fs.readFileSync(path.join(h.dir, E(seq)), 'utf8'));
  return parseStrict(Buffer.from(env.payload, 'base64').toString('utf8')) as Record<string, any>;
}

/** resign replaces chunk SEQ's predicate (with the same key) after edit() changed it. */
function resign(h: Harness, seq: number, edit: (predicate: Record<string, any>) => void): void {
  const st = statement(h, seq);
  edit(st['predicate']);
  const payload = Buffer.from(canonicalize(st as CanonicalValue), 'utf8');
  fs.writeFileSync(path.join(h.dir, E(seq)), serializeEnvelope(signEnvelope(IN_TOTO_PAYLOAD_TYPE, payload, h.key)));
}

/** threeChunks: 3 age-rotated chunks with calls 5/0/7 of vuln_func and 2/1/0 of SSL_read. */
async function threeChunks(): Promise<{ h: Harness; fns: FakeFunctions }> {
  const h = makeHarness('rtev-fc-');
  const fns = new FakeFunctions();
  const sink = openWith(h, fns, { chunkMaxAgeMs: 1000 });
  const plan: Array<[number, number]> = [[5, 2], [0, 1], [7, 0]];
  let i = 0;
  for (const [k, [vuln, ssl]] of plan.entries()) {
    h.feed(sink, i, i + 3);
    i += 3;
    fns.call(VULN, vuln);
    fns.call(SSL, ssl);
    if (k < plan.length - 1) {
      h.env.advanceMs(1500);
      sink.rotateIfDue();
    }
  }
  await sink.close(h.ledger.snapshot());
  return { h, fns };
}

test('function_calls holds per-chunk deltas of the cumulative counts; windows rotate at each seal', async () => {
  const { h, fns } = await threeChunks();
  assert.equal(fns.seals, 3, 'onSeal once per sealed chunk, the final one included');
  const want = [
    { vuln: [5n, 1n, 4n], ssl: [2n, 1n, 1n] },
    { vuln: [0n, 0n, 0n], ssl: [1n, 1n, 0n] },
    { vuln: [7n, 1n, 6n], ssl: [0n, 0n, 0n] },
  ];
  for (let seq = 1; seq <= 3; seq++) {
    const fc = statement(h, seq)['predicate']['function_calls'];
    assert.ok(Array.isArray(fc), `chunk ${seq} has function_calls`);
    // sorted by function, every target listed (zeros included)
    assert.deepEqual(fc.map((e: any) => e.function), [VULN, SSL].sort());
    const v = fc.find((e: any) => e.function === VULN);
    const s = fc.find((e: any) => e.function === SSL);
    assert.deepEqual([v.calls, v.emitted, v.suppressed], want[seq - 1]!.vuln, `vuln chunk ${seq}`);
    assert.deepEqual([s.calls, s.emitted, s.suppressed], want[seq - 1]!.ssl, `ssl chunk ${seq}`);
    assert.equal(v.symbol, 'vuln_func');
    assert.equal(v.node_hash, 'sha256:' + '1'.repeat(64));
    assert.equal(s.node_hash, null);
  }
  const r = verifyEvidence(h.dir, [h.key]);
  assert.equal(r.status, 'valid', JSON.stringify([r.problems, r.gaps]));
  const vuln = r.functionCalls.find((f) => f.function === VULN)!;
  assert.deepEqual([vuln.calls, vuln.emitted, vuln.suppressed], [12n, 2n, 10n]);
  const ssl = r.functionCalls.find((f) => f.function === SSL)!;
  assert.deepEqual([ssl.calls, ssl.emitted, ssl.suppressed], [3n, 2n, 1n]);
  const text = renderText(r, ['k.pub']);
  assert.match(text, /function calls \(exact, sum over chunks\):/);
  assert.ok(text.includes(`${VULN} calls=12 emitted=2 suppressed=10`), text);
});

test('a chunk sealed because of function calls alone (no records, no ledger change) still carries them', async () => {
  const h = makeHarness('rtev-fc-');
  const fns = new FakeFunctions();
  const sink = openWith(h, fns, { chunkMaxAgeMs: 1000 });
  h.feed(sink, 0, 2);
  h.env.advanceMs(1500);
  sink.rotateIfDue();
  fns.call(VULN, 3);
  h.env.advanceMs(1500);
  sink.rotateIfDue();
  await sink.close(h.ledger.snapshot());
  const fc = statement(h, 2)['predicate']['function_calls'];
  assert.equal(fc.find((e: any) => e.function === VULN).calls, 3n);
  assert.equal(verifyEvidence(h.dir, [h.key]).status, 'valid');
});

test('without a provider the predicate has no function_calls field and the bytes are unchanged', async () => {
  const run = async (withEmptyContext: boolean): Promise<Buffer[]> => {
    const h = makeHarness('rtev-fc-');
    const sink = withEmptyContext ? openWith(h, undefined, { chunkMaxBytes: 2000 }) : h.open({ chunkMaxBytes: 2000 });
    h.feed(sink, 0, 30);
    await sink.close(h.ledger.snapshot());
    const envelopes = fs.readdirSync(h.dir).filter((f) => f.endsWith('.dsse.json')).sort();
    assert.ok(envelopes.length >= 2);
    for (let seq = 1; seq <= envelopes.length; seq++) assert.equal('function_calls' in statement(h, seq)['predicate'], false);
    assert.equal(verifyEvidence(h.dir, [h.key]).functionCalls.length, 0);
    return envelopes.map((f) => fs.readFileSync(path.join(h.dir, f)));
  };
  // the statements are the same bytes either way (ids and clocks come from the same fixed
  // environment); only the links differ, as each harness signs with its own key
  const unlinked = (envelopes: Buffer[]): string[] => envelopes.map((e) => {
    const text = Buffer.from(JSON.parse(e.toString()).payload, 'base64').toString('utf8');
    return text.replace(/"prev_envelope_sha256":"[0-9a-f]{64}"/, '"prev_envelope_sha256":"-"');
  });
  const a = unlinked(await run(true));
  const b = unlinked(await run(false));
  assert.deepEqual(a, b);
  assert.ok(!a.some((s) => s.includes('function_calls')));
});

test('a tampered count is caught by the signature', async () => {
  const { h } = await threeChunks();
  const file = path.join(h.dir, E(2));
  const env = JSON.parse(fs.readFileSync(file, 'utf8'));
  const st = parseStrict(Buffer.from(env.payload, 'base64').toString('utf8')) as Record<string, any>;
  const entry = st['predicate']['function_calls'].find((e: any) => e.function === SSL);
  entry.calls += 1000n;
  entry.suppressed += 1000n;
  env.payload = Buffer.from(canonicalize(st as CanonicalValue), 'utf8').toString('base64');
  fs.writeFileSync(file, JSON.stringify(env) + '\n');
  const r = verifyEvidence(h.dir, [h.key]);
  assert.equal(r.status, 'invalid');
  assert.ok(r.problems.some((p) => p.file === E(2) && /signature does not verify/.test(p.reason)), JSON.stringify(r.problems));
});

/** oneChunk: a single final chunk with function_calls, so re-signing it breaks no link. */
async function oneChunk(): Promise<Harness> {
  const h = makeHarness('rtev-fc-');
  const fns = new FakeFunctions();
  const sink = openWith(h, fns);
  h.feed(sink, 0, 4);
  fns.call(VULN, 4);
  await sink.close(h.ledger.snapshot());
  return h;
}

const MALFORMED: Array<[string, (p: Record<string, any>) => void, RegExp]> = [
  ['not an array', (p) => { p['function_calls'] = { a: 1n }; }, /function_calls is not an array/],
  ['entry not an object', (p) => { p['function_calls'].push(5n); }, /function_calls\[2\] is not an object/],
  ['negative count', (p) => { const e = p['function_calls'][1]; e.calls = -1n; e.emitted = -1n; }, /non-negative integers/],
  ['string count', (p) => { p['function_calls'][1].calls = '4'; }, /non-negative integers/],
  ['emitted + suppressed != calls', (p) => { p['function_calls'][0].calls = 5n; }, /emitted 1 \+ suppressed 3 != calls 5/],
  ['missing field', (p) => { delete p['function_calls'][0].suppressed; }, /must have exactly the fields/],
  ['extra field', (p) => { p['function_calls'][0].extra = 1n; }, /must have exactly the fields/],
  ['node_hash not a string', (p) => { p['function_calls'][0].node_hash = 7n; }, /node_hash a string or null/],
  ['duplicate entry', (p) => { p['function_calls'].push({ ...p['function_calls'][1] }); }, /listed twice/],
];

for (const [name, edit, reason] of MALFORMED) {
  test(`a signed but malformed function_calls is rejected: ${name}`, async () => {
    const h = await oneChunk();
    assert.equal(verifyEvidence(h.dir, [h.key]).status, 'valid');
    resign(h, 1, edit);
    const r = verifyEvidence(h.dir, [h.key]);
    assert.equal(r.status, 'invalid', JSON.stringify(r.problems));
    assert.ok(r.problems.some((p) => p.file === E(1) && reason.test(p.reason)), JSON.stringify(r.problems));
  });
}

test('an empty function_calls list and a null node_hash are well-formed', async () => {
  const h = await oneChunk();
  resign(h, 1, (p) => { p['function_calls'] = []; });
  assert.equal(verifyEvidence(h.dir, [h.key]).status, 'valid');
  resign(h, 1, (p) => { p['function_calls'] = [{ function: 'x:y', symbol: 'y', node_hash: null, calls: 0n, emitted: 0n, suppressed: 0n }]; });
  assert.equal(verifyEvidence(h.dir, [h.key]).status, 'valid');
});

test('records of a window are in its chunk: the seal happens between two writes, never inside one', async () => {
  // size rotation inside write(): the record that triggers it and the calls counted before
  // it belong to the chunk being sealed; the window rotates right after
  const h = makeHarness('rtev-fc-');
  const fns = new FakeFunctions();
  const size = syntheticRecord(0).line.length + 1;
  const sink = openWith(h, fns, { chunkMaxBytes: size * 2 });
  for (let n = 0; n < 6; n++) {
    fns.call(VULN, 2);
    const r = syntheticRecord(0); // equal lines: exactly two per chunk
    h.ledger.probe(r.info.probe).kernel.submitted++;
    sink.write(r.line, r.info);
    h.ledger.probe(r.info.probe).user.written++;
  }
  await sink.close(h.ledger.snapshot());
  // 3 full chunks of 2 records (4 calls, 1 emitted per window), then an empty final chunk
  for (let seq = 1; seq <= 3; seq++) {
    const v = statement(h, seq)['predicate']['function_calls'].find((e: any) => e.function === VULN);
    assert.deepEqual([v.calls, v.emitted, v.suppressed], [4n, 1n, 3n], `chunk ${seq}`);
  }
  assert.equal(verifyEvidence(h.dir, [h.key]).functionCalls.find((f) => f.function === VULN)!.calls, 12n);
});
