/**
 * record-fixture: runs a scenario under the real probes and stores the raw ring records it
 * produced as a fixture for the unit tests (root only):
 *   node dist/test/tools/record-fixture.js test/fixtures/ringbuf/trigger            (trigger)
 *   node dist/test/tools/record-fixture.js test/fixtures/ringbuf/net_connect net_connect
 *   node dist/test/tools/record-fixture.js test/fixtures/ringbuf/ssl_op ssl_op
 *   node dist/test/tools/record-fixture.js test/fixtures/ringbuf/function_call function_call
 * Writes samples.bin (repeated [u32 length][record bytes]), expected.ndjson (the pipeline's
 * output for those samples), expected-calls.ndjson (the decoded function calls, when there are
 * any) and manifest.json (scenario, kernel, BPF object digest, and the wire layout of
 * bpf/events.h the samples were recorded with: test/unit/fixtures.test.ts fails when it changed).
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { forEachFrame } from '../../src/decode/decode';
import type { ProbeName } from '../../src/decode/layout';
import { FunctionProbes } from '../../src/ingest/function-probes';
import { BpfSession, TRACE_TREE } from '../../src/ingest/session';
import { UprobeManager } from '../../src/ingest/uprobes';
import { replayFixture } from '../helpers/replay';
import { REPO, compileC } from '../helpers/collector';
import { structsOf, wireLayoutHash } from '../helpers/wire-layout';

interface Scenario {
  description: string;
  probes: ProbeName[];
  /** the command to run traced (argv), built in workDir */
  command(workDir: string): string[];
  /** function_call targets */
  functions?(workDir: string): string[];
}

const SCENARIOS: Record<string, Scenario> = {
  trigger: {
    description: 'test/progs/trigger.c with --include-failed-opens',
    probes: ['file_open', 'process_exec', 'tcp_state'],
    command: (dir) => [compileC('trigger.c'), dir],
  },
  net_connect: {
    description: 'test/progs/net/sockets.py (libc connect/accept, refused connect) and test/progs/net/connect.c built -static (syscall path)',
    probes: ['net_connect'],
    command: (dir) => {
      const stat = path.join(dir, 'conn_static');
      execFileSync('gcc', ['-O1', '-static', '-o', stat, path.join(REPO, 'test', 'progs', 'net', 'connect.c')]);
      const script = `python3 ${path.join(REPO, 'test', 'progs', 'net', 'sockets.py')} 1 >/dev/null; ${stat} 127.0.0.1 1 >/dev/null; ${stat} ::1 1 >/dev/null; true`;
      return ['/bin/sh', '-c', script];
    },
  },
  ssl_op: {
    description: 'test/progs/net/tls_ex.py: one TLS exchange of 3000 bytes through Python ssl (SSL_read_ex/SSL_write_ex of libssl.so.3)',
    probes: ['ssl_op'],
    command: (dir) => {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem'),
        '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
      return ['python3', path.join(REPO, 'test', 'progs', 'net', 'tls_ex.py'), path.join(dir, 'c.pem'), path.join(dir, 'k.pem'), '3000'];
    },
  },
  function_call: {
    description: 'test/progs/func/calls.c: main -> caller_a -> caller_b -> vuln_func, 3 times, probed at vuln_func and caller_b',
    probes: ['function_call'],
    command: (dir) => [path.join(dir, 'calls'), '3'],
    functions: (dir) => {
      execFileSync('gcc', ['-O1', '-g', '-fno-omit-frame-pointer', '-o', path.join(dir, 'calls'), path.join(REPO, 'test', 'progs', 'func', 'calls.c')]);
      return [`${path.join(dir, 'calls')}:vuln_func`, `${path.join(dir, 'calls')}:caller_b`];
    },
  },
};

async function main(): Promise<void> {
  const outDir = path.resolve(process.argv[2] ?? 'test/fixtures/ringbuf/trigger');
  const name = process.argv[3] ?? 'trigger';
  const scenario = SCENARIOS[name];
  if (scenario === undefined) throw new Error(`unknown scenario ${name}: ${Object.keys(SCENARIOS).join(', ')}`);
  fs.mkdirSync(outDir, { recursive: true });
  const workDir = fs.mkdtempSync('/tmp/rtev-fixture-');
  const objectPath = path.join(REPO, 'build', 'rtev.bpf.o');
  const session = BpfSession.open(objectPath, {
    selfTgid: process.pid, filterPids: true, cgroupFilter: 'off', recordFailedOpens: true,
    bulkRingBytes: 1 << 22, rareRingBytes: 1 << 20,
  }, scenario.probes);
  const warn = (m: string): void => console.error(`warning: ${m}`);
  const uprobes = new UprobeManager(session, scenario.probes, warn);
  await uprobes.start();
  const targets = scenario.functions?.(workDir);
  const functions = targets !== undefined ? await FunctionProbes.create(session, { specs: targets, mode: 'all', warn }) : undefined;
  const frames: Buffer[] = [];
  session.startRings((_ring, batch, used) => { forEachFrame(batch, used, (rec) => frames.push(Buffer.from(rec))); });
  const command = scenario.command(workDir);
  const child = spawn('/bin/sh', ['-c', 'read _ <&3; exec 3<&-; exec "$@"', 'gate', ...command], { stdio: ['ignore', 'ignore', 'inherit', 'pipe'] });
  session.traceProcess(child.pid!, TRACE_TREE);
  (child.stdio[3] as NodeJS.WritableStream).end('go\n');
  await new Promise((resolve) => child.on('exit', resolve));
  uprobes.close();
  functions?.close();
  await session.close();
  const parts: Buffer[] = [];
  for (const f of frames) {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(f.length);
    parts.push(len, f);
  }
  const samples = Buffer.concat(parts);
  const replay = replayFixture(samples);
  fs.writeFileSync(path.join(outDir, 'samples.bin'), samples);
  fs.writeFileSync(path.join(outDir, 'expected.ndjson'), replay.lines.map((l) => l + '\n').join(''));
  if (replay.calls.length > 0) fs.writeFileSync(path.join(outDir, 'expected-calls.ndjson'), replay.calls.map((l) => l + '\n').join(''));
  const structs = structsOf(scenario.probes);
  fs.writeFileSync(path.join(outDir, 'manifest.json'), JSON.stringify({
    scenario: scenario.description, probes: scenario.probes, kernel: os.release(), arch: os.arch(),
    bpf_object_sha256: createHash('sha256').update(fs.readFileSync(objectPath)).digest('hex'),
    wire_layout: { file: 'bpf/events.h', structs, sha256: wireLayoutHash(fs.readFileSync(path.join(REPO, 'bpf', 'events.h'), 'utf8'), structs) },
    recorded: new Date().toISOString(), records: frames.length,
    record_fixture: `node dist/test/tools/record-fixture.js test/fixtures/ringbuf/${path.basename(outDir)} ${name}`,
  }, null, 2) + '\n');
  console.log(`recorded ${frames.length} records into ${outDir}`);
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
