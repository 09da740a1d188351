import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { canonicalize, type CanonicalValue } from '../../src/encode/canonical';
import { emptyKernelCounters, emptyUserCounters, type Ledger } from '../../src/model/ledger';
import type { EventType } from '../../src/model/record';
import { writeKeyPair } from '../../src/sign/key-files';
import { generateSigningKey, type SigningKey } from '../../src/sign/keys';
import type { Environment } from '../../src/store/host-facts';
import { openEvidenceDir } from '../../src/store/output';
import type { AttributionSource, FunctionCallTotal, OutputContext } from '../../src/store/sink';

/**
 * Synthetic signed evidence written with the real chunk writer and signer, for index tests
 * and benchmarks: a deterministic mix of every event type, several processes, containers,
 * peers and functions, ts_ns above 2^53, non-ASCII and surrogate-escaped strings.
 */

export interface SyntheticOptions {
  /** first record index (to continue a chain in a later run) */
  from?: number;
  chunkMaxBytes?: number;
  hostname?: string;
  machineId?: string;
  /** mono ns of record 0 */
  monoStart?: bigint;
  /** Unix ns at monoStart */
  wallStart?: bigint;
  /** ns between records */
  stepNs?: bigint;
  /** package attribution of the chunks (predicate `attribution`); the records are noted to it */
  attribution?: AttributionSource;
  /** records of SYNTH_CONTAINERS[1] carry no image_digest (their image comes from the container facts, if any) */
  omitSecondImage?: boolean;
  /** every this many records, one more is counted lost (ring_full) in its probe's ledger */
  dropEvery?: number;
}

export const SYNTH_CONTAINERS = ['podman://a1b2c3d4e5f6' + '0'.repeat(52), 'docker://f00dfeed' + '1'.repeat(56)];
export const SYNTH_IMAGES = ['sha256:' + 'd'.repeat(64), 'sha256:' + 'e'.repeat(64)];
export const SYNTH_FUNCTIONS = [
  { function: '/usr/lib/x86_64-linux-gnu/libssl.so.3:SSL_read', symbol: 'SSL_read', library: '/usr/lib/x86_64-linux-gnu/libssl.so.3', node_hash: 'sha256:' + '1'.repeat(64) },
  { function: '/opt/app/bin/app:vuln_func', symbol: 'vuln_func', library: '/opt/app/bin/app', node_hash: 'sha256:' + '2'.repeat(64) },
];

/** syntheticEvent returns record i (deterministic). */
export function syntheticLine(i: number, tsNs: bigint, omitSecondImage = false): { line: string; type: EventType; fn?: number } {
  const h = (i * 2654435761) >>> 0;
  const pid = 1000 + (h % 97);
  const inContainer = h % 5 === 0;
  const c = (h >>> 8) % 2;
  const kind = h % 100;
  let type: EventType;
  let event: Record<string, CanonicalValue>;
  let fn: number | undefined;
  if (kind < 60) {
    type = 'file_open';
    const write = (h >>> 4) % 7 === 0;
    event = { type, path: (h >>> 3) % 11 === 0 ? `/usr/lib/x86_64-linux-gnu/libz${(h >>> 5) % 3}.so.1` : `/var/data/f-${h % 5003}-\u00e9${(h >>> 6) % 13 === 0 ? '\udcff' : ''}.txt`, flags: write ? 577 : 0, access: write ? 'write' : 'read' };
  } else if (kind < 68) {
    type = 'process_exec';
    event = { type, filename: `/usr/bin/tool${h % 13}`, ppid: 1, argv0: `tool${h % 13}` };
  } else if (kind < 76) {
    type = 'net_connect';
    event = { type, addr: `127.0.0.${1 + (h % 4)}`, port: 8000 + (h % 16), fd: 3, success: true };
  } else if (kind < 84) {
    type = 'tcp_state';
    event = { type, oldstate: 'SYN_SENT', newstate: 'ESTABLISHED', saddr: '127.0.0.1', sport: 40000 + (h % 2000), daddr: `127.0.0.${1 + (h % 4)}`, dport: 8000 + (h % 16), family: 'inet' };
  } else if (kind < 94) {
    type = 'ssl_op';
    event = { type, operation: h % 2 === 0 ? 'read' : 'write', bytes: 1 + (h % 16384), ssl_ptr: '0x55d0c0ffee00' };
  } else {
    type = 'function_call';
    fn = h % SYNTH_FUNCTIONS.length;
    const f = SYNTH_FUNCTIONS[fn]!;
    event = { type, addr: '0x401136', symbol: f.symbol, library: f.library, runtime: 'native', node_hash: f.node_hash };
  }
  const src = { file_open: 'sys_enter_openat', process_exec: 'sched_process_exec', net_connect: 'uprobe:connect', tcp_state: 'inet_sock_set_state', ssl_op: 'uprobe:SSL_read', function_call: 'uprobe:function_entry' }[type];
  const rec: Record<string, CanonicalValue> = { ts_ns: tsNs, src, pid, tid: pid, comm: `proc${pid % 17}`, cgroup_id: 18446744073709551615n - BigInt(h % 3), event };
  if (inContainer) {
    rec['container_id'] = SYNTH_CONTAINERS[c]!;
    if (!(omitSecondImage && c === 1)) rec['image_digest'] = SYNTH_IMAGES[c]!;
  }
  return { line: canonicalize(rec), type, ...(fn !== undefined ? { fn } : {}) };
}

export interface SyntheticResult {
  dir: string;
  keyFile: string;
  key: SigningKey;
  /** every line written, in order (only when keepLines) */
  lines: string[];
  records: number;
}

/** newKey writes a fresh key pair into dir/signing.key(.pub). */
export function newKey(dir: string): { key: SigningKey; keyFile: string } {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key = generateSigningKey();
  const keyFile = path.join(dir, 'signing.key');
  writeKeyPair(keyFile, key);
  return { key, keyFile };
}

/**
 * writeSynthetic writes records [from, from + n) into the evidence dir as one collector run,
 * sealed at chunkMaxBytes and at the end.
 */
export async function writeSynthetic(dir: string, keyFile: string, n: number, o: SyntheticOptions = {}, keepLines = false): Promise<{ lines: string[] }> {
  const from = o.from ?? 0;
  const step = o.stepNs ?? 1_000_000n;
  const monoStart = o.monoStart ?? 9_007_199_254_740_993n;
  const wallStart = o.wallStart ?? 1_764_576_000_000_000_000n; // 2025-12-01T08:00:00Z
  let mono = monoStart + BigInt(from) * step;
  let ids = 0;
  const hostname = o.hostname ?? 'synth-host';
  const machineId = o.machineId ?? crypto.createHash('md5').update(hostname).digest('hex');
  const env: Environment = {
    hostFacts: () => ({ hostname, machine_id: machineId, boot_id: '11111111-2222-3333-4444-555555555555', kernel_release: '6.18.0-synth', arch: 'x86_64' }),
    timeAnchor: () => ({ wall_ns: wallStart + (mono - monoStart), mono_ns: mono, uncertainty_ns: 1_000_000n }),
    nowMs: () => Number((wallStart + (mono - monoStart)) / 1_000_000n),
    newId: () => crypto.randomUUID() ?? `id-${++ids}`,
  };
  const ledger: Ledger = {};
  const fnTotals: FunctionCallTotal[] = SYNTH_FUNCTIONS.map((f) => ({ function: f.function, symbol: f.symbol, node_hash: f.node_hash, calls: 0n, emitted: 0n, suppressed: 0n }));
  const context: OutputContext = {
    producer: { collectorVersion: '0.1.0-synth', bpfObjectSha256: 'a'.repeat(64), btf: { path: '/sys/kernel/btf/vmlinux', sha256: 'b'.repeat(64) }, filters: {}, configSha256: 'c'.repeat(64), probes: ['file_open', 'function_call', 'net_connect', 'process_exec', 'ssl_op', 'tcp_state'] },
    ledger: () => structuredClone(ledger),
    functionCalls: () => fnTotals.map((t) => ({ ...t })),
    notice: () => undefined,
    ...(o.attribution !== undefined ? { attribution: o.attribution } : {}),
  };
  const sink = openEvidenceDir({ stdout: false, outDir: dir, keyFile, chunkMaxBytes: o.chunkMaxBytes ?? 16 * 1024 * 1024, chunkMaxAgeMs: 1e12 }, context, env, false);
  const lines: string[] = [];
  for (let i = from; i < from + n; i++) {
    const tsNs = mono;
    const r = syntheticLine(i, tsNs, o.omitSecondImage === true);
    const p = (ledger[r.type] ??= { kernel: emptyKernelCounters(), user: emptyUserCounters() });
    p.kernel.submitted++;
    p.user.received++;
    if (r.fn !== undefined) {
      const t = fnTotals[r.fn]!;
      t.calls += 3n; // the record is the first of three calls in this window (first-seen mode)
      t.emitted += 1n;
      t.suppressed += 2n;
    }
    if (o.dropEvery !== undefined && i % o.dropEvery === 0) p.kernel.ringFull++;
    sink.write(r.line, { type: r.type, tsNs, probe: r.type, ...(o.attribution !== undefined ? { record: JSON.parse(r.line) } : {}) });
    p.user.written++;
    if (keepLines) lines.push(r.line);
    mono += step;
  }
  await sink.close(structuredClone(ledger));
  return { lines };
}

/**
 * cachedSyntheticEvidence returns DIR/ev-RECORDS, generated once (one collector run per million
 * records, like a collector restarted now and then) and reused while its `done` marker exists, with
 * the public key under DIR/keys. The benchmarks that share big evidence use it.
 */
export async function cachedSyntheticEvidence(dir: string, records: number): Promise<{ evidence: string; pub: string; generatedMs?: number }> {
  const evidence = path.join(dir, `ev-${records}`);
  const pub = path.join(dir, 'keys', 'signing.key.pub');
  if (fs.existsSync(path.join(evidence, 'done'))) return { evidence, pub };
  fs.rmSync(evidence, { recursive: true, force: true });
  const keyFile = fs.existsSync(pub) ? pub.replace(/\.pub$/, '') : newKey(path.join(dir, 'keys')).keyFile;
  const t = Date.now();
  const batch = 1_000_000;
  for (let from = 0; from < records; from += batch) {
    await writeSynthetic(evidence, keyFile, Math.min(batch, records - from), { from });
    console.error(`  generated ${Math.min(from + batch, records)} records, ${((Date.now() - t) / 1000).toFixed(0)} s`);
  }
  fs.writeFileSync(path.join(evidence, 'done'), '');
  return { evidence, pub, generatedMs: Date.now() - t };
}
