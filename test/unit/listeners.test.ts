import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeListenerOwner, parseProcNetTcp } from '../../src/ingest/listeners';

const SAMPLE = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1065 1 0000000057d593a6 100 0 0 10 0
   1: 0100007F:E481 0100007F:0016 01 00000000:00000000 00:00000000 00000000     0        0 78620 1 0000000003d109ae 100 0 0 10 0
   2: garbage line
   3: 0100007F:ZZZZ 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0 100 0 0 10 0
`;

test('listening sockets from /proc/net/tcp; junk lines are counted, not trusted', () => {
  const { listeners, rejected } = parseProcNetTcp(SAMPLE, 2);
  assert.deepEqual(listeners, [{ family: 2, port: 0x07e8, inode: 1065 }]);
  assert.equal(rejected, 2);
});

test('listen_owners map entry layout (bpf/tcp_state.h struct listen_key and struct sock_owner)', () => {
  const { key, value } = encodeListenerOwner({ family: 10, port: 443, pid: 77, comm: 'nginx', cgroupId: 9007199254740993n });
  assert.equal(key.toString('hex'), '0a00bb01');
  assert.equal(value.length, 32);
  assert.equal(value.readBigUInt64LE(0), 9007199254740993n);
  assert.equal(value.readUInt32LE(8), 77);
  assert.equal(value.subarray(16, 21).toString(), 'nginx');
});
