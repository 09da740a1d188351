/**
 * Seal throughput of the chain sealer alone, on the disk under a directory (docs/benchmarks.md,
 * "Session 6 (h31)"): a backlog of K chunk files of S bytes (written, not fsynced, as the writer
 * leaves them) is sealed by
 *   - `before`: the ChainSealer of another build (BEFORE=/path/to/checkout, e.g. /work/wt/base),
 *     whose seal() does fsync(file), rename, fsync(dir), then the envelope's write + fsync +
 *     rename + fsync(dir), one chunk after the other;
 *   - `group`: this build's sealGroup over the backlog, at most MAX_GROUP jobs per group;
 *   - `one`: this build's sealGroup one job at a time (no backlog: the latency of one seal).
 * Rounds alternate the variants. Disk-bound more than CPU-bound, so steadier on a loaded host
 * than a collector run. Usage:
 *   node dist/bench/seal-group.bench.js [K=200] [S=131072] [ROUNDS=3] [DIR=/tmp]   (env BEFORE=checkout)
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ChainSealer, MAX_GROUP, type SealJob } from '../src/store/chain-sealer';
import { generateSigningKey } from '../src/sign/keys';

const K = Number(process.argv[2] ?? 200);
const S = Number(process.argv[3] ?? 131072);
const ROUNDS = Number(process.argv[4] ?? 3);
const BASE = process.argv[5] ?? os.tmpdir();
const BEFORE = process.env['BEFORE'];
const key = generateSigningKey();
const line = Buffer.from('{"schema":"runtime-evidence.v1","event":{"type":"file_open","path":"/tmp/storm-target","flags":0}}\n');

function backlog(dir: string): SealJob[] {
  fs.mkdirSync(dir, { mode: 0o700 });
  const body = Buffer.alloc(S);
  for (let o = 0; o < S; o += line.length) line.copy(body, o);
  const jobs: SealJob[] = [];
  for (let seq = 1; seq <= K; seq++) {
    const tmpPath = path.join(dir, `chunk-${String(seq).padStart(12, '0')}.ndjson.partial`);
    fs.writeFileSync(tmpPath, body, { mode: 0o600 });
    const predicate = {
      chain: { chain_id: 'bench', seq, prev_envelope_sha256: null, run_id: 'bench-run', run_chunk_index: seq - 1, final: false, seal_reason: 'size' },
      records: { count: Math.floor(S / line.length), bytes: S },
    } as unknown as SealJob['predicate'];
    jobs.push({ tmpPath, seq, bytes: S, sha256: crypto.createHash('sha256').update(body).digest('hex'), predicate, sealedAtMs: Date.now() });
  }
  return jobs;
}

function sealer(mod: { ChainSealer: typeof ChainSealer }, dir: string): ChainSealer {
  return new mod.ChainSealer({ dir, key, chainId: 'bench', prevEnvelopeSha256: null, sealed: [], unrecorded: [], retention: {} });
}

type Variant = 'before' | 'group' | 'one';
async function run(variant: Variant, root: string): Promise<number> {
  const dir = path.join(root, variant);
  const jobs = backlog(dir);
  const start = process.hrtime.bigint();
  if (variant === 'before') {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const mod = require(path.join(BEFORE!, 'dist', 'src', 'store', 'chain-sealer.js')) as { ChainSealer: typeof ChainSealer };
    const s = sealer(mod, dir);
    for (const j of jobs) await s.seal(j);
  } else {
    const s = sealer({ ChainSealer }, dir);
    const size = variant === 'group' ? MAX_GROUP : 1;
    for (let i = 0; i < jobs.length; i += size) await s.sealGroup(jobs.slice(i, i + size));
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  const envelopes = fs.readdirSync(dir).filter((n) => n.endsWith('.dsse.json')).length;
  if (envelopes !== K) throw new Error(`${variant}: ${envelopes} envelopes for ${K} chunks`);
  fs.rmSync(dir, { recursive: true, force: true });
  return K / secs;
}

async function main(): Promise<void> {
  const variants: Variant[] = BEFORE !== undefined ? ['before', 'group', 'one'] : ['group', 'one'];
  const root = fs.mkdtempSync(path.join(BASE, 'rtev-seal-group-'));
  console.log(`# seal-group: K=${K} chunks of ${S} bytes, ${ROUNDS} rounds, dir ${root}, before=${BEFORE ?? '-'}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const got = new Map<Variant, number[]>(variants.map((v) => [v, []]));
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? variants : [...variants].reverse();
    for (const v of order) {
      const rate = await run(v, root);
      got.get(v)!.push(rate);
      console.log(`round ${r + 1}\t${v}\t${rate.toFixed(1)} seals/s`);
    }
  }
  const med = (xs: number[]): number => {
    const v = [...xs].sort((a, b) => a - b);
    return v.length % 2 === 1 ? v[v.length >> 1]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
  };
  for (const v of variants) console.log(`median\t${v}\t${med(got.get(v)!).toFixed(1)} seals/s`);
  if (BEFORE !== undefined) console.log(`group / before: ${(med(got.get('group')!) / med(got.get('before')!)).toFixed(2)}x; one / before: ${(med(got.get('one')!) / med(got.get('before')!)).toFixed(2)}x`);
  console.log(`# load at end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  fs.rmSync(root, { recursive: true, force: true });
}

void main();
