/**
 * record-fixture: runs test/progs/trigger.c under the real probes and stores the raw ring
 * records it produced as a fixture for the unit tests (root only):
 *   node dist/test/tools/record-fixture.js test/fixtures/ringbuf/trigger
 * Writes samples.bin (repeated [u32 length][record bytes]), expected.ndjson (the pipeline's
 * output for those samples) and manifest.json (kernel, BPF object digest).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { forEachFrame } from '../../src/decode/decode';
import { BpfSession, TRACE_TREE } from '../../src/ingest/session';
import { replayFixture } from '../helpers/replay';
import { REPO, compileC } from '../helpers/collector';

async function main(): Promise<void> {
  const outDir = path.resolve(process.argv[2] ?? 'test/fixtures/ringbuf/trigger');
  fs.mkdirSync(outDir, { recursive: true });
  const objectPath = path.join(REPO, 'build', 'rtev.bpf.o');
  const session = BpfSession.open(objectPath, {
    selfTgid: process.pid, filterPids: true, cgroupFilter: 'off', recordFailedOpens: true,
    bulkRingBytes: 1 << 22, rareRingBytes: 1 << 20,
  }, ['file_open', 'process_exec', 'tcp_state']);
  const frames: Buffer[] = [];
  session.startRings((_ring, batch, used) => { forEachFrame(batch, used, (rec) => frames.push(Buffer.from(rec))); });
  const trigger = compileC('trigger.c');
  const workDir = fs.mkdtempSync('/tmp/rtev-fixture-');
  const child = spawn('/bin/sh', ['-c', 'read _ <&3; exec 3<&-; exec "$@"', 'gate', trigger, workDir], { stdio: ['ignore', 'ignore', 'inherit', 'pipe'] });
  session.traceProcess(child.pid!, TRACE_TREE);
  (child.stdio[3] as NodeJS.WritableStream).end('go\n');
  await new Promise((resolve) => child.on('exit', resolve));
  session.detachAll();
  await session.drain();
  const parts: Buffer[] = [];
  for (const f of frames) {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(f.length);
    parts.push(len, f);
  }
  const samples = Buffer.concat(parts);
  fs.writeFileSync(path.join(outDir, 'samples.bin'), samples);
  fs.writeFileSync(path.join(outDir, 'expected.ndjson'), replayFixture(samples).lines.join('\n') + '\n');
  fs.writeFileSync(path.join(outDir, 'manifest.json'), JSON.stringify({
    scenario: 'test/progs/trigger.c with --include-failed-opens', kernel: os.release(), arch: os.arch(),
    bpf_object_sha256: createHash('sha256').update(fs.readFileSync(objectPath)).digest('hex'),
    recorded: new Date().toISOString(), records: frames.length,
  }, null, 2) + '\n');
  console.log(`recorded ${frames.length} records into ${outDir}`);
}

void main();
