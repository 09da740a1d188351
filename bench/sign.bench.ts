/**
 * bench/sign.bench.ts: per-record cost of the signed chunk sink (write + incremental sha256
 * + fsync/rename + Ed25519 signing in the seal worker) against a plain NDJSON file sink, in
 * one run, alternating the order each round. "ingest thread" is the time the caller spends
 * in write() (what limits collection throughput); "process CPU" includes the seal worker
 * thread (hashing, fsync, signing), which runs on another core. Run: node dist/bench/sign.bench.js [records] [rounds]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generateSigningKey } from '../src/sign/keys';
import { writeKeyPair } from '../src/sign/key-files';
import { openEvidenceDir } from '../src/store/output';
import { realEnvironment } from '../src/store/host-facts';
import type { LineInfo, RecordSink } from '../src/store/sink';
import { FakeLedger, PRODUCER, syntheticRecord } from '../test/helpers/evidence-fixtures';

const N = Number(process.argv[2] ?? 300_000);
const ROUNDS = Number(process.argv[3] ?? 5);

/** PlainSink is the unsigned baseline: the same 1 MiB batching into one file. */
class PlainSink implements RecordSink {
  #fd: number;
  #pending: string[] = [];
  #bytes = 0;
  #written = 0;
  constructor(file: string) {
    this.#fd = fs.openSync(file, 'w', 0o600);
  }
  get backlogBytes(): number {
    return this.#bytes;
  }
  get bytesWritten(): number {
    return this.#written;
  }
  write(line: string, _info: LineInfo): void {
    this.#pending.push(line);
    this.#bytes += line.length + 1;
    if (this.#bytes >= 1 << 20) this.#flush();
  }
  async close(): Promise<void> {
    this.#flush();
    fs.fsyncSync(this.#fd);
    fs.closeSync(this.#fd);
  }
  #flush(): void {
    const data = Buffer.from(this.#pending.join('\n') + '\n');
    this.#pending = [];
    this.#bytes = 0;
    fs.writeSync(this.#fd, data);
    this.#written += data.length;
  }
}

interface Sample { ingestNsPerRecord: number; cpuNsPerRecord: number; wallNsPerRecord: number; bytes: number }

async function measure(kind: 'plain' | 'signed', records: Array<{ line: string; info: LineInfo }>, root: string, keyFile: string): Promise<Sample> {
  const dir = fs.mkdtempSync(path.join(root, kind + '-'));
  const ledger = new FakeLedger();
  const sink: RecordSink = kind === 'plain'
    ? new PlainSink(path.join(dir, 'records.ndjson'))
    : openEvidenceDir({ stdout: false, outDir: path.join(dir, 'ev'), keyFile, chunkMaxBytes: 16 << 20 }, { producer: PRODUCER, ledger: () => ledger.snapshot(), notice: () => undefined }, realEnvironment(), false);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (const r of records) sink.write(r.line, r.info);
  const ingest = Number(process.hrtime.bigint() - t0);
  await sink.close(ledger.snapshot());
  const wall = Number(process.hrtime.bigint() - t0);
  const cpu = process.cpuUsage(cpu0);
  fs.rmSync(dir, { recursive: true, force: true });
  return { ingestNsPerRecord: ingest / records.length, cpuNsPerRecord: ((cpu.user + cpu.system) * 1000) / records.length, wallNsPerRecord: wall / records.length, bytes: sink.bytesWritten };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-bench-sign-'));
  const keyFile = path.join(root, 'key');
  writeKeyPair(keyFile, generateSigningKey());
  const records = Array.from({ length: N }, (_, i) => syntheticRecord(i));
  const avg = records.reduce((s, r) => s + Buffer.byteLength(r.line) + 1, 0) / N;
  const results: Record<'plain' | 'signed', Sample[]> = { plain: [], signed: [] };
  await measure('signed', records.slice(0, 20_000), root, keyFile); // warm-up (JIT, worker code)
  await measure('plain', records.slice(0, 20_000), root, keyFile);
  for (let round = 0; round < ROUNDS; round++) {
    const order: Array<'plain' | 'signed'> = round % 2 === 0 ? ['plain', 'signed'] : ['signed', 'plain'];
    for (const kind of order) results[kind].push(await measure(kind, records, root, keyFile));
  }
  fs.rmSync(root, { recursive: true, force: true });
  const row = (kind: 'plain' | 'signed') => {
    const ingest = median(results[kind].map((s) => s.ingestNsPerRecord));
    const cpu = median(results[kind].map((s) => s.cpuNsPerRecord));
    const wall = median(results[kind].map((s) => s.wallNsPerRecord));
    return { kind, ingest_thread_ns_per_record: Math.round(ingest), process_cpu_ns_per_record: Math.round(cpu), wall_ns_per_record: Math.round(wall), records_per_s: Math.round(1e9 / wall), mb_per_s: Math.round((avg * 1e9) / wall / 1e6), raw_ingest: results[kind].map((s) => Math.round(s.ingestNsPerRecord)).join(' ') };
  };
  const plain = row('plain');
  const signed = row('signed');
  console.log(`# sign.bench: ${N} records x ${ROUNDS} rounds, ${avg.toFixed(0)} bytes/record, 16 MiB chunks; node ${process.version}, ${os.cpus()[0]?.model ?? '?'}, ${os.release()}`);
  console.table([plain, signed]);
  console.log(`ingest thread, signed vs plain: ${(signed.ingest_thread_ns_per_record / plain.ingest_thread_ns_per_record).toFixed(3)}x (${signed.ingest_thread_ns_per_record - plain.ingest_thread_ns_per_record} ns/record)`);
  console.log(`process CPU (incl. seal worker), signed vs plain: ${(signed.process_cpu_ns_per_record / plain.process_cpu_ns_per_record).toFixed(3)}x (+${signed.process_cpu_ns_per_record - plain.process_cpu_ns_per_record} ns/record)`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
