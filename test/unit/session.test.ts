import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { forEachFrame } from '../../src/decode/decode';
import { BpfSession, planLoad, RtevConfig, TRACE_TREE, type KernelConfig } from '../../src/ingest/session';
import { REPO } from '../helpers/collector';
import { FakeBinding, KNOWN_PROGRAMS, readSamples } from '../helpers/fake-binding';

const CONFIG: KernelConfig = {
  selfTgid: 4242, filterPids: true, cgroupFilter: 'off', recordFailedOpens: false, bulkRingBytes: 1 << 24, rareRingBytes: 1 << 22,
};
const ALL_TRACEPOINTS = { programs: KNOWN_PROGRAMS, uprobeMode: 'session' as const, tracepointExists: () => true };
const SAMPLES = readSamples(fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'ringbuf', 'trigger', 'samples.bin')));

function objectFile(): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-session-')), 'fake.bpf.o');
  fs.writeFileSync(file, 'not an ELF: the fake binding never reads it\n');
  return file;
}

test('load plan: only the chosen probes are loaded, attached in probe order, support programs last', () => {
  const plan = planLoad(CONFIG, ['file_open', 'tcp_state'], ALL_TRACEPOINTS);
  const loaded = plan.autoload.filter((a) => a.load).map((a) => a.program);
  assert.ok(loaded.includes('handle_openat_exit') && loaded.includes('handle_inet_sock_set_state'));
  assert.ok(loaded.includes('seed_socket_owners'), 'the iterator is loaded (run once, not attached)');
  assert.ok(!loaded.includes('handle_exec') && !loaded.includes('rtev_ssl_session'));
  assert.deepEqual(plan.attach.map((s) => s.label), ['file_open', 'file_open (io_uring opens)', 'tcp_state', 'process tracking', 'process tracking']);
  assert.ok(!plan.attach.flatMap((s) => s.programs).includes('seed_socket_owners'));
  assert.deepEqual(plan.mapMaxEntries, [{ map: 'events_bulk', entries: 1 << 24 }, { map: 'events_rare', entries: 1 << 22 }]);
  assert.equal(plan.config.length, RtevConfig.SIZE);
  assert.equal(plan.config.readUInt32LE(RtevConfig.self_tgid), 4242);
  assert.deepEqual(plan.warnings, []);
});

test('load plan: a missing mandatory tracepoint disables its probe with a warning; optional ones are left out quietly', () => {
  const facts = { ...ALL_TRACEPOINTS, tracepointExists: (tp: string) => tp !== 'sched/sched_process_exec' && tp !== 'syscalls/sys_exit_openat2' };
  const plan = planLoad(CONFIG, ['file_open', 'process_exec'], facts);
  assert.deepEqual(plan.warnings, ['tracepoint sched/sched_process_exec is missing: probe process_exec disabled']);
  assert.ok(!plan.attach.some((s) => s.probe === 'process_exec'));
  const fileOpen = plan.attach.find((s) => s.probe === 'file_open')!;
  assert.ok(!fileOpen.tracepoints!.includes('syscalls/sys_exit_openat2'));
  // file_open runs at syscall exit only (bpf/file_open.h): no enter tracepoint
  assert.ok(!fileOpen.tracepoints!.some((tp) => tp !== undefined && tp.startsWith('syscalls/sys_enter_')));
  // one exit program for the four syscalls, attached explicitly where it is not its section's tracepoint
  assert.ok(fileOpen.tracepoints!.includes('syscalls/sys_exit_creat'));
  assert.equal(fileOpen.programs[fileOpen.tracepoints!.indexOf('syscalls/sys_exit_creat')], 'handle_openat_exit');
  const noCreat = planLoad(CONFIG, ['file_open'], { ...ALL_TRACEPOINTS, tracepointExists: (tp: string) => tp !== 'syscalls/sys_exit_creat' });
  assert.ok(!noCreat.attach.find((s) => s.probe === 'file_open')!.tracepoints!.includes('syscalls/sys_exit_creat'));
  assert.deepEqual(noCreat.warnings, []);
});

test('load plan: the io_uring programs are a group of file_open and net_connect: all or none, and a kernel without them is said at start', () => {
  const plan = planLoad(CONFIG, ['file_open', 'net_connect'], ALL_TRACEPOINTS);
  const group = plan.attach.find((s) => s.label === 'file_open (io_uring opens)')!;
  assert.deepEqual(group.programs, ['handle_iou_open_submit', 'handle_iou_open_failed', 'handle_iou_open_complete']);
  assert.equal(group.probe, 'file_open');
  assert.ok(!plan.attach.find((s) => s.label === 'file_open')!.programs.some((p) => p.includes('iou')));
  assert.deepEqual(plan.attach.find((s) => s.label === 'net_connect (io_uring connects)')!.programs, ['handle_iou_net_submit', 'handle_iou_net_complete']);
  // selecting the probe selects them; not selecting it leaves them unloaded
  const without = planLoad(CONFIG, ['process_exec'], ALL_TRACEPOINTS);
  assert.ok(!without.autoload.some((a) => a.load && a.program.startsWith('handle_iou_')));
  // a kernel without io_uring_submit_req (before 6.0): none of the group is loaded, and a warning says what is not observed
  const old = planLoad(CONFIG, ['file_open', 'net_connect'], { ...ALL_TRACEPOINTS, tracepointExists: (tp: string) => tp !== 'io_uring/io_uring_submit_req' });
  assert.ok(!old.autoload.some((a) => a.load && a.program.startsWith('handle_iou_')));
  assert.ok(old.autoload.some((a) => a.load && a.program === 'handle_openat_exit'));
  assert.deepEqual(old.warnings, [
    'file_open: file opens submitted through io_uring (IORING_OP_OPENAT, IORING_OP_OPENAT2) are not observed (this kernel has no tracepoint io_uring/io_uring_submit_req)',
    'net_connect: connects and accepts submitted through io_uring (IORING_OP_CONNECT, IORING_OP_ACCEPT) are not observed (this kernel has no tracepoint io_uring/io_uring_submit_req)',
  ]);
  // and what goes into the ledger (not_observed): per probe, the class and its sources
  const reason = 'this kernel has no tracepoint io_uring/io_uring_submit_req';
  assert.deepEqual(old.notObserved, [
    { probe: 'file_open', class: 'io_uring', sources: ['io_uring:openat', 'io_uring:openat2'], reason },
    { probe: 'net_connect', class: 'io_uring', sources: ['io_uring:connect', 'io_uring:accept'], reason },
  ]);
  assert.deepEqual(plan.notObserved, []);
});

test('an io_uring group the kernel refuses leaves the rest of its probe attached, with a warning', () => {
  const fake = new FakeBinding({ refuse: ['handle_iou_open_complete'] });
  const session = BpfSession.open(objectFile(), CONFIG, ['file_open'], { binding: fake, env: {}, tracepointExists: () => true });
  assert.deepEqual(session.attachedProbes, ['file_open']);
  assert.deepEqual(session.warnings, [
    'cannot attach file_open (io_uring opens) (fake: handle_iou_open_complete refused): file opens submitted through io_uring (IORING_OP_OPENAT, IORING_OP_OPENAT2) are not observed',
  ]);
  assert.ok([...fake.attached.values()].includes('handle_openat_exit'));
  assert.ok(![...fake.attached.values()].includes('handle_iou_open_submit'));
  assert.deepEqual(session.notObserved, [
    { probe: 'file_open', class: 'io_uring', sources: ['io_uring:openat', 'io_uring:openat2'], reason: 'cannot attach: fake: handle_iou_open_complete refused' },
  ]);
});

test('load plan: uprobe programs follow the attach mode and are never attached at load', () => {
  const session = planLoad(CONFIG, ['net_connect', 'ssl_op', 'function_call'], ALL_TRACEPOINTS);
  const classic = planLoad(CONFIG, ['net_connect', 'ssl_op', 'function_call'], { ...ALL_TRACEPOINTS, uprobeMode: 'classic' });
  const loaded = (p: typeof session) => p.autoload.filter((a) => a.load).map((a) => a.program);
  assert.ok(loaded(session).includes('rtev_ssl_session') && !loaded(session).includes('rtev_ssl_read'));
  assert.ok(loaded(classic).includes('rtev_ssl_read') && !loaded(classic).includes('rtev_ssl_session'));
  assert.deepEqual(session.expectedAttachTypes, [
    { program: 'rtev_libc_session', kind: 'uprobe_session' }, { program: 'rtev_ssl_session', kind: 'uprobe_session' },
    { program: 'rtev_go_tls_multi', kind: 'uprobe_multi' }, { program: 'handle_function_entry', kind: 'uprobe_multi' },
  ]);
  assert.deepEqual(classic.expectedAttachTypes, []);
  assert.deepEqual(session.attach.map((s) => s.label), ['net_connect', 'net_connect (io_uring connects)', 'process tracking', 'process tracking']);
  assert.ok(!session.attach.flatMap((s) => s.programs).some((p) => p.startsWith('rtev_')));
});

test('BpfSession applies the plan to the binding before load, and attaches after', () => {
  const fake = new FakeBinding();
  const session = BpfSession.open(objectFile(), CONFIG, ['file_open', 'process_exec'], { binding: fake, env: {}, tracepointExists: () => true });
  const ops = fake.ops();
  assert.equal(ops[0], 'openObject');
  const load = ops.indexOf('load');
  assert.ok(ops.slice(0, load).includes('setGlobal') && ops.slice(0, load).includes('setAutoload'));
  assert.ok(!ops.slice(0, load).includes('attach') && ops.slice(load).includes('attach'));
  assert.deepEqual(session.attachedProbes, ['file_open', 'process_exec']);
  assert.equal(session.linkCount('probe'), fake.attached.size);
  assert.equal(fake.autoload.get('handle_exec'), true);
  assert.equal(fake.autoload.get('rtev_ssl_session'), false);
});

test('a probe whose program the kernel refuses is disabled with a warning and its other links are closed', () => {
  const fake = new FakeBinding({ refuse: ['handle_connect_exit'] });
  const session = BpfSession.open(objectFile(), CONFIG, ['net_connect', 'process_exec'], { binding: fake, env: {}, tracepointExists: () => true });
  assert.deepEqual(session.attachedProbes, ['process_exec']);
  assert.deepEqual(session.warnings, ['cannot attach net_connect (fake: handle_connect_exit refused): probe disabled']);
  // handle_connect_enter was attached before the refusal: its link is gone
  assert.ok(fake.calls.some((c) => c.op === 'attach' && c.args[0] === 'handle_connect_enter'));
  assert.ok(![...fake.attached.values()].includes('handle_connect_enter'));
});

test('links are tracked objects: close() tears down uprobes first (one detachMany), then tracepoints, then drains', async () => {
  const fake = new FakeBinding();
  const session = BpfSession.open(objectFile(), CONFIG, ['file_open', 'ssl_op'], { binding: fake, env: {}, tracepointExists: () => true });
  const a = session.attachUprobeMulti('rtev_ssl_session', 'uprobe_session', '/lib/libssl.so.3', [16n], [1n], -1);
  const b = session.attachUprobe('rtev_ssl_read', false, -1, '/lib/libssl.so.3', 32n, 0n);
  b.close();
  b.close();
  assert.equal(b.open, false);
  assert.equal(fake.calls.filter((c) => c.op === 'detach').length, 1, 'closing twice detaches once');
  session.startRings(() => {});
  const before = fake.calls.length;
  await session.close();
  const ops = fake.calls.slice(before).map((c) => c.op);
  assert.equal(ops[0], 'detachMany');
  assert.equal(ops.lastIndexOf('detach') < ops.indexOf('stopRing'), true, 'every link is gone before the rings stop');
  assert.equal(a.open, false);
  assert.equal(fake.attached.size, 0);
  assert.equal(session.linkCount(), 0);
});

test('the fake binding replays recorded samples through the ring callbacks and the stats map', async () => {
  const fake = new FakeBinding({ samples: SAMPLES, batchRecords: 5, counters: { file_open: { ringFull: 3n } } });
  const session = BpfSession.open(objectFile(), CONFIG, ['file_open', 'process_exec', 'tcp_state'], { binding: fake, env: {}, tracepointExists: () => true });
  session.traceProcess(77, TRACE_TREE);
  assert.deepEqual(fake.map('traced_tgids').get('4d000000'), Buffer.from([TRACE_TREE]));
  const seen: Buffer[] = [];
  const rings = new Set<string>();
  session.startRings((ring, batch, used) => {
    rings.add(ring);
    forEachFrame(batch, used, (r) => seen.push(Buffer.from(r)));
  });
  await new Promise((r) => setTimeout(r, 50));
  await session.close();
  assert.equal(seen.length, SAMPLES.length);
  assert.deepEqual(new Set(seen.map((b) => b.toString('hex'))), new Set(SAMPLES.map((b) => b.toString('hex'))));
  assert.deepEqual(rings, new Set(['bulk', 'rare']));
  const counters = session.counters();
  const fileOpens = BigInt(SAMPLES.filter((s) => s.readUInt32LE(16) === 1).length);
  assert.equal(counters.file_open.submitted, fileOpens);
  assert.equal(counters.file_open.ringFull, 3n);
  assert.equal(counters.ssl_op.submitted, 0n);
});

test('seedSocketOwners writes listen_owners and runs the iterator', () => {
  const fake = new FakeBinding();
  const session = BpfSession.open(objectFile(), CONFIG, ['tcp_state'], { binding: fake, env: {}, tracepointExists: () => true });
  session.seedSocketOwners(() => assert.fail('no warning expected'), [{ family: 2, port: 8080, pid: 9, comm: 'srv', cgroupId: 5n }]);
  assert.equal(fake.map('listen_owners').size, 1);
  assert.ok(fake.ops().includes('runIterator'));
});

test('a session without uprobe probes does not ask the kernel about uprobe sessions (a vmlinux BTF parse); with them it does', () => {
  class Counting extends FakeBinding {
    asked = 0;
    override uprobeSessionSupported(): boolean {
      this.asked++;
      return super.uprobeSessionSupported();
    }
  }
  const plain = new Counting();
  const s1 = BpfSession.open(objectFile(), CONFIG, ['file_open', 'process_exec', 'tcp_state'], { binding: plain, env: {}, tracepointExists: () => true });
  assert.equal(plain.asked, 0);
  assert.equal(s1.uprobeMode, 'classic');
  const tls = new Counting();
  const s2 = BpfSession.open(objectFile(), CONFIG, ['file_open', 'ssl_op'], { binding: tls, env: {}, tracepointExists: () => true });
  assert.equal(tls.asked, 1);
  assert.equal(s2.uprobeMode, 'session');
  // RTEV_UPROBE_MODE is still checked without uprobe probes
  assert.throws(() => BpfSession.open(objectFile(), CONFIG, ['file_open'], { binding: new Counting(), env: { RTEV_UPROBE_MODE: 'multi' }, tracepointExists: () => true }), { code: 'USAGE' });
  const asked = new Counting({ uprobeSessions: false });
  assert.throws(() => BpfSession.open(objectFile(), CONFIG, ['file_open'], { binding: asked, env: { RTEV_UPROBE_MODE: 'session' }, tracepointExists: () => true }), { code: 'USAGE' });
  assert.equal(asked.asked, 1);
});
