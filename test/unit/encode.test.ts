import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { canonicalize, type CanonicalValue } from '../../src/encode/canonical';
import { encodeRecord } from '../../src/encode/record';
import type { EvidenceRecord } from '../../src/model/record';
import { TCP_STATE_NAMES } from '../../src/model/record';

const text = fc.string({ unit: 'binary', maxLength: 40 });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const int = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
const optional = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });

const event = fc.oneof(
  fc.record({ type: fc.constant('file_open' as const), path: text, flags: optional(int), access: optional(fc.constantFrom('read', 'write', 'read_write', 'unknown') as fc.Arbitrary<'read'>), dfd: optional(int), mode: optional(fc.integer({ min: 0, max: 4095 })) }),
  fc.record({ type: fc.constant('process_exec' as const), filename: text, ppid: optional(int), argv0: optional(text) }),
  fc.record({ type: fc.constant('tcp_state' as const), oldstate: fc.constantFrom(...TCP_STATE_NAMES), newstate: fc.constantFrom(...TCP_STATE_NAMES), saddr: optional(text), sport: optional(int), daddr: text, dport: int, family: optional(fc.constantFrom('inet', 'inet6') as fc.Arbitrary<'inet'>) }),
  fc.record({ type: fc.constant('net_connect' as const), fd: optional(int), addr: text, port: int, success: optional(fc.boolean()), error: optional(int) }),
  fc.record({ type: fc.constant('ssl_op' as const), operation: fc.constantFrom('read', 'write') as fc.Arbitrary<'read'>, bytes: optional(int), ssl_ptr: optional(text) }),
  fc.record({ type: fc.constant('function_call' as const), addr: text, symbol: optional(text), library: optional(text), runtime: optional(fc.constant('native' as const)), stack: optional(fc.array(text, { maxLength: 4 })), node_hash: optional(text) }),
);

const record: fc.Arbitrary<EvidenceRecord> = fc.record({
  ts_ns: u64, src: text, pid: fc.integer({ min: 1, max: 4194304 }), tid: optional(fc.integer({ min: 1, max: 4194304 })),
  cgroup_id: optional(u64), container_id: optional(text), image_digest: optional(text), comm: text, event,
}).map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as unknown as EvidenceRecord);

function stripUndefined(value: unknown): CanonicalValue {
  return JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? `__big${v}` : v)), (_k, v) =>
    typeof v === 'string' && v.startsWith('__big') ? BigInt(v.slice(5)) : v) as CanonicalValue;
}

test('encodeRecord gives exactly the bytes of the reference canonicalize', () => {
  fc.assert(fc.property(record, (r) => {
    const reference = canonicalize(stripUndefined(r));
    assert.equal(encodeRecord(r), reference);
  }), { numRuns: 2000 });
});

test('canonical form: sorted keys, no whitespace, exact integers, JSON.stringify escapes', () => {
  assert.equal(canonicalize({ b: 1, a: [true, null, 'x\n"\\\u0001'], c: 18446744073709551615n }),
    '{"a":[true,null,"x\\n\\"\\\\\\u0001"],"b":1,"c":18446744073709551615}');
  assert.equal(canonicalize({ '\u00e9': 1, z: 2, A: 3 }), '{"A":3,"z":2,"é":1}');
  assert.throws(() => canonicalize(1.5), /safe integers/);
  assert.equal(canonicalize(-0), '0');
});

test('a record line parses back to the same values, u64 digits intact', () => {
  const r: EvidenceRecord = { ts_ns: 1737890000123456789n, src: 'sys_enter_openat', pid: 2311, tid: 2311, cgroup_id: 12345n, comm: 'nginx',
    event: { type: 'file_open', path: '/etc/ssl/certs/ca-bundle.crt', flags: 0, access: 'read' } };
  const line = encodeRecord(r);
  assert.equal(line, '{"cgroup_id":12345,"comm":"nginx","event":{"access":"read","flags":0,"path":"/etc/ssl/certs/ca-bundle.crt","type":"file_open"},"pid":2311,"src":"sys_enter_openat","tid":2311,"ts_ns":1737890000123456789}');
});
