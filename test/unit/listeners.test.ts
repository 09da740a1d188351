import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeListenerOwner, findListenerOwners, parseProcNetTcp } from '../../src/ingest/listeners';

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
  const { key, value } = encodeListenerOwner({ family: 10, port: 443, pid: 77, comm: 'nginx', cgroupId: 9007199254740993n, cgroupV1Id: 4242n });
  assert.equal(key.toString('hex'), '0a00bb01');
  assert.equal(value.length, 40);
  assert.equal(value.readBigUInt64LE(32), 4242n);
  assert.equal(value.readBigUInt64LE(0), 9007199254740993n);
  assert.equal(value.readUInt32LE(8), 77);
  assert.equal(value.subarray(16, 21).toString(), 'nginx');
});

test('listener owners from a /proc tree: the holder, its comm and cgroups (v1 memory id only in the v2 root)', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-listeners-'));
  const proc = path.join(root, 'proc');
  const unified = path.join(root, 'unified');
  const memory = path.join(root, 'memory');
  fs.mkdirSync(path.join(proc, 'net'), { recursive: true });
  fs.writeFileSync(path.join(proc, 'net', 'tcp'), SAMPLE);
  fs.mkdirSync(path.join(memory, 'docker', 'abc'), { recursive: true });
  fs.mkdirSync(path.join(unified, 'system.slice'), { recursive: true });
  const holder = (pid: number, cgroup: string, socket: string) => {
    fs.mkdirSync(path.join(proc, String(pid), 'fd'), { recursive: true });
    fs.writeFileSync(path.join(proc, String(pid), 'comm'), `srv${pid}\n`);
    fs.writeFileSync(path.join(proc, String(pid), 'cgroup'), cgroup);
    fs.symlinkSync(socket, path.join(proc, String(pid), 'fd', '3'));
  };
  holder(10, '4:memory:/docker/abc\n0::/\n', 'socket:[1065]');
  try {
    const owners = findListenerOwners(proc, unified, 100, memory);
    assert.deepEqual(owners, [{
      family: 2, port: 0x07e8, pid: 10, comm: 'srv10',
      cgroupId: fs.statSync(unified, { bigint: true }).ino,
      cgroupV1Id: fs.statSync(path.join(memory, 'docker', 'abc'), { bigint: true }).ino,
    }]);
    // a process in a v2 cgroup of its own: no v1 id; a hostile path: no id at all
    fs.writeFileSync(path.join(proc, '10', 'cgroup'), '4:memory:/docker/abc\n0::/system.slice\n');
    assert.equal(findListenerOwners(proc, unified, 100, memory)[0]!.cgroupV1Id, 0n);
    fs.writeFileSync(path.join(proc, '10', 'cgroup'), '4:memory:/../../etc\n0::/\n');
    assert.equal(findListenerOwners(proc, unified, 100, memory)[0]!.cgroupV1Id, 0n);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
