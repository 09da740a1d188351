import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Collector, type CollectorConfig } from '../../src/ingest/collector';
import { IO_URING_OPENS, KERNEL_PROBES, type ProbeSpec } from '../../src/ingest/probes';
import { writeKeyPair } from '../../src/sign/key-files';
import { generateSigningKey } from '../../src/sign/keys';
import { compileC, rootOrSkip, RTEV, tempDir } from '../helpers/collector';

/**
 * A kernel that cannot give rtev the io_uring opens (docs/probes.md, "Kernels without it"): the
 * class is written into the signed ledger of every chunk (`ledger.probes.file_open.not_observed`),
 * `rtev verify` reports it as a recorded gap (exit 10) instead of "nothing lost", and the rest of
 * file_open keeps recording. Both ways it happens, on the real kernel, through the code the
 * collector runs (no simulated answer):
 * - the io_uring group names a tracepoint this kernel does not have (the real tracefs lookup of
 *   planLoad says it is missing: the group is not loaded);
 * - the group holds a program whose real attach fails (bpf_program__attach on a uprobe program
 *   without a target: libbpf refuses it after the group's tracepoints were attached, and the
 *   group's links are closed).
 * A control run with the real probe table records the same program's io_uring opens and has no
 * such field, so the test fails if the field were written unconditionally or the opens missed.
 */
const K = 3;

type Rec = Record<string, any>;

function predicates(dir: string): Rec[] {
  return fs.readdirSync(dir).filter((n) => n.endsWith('.dsse.json')).sort().map((n) => {
    const env = JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')) as { payload: string };
    return (JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as { predicate: Rec }).predicate;
  });
}

function records(dir: string): Rec[] {
  return fs.readdirSync(dir).filter((n) => /^chunk-\d+\.ndjson$/.test(n)).sort()
    .flatMap((n) => fs.readFileSync(path.join(dir, n), 'utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as Rec));
}

function withGroup(transform: (programs: ProbeSpec['programs']) => ProbeSpec['programs']): ProbeSpec[] {
  return KERNEL_PROBES.map((s) => (s.name === 'file_open' ? { ...s, programs: transform(s.programs) } : s));
}

async function collect(prog: string, dir: string, name: string, specs: ProbeSpec[] | undefined) {
  const base = path.join(dir, name);
  fs.mkdirSync(base);
  const keyFile = path.join(base, 'signing.key');
  writeKeyPair(keyFile, generateSigningKey());
  const out = path.join(base, 'ev');
  const factsFile = path.join(base, 'facts.json');
  const config: CollectorConfig = {
    probes: ['file_open'], output: { stdout: false, outDir: out, keyFile }, durationMs: undefined, command: [prog, dir, String(K)],
    commandStdout: factsFile, pids: [], trees: [], cgroups: [], pathFilter: { include: [], exclude: [] }, recordFailedOpens: false,
    recordEmptySsl: false, functions: [], framesFile: undefined, functionMode: 'first-seen', containers: {}, enrich: false,
    enricherOptions: {}, bulkRingBytes: 1 << 22, rareRingBytes: 1 << 20, verbose: false, attribution: false,
  };
  const warnings: string[] = [];
  const result = await new Collector(config, {
    warn: (m) => warnings.push(m), notice: () => {}, handleSignals: false, ...(specs !== undefined ? { probeSpecs: specs } : {}),
  }).run();
  assert.equal(result.exitCode, 0, warnings.join('\n'));
  const facts = JSON.parse(fs.readFileSync(factsFile, 'utf8').split('\n').find((l) => l.startsWith('{"pid":'))!) as { pid: number; opens: { path: string; res: number }[] };
  const verify = spawnSync(process.execPath, [RTEV, 'verify', out, '--pubkey', keyFile + '.pub'], { encoding: 'utf8' });
  return { result, warnings, facts, out, verify };
}

function checkNotObserved(run: Awaited<ReturnType<typeof collect>>, reason: RegExp, what: string): void {
  const { result, warnings, facts, out, verify } = run;
  assert.ok(warnings.some((w) => /file opens submitted through io_uring \(IORING_OP_OPENAT, IORING_OP_OPENAT2\) are not observed/.test(w)), `${what}: ${warnings.join('\n')}`);
  const no = result.ledger['file_open']!.notObserved!;
  assert.equal(no.length, 1, what);
  assert.deepEqual([no[0]!.class, no[0]!.sources], ['io_uring', ['io_uring:openat', 'io_uring:openat2']], what);
  assert.match(no[0]!.reason, reason, what);
  // every chunk's signed ledger says it
  const preds = predicates(out);
  assert.ok(preds.length >= 1, what);
  for (const p of preds) assert.deepEqual(p.ledger.probes.file_open.not_observed, [{ class: 'io_uring', sources: ['io_uring:openat', 'io_uring:openat2'], reason: no[0]!.reason }], what);
  // no io_uring record, but the rest of file_open still records the program (ld.so's syscall opens)
  const recs = records(out);
  assert.ok(facts.opens.length === K && facts.opens.every((o) => o.res >= 0), JSON.stringify(facts));
  assert.deepEqual(recs.filter((r) => String(r.src).startsWith('io_uring:')), [], what);
  assert.ok(recs.some((r) => r.pid === facts.pid && String(r.src).startsWith('sys_enter_open')), `${what}: syscall opens of the program are recorded`);
  // verify: authentic, incomplete, and never "nothing lost" alone
  assert.equal(verify.status, 10, `${what}: ${verify.stdout}${verify.stderr}`);
  assert.match(verify.stdout, /NOT OBSERVED \(not recorded, not counted\): file_open io_uring:openat\/io_uring:openat2/, what);
  assert.match(verify.stdout, /not observed: file_open events of class io_uring \(io_uring:openat, io_uring:openat2\) were not recorded and cannot be counted/, what);
}

test('io_uring opens a kernel cannot give are in the signed ledger as not observed, and verify says so', { timeout: 180_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const prog = fs.realpathSync(compileC(path.join('io_uring', 'uring.c'), ['-luring']));
  const dir = fs.realpathSync(tempDir('rtev-iou-unobs-'));
  for (let i = 0; i < K; i++) fs.writeFileSync(path.join(dir, `f${i}`), `${i}\n`);
  fs.writeFileSync(path.join(dir, 'rel'), 'rel\n');
  fs.writeFileSync(path.join(dir, 'skipok'), 'skip\n');

  // control: the real table records the opens and writes no not_observed
  const control = await collect(prog, dir, 'control', undefined);
  const opened = records(control.out).filter((r) => r.pid === control.facts.pid && String(r.src).startsWith('io_uring:open'));
  assert.ok(opened.length >= K, `control: io_uring opens recorded: ${JSON.stringify(opened)}`);
  assert.equal(control.result.ledger['file_open']!.notObserved, undefined);
  for (const p of predicates(control.out)) assert.equal('not_observed' in p.ledger.probes.file_open, false);
  assert.equal(control.verify.status, 0, control.verify.stdout + control.verify.stderr);

  // a tracepoint this kernel does not have, looked up in tracefs like the real one
  const missing = '/sys/kernel/tracing/events/io_uring/rtev_no_such_tracepoint';
  assert.equal(fs.existsSync(missing), false);
  const renamed = withGroup((ps) => ps.map((p) => (p.group === IO_URING_OPENS && p.tracepoint === 'io_uring/io_uring_submit_req'
    ? { ...p, tracepoint: 'io_uring/rtev_no_such_tracepoint' } : p)));
  checkNotObserved(await collect(prog, dir, 'missing', renamed), /^this kernel has no tracepoint io_uring\/rtev_no_such_tracepoint$/, 'missing tracepoint');

  // a real attach failure inside the group, after its tracepoints were attached
  const refused = withGroup((ps) => [...ps, { name: 'rtev_tls_enter', group: IO_URING_OPENS }]);
  checkNotObserved(await collect(prog, dir, 'refused', refused), /^cannot attach: /, 'attach refused');
});
