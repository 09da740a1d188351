import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseStrict } from '../../src/encode/strict-json';
import { ChainSealer, SealFailure, type SealJob } from '../../src/store/chain-sealer';
import { verifyEvidence } from '../../src/verify';
import { evidenceFiles, makeHarness, syntheticRecord, type Harness } from '../helpers/evidence-fixtures';
import { tempDir } from '../helpers/collector';

/**
 * Group commit (src/store/chain-sealer.ts): jobs sealed together give the very envelopes that
 * sealing them one by one gives, and the real file operations run in the crash-safe order
 * (docs/format.md, "Writing and crash safety").
 */

interface Sealed { dir: string; seqs: number[]; envelopes: Map<number, Buffer>; predicates: Map<number, any>; data: Map<number, Buffer> }

/** a chain sealed by a real sink (whatever groups its worker formed) */
async function sealedChain(h: Harness): Promise<Sealed> {
  const sink = h.open({ chunkMaxBytes: 2500 });
  for (let i = 0; i < 60; i++) {
    const r = syntheticRecord(i);
    sink.write(r.line, r.info);
  }
  await sink.close(h.ledger.snapshot());
  const seqs = evidenceFiles(h.dir).filter((n) => /^chunk-\d{12}\.dsse\.json$/.test(n)).map((n) => Number(n.slice(6, 18))).sort((a, b) => a - b);
  const envelopes = new Map<number, Buffer>();
  const predicates = new Map<number, any>();
  const data = new Map<number, Buffer>();
  for (const s of seqs) {
    const name = `chunk-${String(s).padStart(12, '0')}`;
    const env = fs.readFileSync(path.join(h.dir, `${name}.dsse.json`));
    envelopes.set(s, env);
    predicates.set(s, (parseStrict(Buffer.from(JSON.parse(env.toString('utf8')).payload, 'base64').toString('utf8')) as any).predicate);
    data.set(s, fs.readFileSync(path.join(h.dir, `${name}.ndjson`)));
  }
  return { dir: h.dir, seqs, envelopes, predicates, data };
}

/** the same chunks as .partial files in a new directory, as jobs for a fresh sealer */
function reseal(h: Harness, chain: Sealed): { dir: string; sealer: ChainSealer; jobs: SealJob[] } {
  const dir = path.join(tempDir('rtev-group-'), 'ev');
  fs.mkdirSync(dir, { mode: 0o700 });
  const jobs = chain.seqs.map((seq): SealJob => {
    const tmpPath = path.join(dir, `chunk-${String(seq).padStart(12, '0')}.ndjson.partial`);
    fs.writeFileSync(tmpPath, chain.data.get(seq)!, { mode: 0o600 });
    const predicate = structuredClone(chain.predicates.get(seq));
    predicate.chain.prev_envelope_sha256 = null;
    return { tmpPath, seq, bytes: chain.data.get(seq)!.length, sha256: crypto.createHash('sha256').update(chain.data.get(seq)!).digest('hex'), predicate, sealedAtMs: 0 };
  });
  const first = chain.predicates.get(chain.seqs[0]!);
  const sealer = new ChainSealer({ dir, key: h.key, chainId: first.chain.chain_id, prevEnvelopeSha256: null, sealed: [], unrecorded: [], retention: {} });
  return { dir, sealer, jobs };
}

test('a group seals the same envelopes, byte for byte, as chunks sealed one by one', async () => {
  const h = makeHarness();
  const chain = await sealedChain(h);
  assert.ok(chain.seqs.length >= 5, `${chain.seqs.length} chunks`);
  const { dir, sealer, jobs } = reseal(h, chain);
  await sealer.sealGroup(jobs.slice(0, 1));
  await sealer.sealGroup(jobs.slice(1));
  for (const seq of chain.seqs) {
    const name = `chunk-${String(seq).padStart(12, '0')}`;
    assert.deepEqual(fs.readFileSync(path.join(dir, `${name}.dsse.json`)), chain.envelopes.get(seq), `${name}.dsse.json`);
    assert.deepEqual(fs.readFileSync(path.join(dir, `${name}.ndjson`)), chain.data.get(seq));
  }
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.endsWith('.partial')), []);
  assert.equal(verifyEvidence(dir, [h.key]).status, 'valid');
});

test('group commit order: data and envelope bytes durable, chunks renamed, directory synced, then envelopes renamed and the directory synced', async () => {
  const h = makeHarness();
  const chain = await sealedChain(h);
  const { dir, sealer, jobs } = reseal(h, chain);
  // record the real calls (they still run) in the order they complete
  const log: string[] = [];
  const names = new Map<number, string>();
  const real = { openSync: fs.openSync, fsync: fs.fsync, fsyncSync: fs.fsyncSync, renameSync: fs.renameSync };
  const mut = require('node:fs') as any; // the module itself: the sealer's fs calls read its properties
  mut.openSync = (p: fs.PathLike, ...rest: any[]) => {
    const fd = (real.openSync as any)(p, ...rest);
    names.set(fd, path.basename(String(p)));
    return fd;
  };
  mut.fsync = (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => real.fsync(fd, (err) => {
    log.push(`synced ${names.get(fd)}`);
    cb(err);
  });
  mut.fsyncSync = (fd: number) => {
    real.fsyncSync(fd);
    log.push(`synced ${names.get(fd)}`);
  };
  mut.renameSync = (a: fs.PathLike, b: fs.PathLike) => {
    real.renameSync(a, b);
    log.push(`renamed ${path.basename(String(b))}`);
  };
  try {
    await sealer.sealGroup(jobs);
  } finally {
    Object.assign(mut, real);
  }
  const at = (entry: string): number => {
    const i = log.indexOf(entry);
    assert.ok(i >= 0, `${entry} missing from ${log.join(', ')}`);
    return i;
  };
  const dirSyncs = log.map((e, i) => (e === `synced ${path.basename(dir)}` ? i : -1)).filter((i) => i >= 0);
  assert.equal(dirSyncs.length, 2, log.join(', '));
  let lastChunkRename = -1;
  let lastEnvRename = -1;
  for (const seq of chain.seqs) {
    const name = `chunk-${String(seq).padStart(12, '0')}`;
    const chunkRename = at(`renamed ${name}.ndjson`);
    const envRename = at(`renamed ${name}.dsse.json`);
    assert.ok(at(`synced ${name}.ndjson.partial`) < chunkRename, `${name}: data fsynced before its rename`);
    assert.ok(at(`synced ${name}.dsse.json.partial`) < chunkRename, `${name}: envelope bytes fsynced before any rename`);
    assert.ok(chunkRename > lastChunkRename && envRename > lastEnvRename, `${name}: renamed in sequence order`);
    assert.ok(chunkRename < dirSyncs[0]! && dirSyncs[0]! < envRename && envRename < dirSyncs[1]!, `${name}: chunk name durable before its envelope is named`);
    lastChunkRename = chunkRename;
    lastEnvRename = envRename;
  }
  assert.equal(verifyEvidence(dir, [h.key]).status, 'valid');
});

test('a failure inside a group seals the jobs before it and no envelope from the failed one on', async () => {
  const h = makeHarness();
  const chain = await sealedChain(h);
  const { dir, sealer, jobs } = reseal(h, chain);
  const k = 3;
  fs.appendFileSync(jobs[k]!.tmpPath, 'x'); // the size the writer reported no longer matches
  await assert.rejects(sealer.sealGroup(jobs), (err: unknown) => err instanceof SealFailure && err.seq === jobs[k]!.seq && /changed size/.test(String((err.error as Error).message)));
  const left = fs.readdirSync(dir);
  for (const [i, job] of jobs.entries()) {
    const name = `chunk-${String(job.seq).padStart(12, '0')}`;
    assert.equal(left.includes(`${name}.dsse.json`), i < k, `${name}.dsse.json`);
    assert.equal(left.includes(`${name}.ndjson`), i < k, `${name}.ndjson`);
  }
  for (let i = 0; i < k; i++) assert.deepEqual(fs.readFileSync(path.join(dir, `chunk-${String(jobs[i]!.seq).padStart(12, '0')}.dsse.json`)), chain.envelopes.get(jobs[i]!.seq));
});
