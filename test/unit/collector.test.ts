import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { Collector, type CollectorConfig, type CollectorHost } from '../../src/ingest/collector';
import { RtevConfig } from '../../src/ingest/session';
import { writeKeyPair } from '../../src/sign/key-files';
import { generateSigningKey } from '../../src/sign/keys';
import { REPO, RTEV } from '../helpers/collector';
import { FakeBinding, readSamples } from '../helpers/fake-binding';

const FIXTURE = path.join(REPO, 'test', 'fixtures', 'ringbuf', 'trigger');

function setup(): { dir: string; keyFile: string; host: (fake: FakeBinding, log?: string[]) => CollectorHost } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-collector-'));
  const keyFile = path.join(dir, 'signing.key');
  writeKeyPair(keyFile, generateSigningKey());
  const objectPath = path.join(dir, 'fake.bpf.o');
  fs.writeFileSync(objectPath, 'fake object\n');
  const btfPath = path.join(dir, 'vmlinux');
  fs.writeFileSync(btfPath, 'fake btf\n');
  return {
    dir, keyFile,
    host: (fake, log = []) => ({
      warn: (m) => log.push(`warning: ${m}`), notice: (m) => log.push(m), binding: fake, preflight: () => [],
      objectPath, btfPath, handleSignals: false, env: {}, tracepointExists: () => true,
    }),
  };
}

function config(over: Partial<CollectorConfig>): CollectorConfig {
  return {
    probes: ['file_open', 'process_exec', 'tcp_state'], output: { stdout: false }, durationMs: undefined, command: [], pids: [], trees: [],
    cgroups: [], pathFilter: { include: [], exclude: [] }, recordFailedOpens: true, recordEmptySsl: false, functions: [],
    framesFile: undefined, functionMode: 'first-seen', containers: {}, enrich: false, enricherOptions: {},
    bulkRingBytes: 1 << 22, rareRingBytes: 1 << 20, verbose: false, ...over,
  };
}

function chunkLines(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => /^chunk-\d+\.ndjson$/.test(f)).sort()
    .flatMap((f) => fs.readFileSync(path.join(dir, f), 'utf8').split('\n').filter((l) => l.length > 0));
}

test('a whole Collector run over a fake binding: recorded samples become signed evidence that verifies', async () => {
  const { dir, keyFile, host } = setup();
  const out = path.join(dir, 'ev');
  const fake = new FakeBinding({ samples: readSamples(fs.readFileSync(path.join(FIXTURE, 'samples.bin'))), batchRecords: 4 });
  const result = await new Collector(config({ output: { stdout: false, outDir: out, keyFile }, durationMs: 300 }), host(fake)).run();
  assert.equal(result.exitCode, 0);
  assert.equal(result.outputClosed, false);
  const expected = fs.readFileSync(path.join(FIXTURE, 'expected.ndjson'), 'utf8').split('\n').filter((l) => l.length > 0);
  // the two rings interleave differently from the recording; the records are the same bytes
  assert.deepEqual(chunkLines(out).sort(), [...expected].sort());
  let written = 0n;
  for (const l of Object.values(result.ledger)) {
    assert.equal(l.user.received, l.kernel.submitted);
    written += l.user.written;
  }
  assert.equal(written, BigInt(expected.length));
  assert.equal(fake.attached.size, 0, 'every link is detached');
  const ops = fake.ops();
  assert.ok(ops.lastIndexOf('detach') < ops.lastIndexOf('stopRing'), 'detach before the rings stop');
  assert.ok(ops.includes('runIterator'), 'socket owners are seeded when tcp_state is attached');
  const verify = spawnSync(process.execPath, [RTEV, 'verify', out, '--pubkey', keyFile + '.pub'], { encoding: 'utf8' });
  assert.equal(verify.status, 0, verify.stdout + verify.stderr);
});

test('a Collector run with a command: traced from the start, stops when it exits, gives its exit code', async () => {
  const { dir, keyFile, host } = setup();
  const fake = new FakeBinding();
  const result = await new Collector(config({ output: { stdout: false, outDir: path.join(dir, 'ev'), keyFile }, command: ['sh', '-c', 'exit 3'] }), host(fake)).run();
  assert.equal(result.exitCode, 3);
  const cfg = fake.calls.find((c) => c.op === 'setGlobal')!.args[1] as Buffer;
  assert.equal(cfg.readUInt32LE(RtevConfig.filter_pids), 1, 'a command turns the pid filter on');
  const traced = [...fake.map('traced_tgids').values()];
  assert.deepEqual(traced, [Buffer.from([2])], 'the gate shell is traced as a tree');
});

test('stop() ends a run without duration or command', async () => {
  const { dir, keyFile, host } = setup();
  const collector = new Collector(config({ output: { stdout: false, outDir: path.join(dir, 'ev'), keyFile } }), host(new FakeBinding()));
  const running = collector.run();
  setTimeout(() => collector.stop(), 100);
  assert.equal((await running).exitCode, 0);
});

test('a failure after load (an unreadable key) still detaches everything', async () => {
  const { dir, host } = setup();
  const fake = new FakeBinding();
  const run = new Collector(config({ output: { stdout: false, outDir: path.join(dir, 'ev'), keyFile: path.join(dir, 'missing.key') } }), host(fake)).run();
  await assert.rejects(run);
  assert.ok(fake.ops().includes('attach'));
  assert.equal(fake.attached.size, 0);
});

test('no probe attached is BPF_ATTACH, after tearing down', async () => {
  const { dir, keyFile, host } = setup();
  const fake = new FakeBinding({ refuse: ['handle_exec'] });
  const run = new Collector(config({ probes: ['process_exec'], output: { stdout: false, outDir: path.join(dir, 'ev'), keyFile } }), host(fake)).run();
  await assert.rejects(run, { code: 'BPF_ATTACH' });
  assert.equal(fake.attached.size, 0);
});

test('a Collector run with uprobe probes: libraries attached through tracked links, replayed net_connect and ssl_op records written, uprobes detached first', async () => {
  const { dir, keyFile, host } = setup();
  const ringbuf = path.join(REPO, 'test', 'fixtures', 'ringbuf');
  const samples = ['net_connect', 'ssl_op'].flatMap((f) => readSamples(fs.readFileSync(path.join(ringbuf, f, 'samples.bin'))));
  const fake = new FakeBinding({ samples });
  const out = path.join(dir, 'ev');
  const result = await new Collector(config({ probes: ['net_connect', 'ssl_op'], output: { stdout: false, outDir: out, keyFile }, durationMs: 300 }), host(fake)).run();
  const expected = ['net_connect', 'ssl_op'].flatMap((f) => fs.readFileSync(path.join(ringbuf, f, 'expected.ndjson'), 'utf8').split('\n').filter((l) => l.length > 0));
  assert.deepEqual(chunkLines(out).sort(), expected.sort());
  assert.ok(result.uprobes !== undefined && result.uprobes.links > 0, 'the host libc and libssl got uprobes');
  assert.equal(fake.attached.size, 0);
  const ops = fake.ops();
  assert.ok(ops.indexOf('detachMany') < ops.lastIndexOf('detach'), 'uprobe links go before the tracepoint links');
});

test('an io_uring group that cannot be attached is in every chunk\'s signed ledger as not observed; verify reports it as a gap', async () => {
  const { dir, keyFile, host } = setup();
  const out = path.join(dir, 'ev');
  const log: string[] = [];
  const fake = new FakeBinding({ refuse: ['handle_iou_open_complete'] });
  const result = await new Collector(config({ probes: ['file_open', 'process_exec'], output: { stdout: false, outDir: out, keyFile }, durationMs: 300 }), host(fake, log)).run();
  assert.equal(result.exitCode, 0);
  assert.ok(log.some((w) => /io_uring.*are not observed/.test(w)), log.join('\n'));
  const IOU = { class: 'io_uring', sources: ['io_uring:openat', 'io_uring:openat2'], reason: 'cannot attach: fake: handle_iou_open_complete refused' };
  assert.deepEqual(result.ledger['file_open']!.notObserved, [IOU]);
  assert.equal(result.ledger['process_exec']!.notObserved, undefined);
  const preds = fs.readdirSync(out).filter((f) => f.endsWith('.dsse.json')).sort().map((f) =>
    JSON.parse(Buffer.from((JSON.parse(fs.readFileSync(path.join(out, f), 'utf8')) as { payload: string }).payload, 'base64').toString('utf8')).predicate);
  assert.ok(preds.length >= 1);
  for (const p of preds) {
    assert.deepEqual(p.ledger.probes.file_open.not_observed, [IOU]);
    assert.equal('not_observed' in p.ledger.probes.process_exec, false, 'a probe that observes everything has no field');
  }
  const verify = spawnSync(process.execPath, [RTEV, 'verify', out, '--pubkey', keyFile + '.pub'], { encoding: 'utf8' });
  assert.equal(verify.status, 10, `valid but incomplete: ${verify.stdout}${verify.stderr}`);
  assert.match(verify.stdout, /nothing lost of what was observed; NOT OBSERVED \(not recorded, not counted\): file_open io_uring:openat\/io_uring:openat2/);
  assert.match(verify.stdout, /not observed: file_open events of class io_uring \(io_uring:openat, io_uring:openat2\) were not recorded and cannot be counted: cannot attach: fake: handle_iou_open_complete refused/);
  const json = JSON.parse(spawnSync(process.execPath, [RTEV, 'verify', out, '--pubkey', keyFile + '.pub', '--json'], { encoding: 'utf8' }).stdout);
  assert.deepEqual(json.notObserved.map((n: { probe: string }) => n.probe), ['file_open']);
});
