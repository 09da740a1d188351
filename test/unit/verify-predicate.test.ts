import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseStrict, type StrictObject } from '../../src/encode/strict-json';
import { accountedOf, inFlightOf, ledgerLost, lostOf, probeLost } from '../../src/model/ledger';
import { checkLedgerIdentity, parsePredicate } from '../../src/verify';

/** A well-formed predicate as the writer produces it (docs/format.md), one probe. */
function predicate(): StrictObject {
  return parseStrict(JSON.stringify({
    chain: { chain_id: 'c', seq: 2, prev_envelope_sha256: 'a'.repeat(64), run_id: 'r', run_chunk_index: 1, final: false, seal_reason: 'size' },
    records: { count: 3, bytes: 300, by_type: { file_open: 3, process_exec: 0 }, first_ts_ns: 10, last_ts_ns: 12, min_ts_ns: 10, max_ts_ns: 12, schema: 's' },
    ledger: {
      complete: false, lost: 1,
      probes: {
        file_open: {
          kernel: { submitted: 4, filtered: 0, ring_full: 1, skipped: 0, truncated: 0 },
          user: { received: 4, written: 3, filtered: 1, rejected: 0, shed: 0 },
          in_chunk: 3, in_flight_start: 2, in_flight_end: 2, lost: 1,
        },
      },
    },
    restart: null,
    host: { boot_id: 'b', hostname: 'h', machine_id: 'm', kernel_release: 'k' },
    clock: { opened: { wall_ns: 1, mono_ns: 2 }, sealed: { wall_ns: 3, mono_ns: 4 } },
    producer: { collector_version: 'v', bpf_object_sha256: 'x', btf: { path: 'p', sha256: 'y' }, config_sha256: 'z', filters: {}, probes: [] },
  })) as StrictObject;
}

test('parsePredicate gives typed bigint fields of a well-formed predicate', () => {
  const r = parsePredicate(predicate());
  assert.ok(r.ok);
  const p = r.predicate;
  assert.equal(p.chain.seq, 2n);
  assert.equal(p.chain.prev_envelope_sha256, 'a'.repeat(64));
  assert.equal(p.records.by_type.get('file_open'), 3n);
  assert.equal(p.ledger.probes.get('file_open')!.kernel.ring_full, 1n);
  assert.equal(p.clock.sealed.mono_ns, 4n);
  assert.equal(p.restart, null);
  assert.deepEqual(checkLedgerIdentity(p), []);
});

test('parsePredicate names every missing or mistyped field in document order, probe fields last', () => {
  const raw = predicate() as any;
  raw.ledger.probes.file_open.kernel.ring_full = 'one';
  delete raw.chain.seq;
  raw.records.min_ts_ns = 'x';
  raw.restart = 'not an object';
  raw.clock.opened = null;
  raw.records.first_ts_ns = null; // nullable: fine
  const r = parsePredicate(raw);
  assert.ok(!r.ok);
  assert.deepEqual(r.bad, ['chain.seq', 'records.min_ts_ns', 'restart', 'clock.opened.wall_ns', 'clock.opened.mono_ns', 'ledger.probes.file_open.kernel.ring_full']);
});

test('an absent restart is malformed (null is the way to say none)', () => {
  const raw = predicate() as any;
  delete raw.restart;
  const r = parsePredicate(raw);
  assert.ok(!r.ok);
  assert.deepEqual(r.bad, ['restart']);
});

test('checkLedgerIdentity reports each broken identity of the typed ledger', () => {
  const raw = predicate() as any;
  raw.ledger.probes.file_open.kernel.submitted = 9n;
  raw.ledger.lost = 2n;
  const r = parsePredicate(raw);
  assert.ok(r.ok);
  assert.deepEqual(checkLedgerIdentity(r.predicate), [
    'ledger of file_open: submitted 9 != in_chunk + filtered + deduplicated + rejected + shed + in-flight change (4)',
    'ledger lost 2 != sum over probes (1)',
  ]);
});

test('ledger arithmetic: lost, in flight and the window identity', () => {
  assert.equal(lostOf({ ringFull: 2n, rejected: 3n, shed: 5n }), 10n);
  const d = { written: 10n, filtered: 2n, rejected: 1n, shed: 1n, deduplicated: 0n };
  assert.equal(inFlightOf(20n, d), 6n);
  assert.equal(accountedOf(d, 6n, 9n), 17n);
  // what first-seen suppressed is disposed of, not lost
  const dd = { ...d, deduplicated: 4n };
  assert.equal(inFlightOf(20n, dd), 2n);
  assert.equal(accountedOf(dd, 2n, 2n), 18n);
  assert.equal(lostOf({ ringFull: 0n, rejected: dd.rejected, shed: dd.shed }), 2n);
  const ledger = {
    a: { kernel: { submitted: 9n, filtered: 0n, ringFull: 4n, skipped: 0n, truncated: 0n }, user: { received: 5n, written: 3n, filtered: 0n, rejected: 1n, shed: 1n, deduplicated: 0n } },
    b: { kernel: { submitted: 1n, filtered: 0n, ringFull: 1n, skipped: 0n, truncated: 0n }, user: { received: 0n, written: 0n, filtered: 0n, rejected: 0n, shed: 0n, deduplicated: 0n } },
  };
  assert.equal(probeLost(ledger.a), 6n);
  assert.equal(ledgerLost(ledger), 7n);
});

test('a probe\'s not_observed (a class of events the run does not observe): read when well-formed, else the predicate is malformed', () => {
  const IOU = { class: 'io_uring', sources: ['io_uring:openat', 'io_uring:openat2'], reason: 'this kernel has no tracepoint io_uring/io_uring_submit_req' };
  const ok = predicate() as any;
  ok.ledger.probes.file_open.not_observed = [IOU];
  const r = parsePredicate(ok);
  assert.ok(r.ok);
  assert.deepEqual(r.predicate.ledger.probes.get('file_open')!.not_observed, [IOU]);
  const none = parsePredicate(predicate());
  assert.ok(none.ok);
  assert.equal(none.predicate.ledger.probes.get('file_open')!.not_observed, undefined);
  for (const bad of [[], 'io_uring', [{ class: 'io_uring', sources: [], reason: 'x' }], [{ ...IOU, extra: 1 }], [{ class: 'io_uring', sources: ['a', 2], reason: 'x' }],
    [{ class: '', sources: ['a'], reason: 'x' }], [{ class: 'a', sources: ['a'], reason: 'x'.repeat(1025) }], Array(17).fill(IOU)]) {
    const raw = predicate() as any;
    raw.ledger.probes.file_open.not_observed = bad;
    const b = parsePredicate(raw);
    assert.ok(!b.ok, JSON.stringify(bad).slice(0, 80));
    assert.deepEqual(b.bad, ['ledger.probes.file_open.not_observed']);
  }
});
