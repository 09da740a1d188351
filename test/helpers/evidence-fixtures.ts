import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { canonicalize } from '../../src/encode/canonical';
import { emptyKernelCounters, emptyUserCounters, type Ledger } from '../../src/model/ledger';
import type { EventType } from '../../src/model/record';
import { generateSigningKey, type SigningKey } from '../../src/sign/keys';
import type { Environment } from '../../src/store/host-facts';
import { openEvidenceDir } from '../../src/store/output';
import type { ChunkSink } from '../../src/store/chunk-writer';
import type { LineInfo, OutputContext, OutputOptions, ProducerInfo } from '../../src/store/sink';
import { writeKeyPair } from '../../src/sign/key-files';

/** Test helpers for evidence directories: fixed host facts, synthetic records, a fake ledger. */

/** fixedEnvironment is a deterministic Environment: fixed host, stepping clocks, counted ids. */
export function fixedEnvironment(): Environment & { advanceMs(ms: number): void } {
  let ms = 1_700_000_000_000;
  let mono = 5_000_000_000n;
  let ids = 0;
  return {
    hostFacts: () => ({ hostname: 'test-host', machine_id: '0123456789abcdef0123456789abcdef', boot_id: '11111111-2222-3333-4444-555555555555', kernel_release: '6.1.0-test', arch: 'x86_64' }),
    timeAnchor: () => {
      mono += 1_000_000n;
      return { wall_ns: BigInt(ms) * 1_000_000n, mono_ns: mono, uncertainty_ns: 1_000_000n };
    },
    nowMs: () => ms,
    newId: () => `00000000-0000-4000-8000-${String(++ids).padStart(12, '0')}`,
    advanceMs: (d: number) => {
      ms += d;
      mono += BigInt(d) * 1_000_000n;
    },
  };
}

export const PRODUCER: ProducerInfo = {
  collectorVersion: '0.1.0-test',
  bpfObjectSha256: 'a'.repeat(64),
  btf: { path: '/sys/kernel/btf/vmlinux', sha256: 'b'.repeat(64) },
  filters: { pids: [], paths: ['/etc/**'] },
  configSha256: 'c'.repeat(64),
  probes: ['file_open', 'process_exec'],
};

/** FakeLedger counts like the collector: kernel submitted, user received/written. */
export class FakeLedger {
  readonly ledger: Ledger = {};

  probe(name: string) {
    return (this.ledger[name] ??= { kernel: emptyKernelCounters(), user: emptyUserCounters() });
  }

  snapshot(): Ledger {
    return structuredClone(this.ledger);
  }
}

/** syntheticRecord returns a canonical line and its LineInfo; ts_ns exceeds 2^53 on purpose. */
export function syntheticRecord(i: number): { line: string; info: LineInfo } {
  const tsNs = 9_007_199_254_740_993n + BigInt(i) * 1000n;
  const exec = i % 5 === 4;
  const type: EventType = exec ? 'process_exec' : 'file_open';
  const event = exec
    ? { type, filename: `/usr/bin/tool${i % 7}`, ppid: 1 }
    : { type, path: `/etc/file-${i}-\u00e9`, flags: 0, access: 'read' };
  const line = canonicalize({ ts_ns: tsNs, src: exec ? 'sched_process_exec' : 'sys_enter_openat', pid: 100 + (i % 50), tid: 100 + (i % 50), comm: 'cat', cgroup_id: 18446744073709551615n, event });
  return { line, info: { type, tsNs, probe: type } };
}

export interface Harness {
  dir: string;
  keyFile: string;
  key: SigningKey;
  env: ReturnType<typeof fixedEnvironment>;
  /** the ledger of the current run (a new one per open(), as each collector run starts at zero) */
  ledger: FakeLedger;
  notices: string[];
  open(options?: Partial<OutputOptions>): ChunkSink;
  /** writes records [from, to) counting them in the ledger like the collector does */
  feed(sink: ChunkSink, from: number, to: number): void;
}

/** makeHarness creates a fresh evidence dir and key in a temp directory. */
export function makeHarness(prefix = 'rtev-ev-'): Harness {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const dir = path.join(root, 'evidence');
  const keyFile = path.join(root, 'signing.key');
  const key = generateSigningKey();
  writeKeyPair(keyFile, key);
  const env = fixedEnvironment();
  const ledger = new FakeLedger();
  const notices: string[] = [];
  const h: Harness = {
    dir, keyFile, key, env, ledger, notices,
    open: (options = {}) => {
      h.ledger = new FakeLedger();
      const context: OutputContext = { producer: PRODUCER, ledger: () => h.ledger.snapshot(), notice: (m) => notices.push(m) };
      return openEvidenceDir({ stdout: false, outDir: dir, keyFile, ...options }, context, env, false);
    },
    feed: (sink, from, to) => {
      for (let i = from; i < to; i++) {
        const r = syntheticRecord(i);
        const p = h.ledger.probe(r.info.probe);
        p.kernel.submitted++;
        p.user.received++;
        sink.write(r.line, r.info);
        p.user.written++;
      }
    },
  };
  return h;
}

/** evidenceFiles lists a directory's files, sorted. */
export function evidenceFiles(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}
