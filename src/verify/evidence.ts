import * as fs from 'node:fs';
import * as path from 'node:path';
import { verifyEnvelope } from '../sign/envelope';
import type { VerifyKey } from '../sign/keys';
import { CHECKPOINT_PREDICATE_TYPE, CHUNK_PREDICATE_TYPE } from '../sign/statement';
import { isObj, type StrictObject } from '../encode/strict-json';
import { MAX_ENVELOPE_BYTES, openStatement, sha256Hex, type OpenedStatement } from '../sign/statement-read';
import { digestFile } from '../store/file-digest';
import { lstatMaybe, readBounded } from '../store/fsio';
import { CHECKPOINT_NAME, chunkName, classify, envelopeName, type Entry } from '../store/layout';
import { checkAttribution } from '../packages/evidence';
import { checkContentAgainstPredicate, checkLedgerIdentity, scanChunk } from './chunk';
import { checkFunctionCalls, checkTlsCoverage, parsePredicate, probeField, PROBE_FIELDS, type FunctionCallEntry, type SignedPredicate, type TlsCoverageEntry } from './predicate';
import { errorMessage } from '../errors';

/**
 * verifyEvidence checks an evidence directory as hostile input (docs/format.md
 * "Verification"): every envelope signature, every chunk digest and record, sequence and
 * previous-envelope continuity, run boundaries, and the drop ledger. It never throws for
 * bad content; every finding names the file it is about.
 */

export type Status = 'valid' | 'incomplete' | 'invalid';

export interface Finding {
  file: string;
  reason: string;
}

export interface VerifyReport {
  dir: string;
  status: Status;
  /** tampering or invalid content: exit 11 */
  problems: Finding[];
  /** authentic but incomplete (recorded gaps, unsealed tail, drops): exit 10 */
  gaps: Finding[];
  /** informational */
  notes: Finding[];
  chainId: string | null;
  firstSeq: number | null;
  lastSeq: number | null;
  chunks: number;
  runs: number;
  records: bigint;
  byType: Record<string, bigint>;
  minTs: bigint | null;
  maxTs: bigint | null;
  keyids: string[];
  /** per probe, per ledger field, summed over all verified chunks */
  ledger: Record<string, Record<string, bigint>>;
  lost: bigint;
  hosts: string[];
  /**
   * exact calls per probed function summed over all verified chunks (predicate
   * function_calls, docs/function-calls.md); empty when no chunk probes functions
   */
  functionCalls: FunctionCallEntry[];
  /**
   * ssl_op coverage summed over the verified chunks that have `tls_coverage`: (process, library)
   * pairs where TLS is not observable, and the first ones listed; null when no chunk has the field
   */
  tlsNotObservable: { pairs: bigint; examples: string[] } | null;
  /**
   * classes of events some chunks' probes did not observe at all (ledger `not_observed`): per
   * (probe, class, sources, reason), the chunks that say so; empty when every class was observed
   */
  notObserved: { probe: string; class: string; sources: string[]; reason: string; chunks: number; first: string; last: string }[];
}

interface ChunkInfo {
  seq: number;
  envelopeSha256: string;
  predicate: SignedPredicate;
}

/**
 * evidenceDirProblem says why `dir` is not an evidence directory at all (missing, not a
 * directory, unreadable, or holding no rtev file), or undefined when it is one to verify.
 */
export function evidenceDirProblem(dir: string): string | undefined {
  let names: string[];
  try {
    if (!fs.statSync(dir).isDirectory()) return `${dir} is not a directory`;
    names = fs.readdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `${dir} does not exist` : `cannot read ${dir}: ${errorMessage(err)}`;
  }
  if (!names.some((n) => classify(n) !== undefined)) return `${dir} holds no rtev evidence (no chunk-*.ndjson or chunk-*.dsse.json)`;
  return undefined;
}

/** verifyEvidence runs every check and returns the report. */
export function verifyEvidence(dir: string, keys: readonly VerifyKey[]): VerifyReport {
  const r: VerifyReport = {
    dir, status: 'valid', problems: [], gaps: [], notes: [], chainId: null, firstSeq: null, lastSeq: null, chunks: 0, runs: 0,
    records: 0n, byType: {}, minTs: null, maxTs: null, keyids: [], ledger: {}, lost: 0n, hosts: [], functionCalls: [],
    tlsNotObservable: null, notObserved: [],
  };
  const entries = listForVerify(dir, r);
  if (entries === undefined) return finish(r);
  const checkpoint = entries.some((e) => e.kind === 'checkpoint') ? readCheckpoint(dir, keys, r) : undefined;
  const envSeqs = entries.filter((e) => e.kind === 'envelope').map((e) => e.seq);
  const chunkSeqs = new Set(entries.filter((e) => e.kind === 'chunk').map((e) => e.seq));
  const startSeq = checkpoint?.firstSeq ?? 1;
  for (const e of entries) {
    if ((e.kind === 'chunk' || e.kind === 'envelope') && e.seq < startSeq) {
      r.notes.push({ file: e.name, reason: `before the retention checkpoint (chain starts at seq ${startSeq}); ignored` });
    }
  }
  const live = envSeqs.filter((s) => s >= startSeq);
  if (live.length === 0) {
    const leftovers = entries.filter((e) => e.kind === 'chunk-partial' || e.kind === 'chunk' || e.kind === 'unsealed-unrecorded');
    if (leftovers.length === 0) r.problems.push({ file: dir, reason: 'no sealed chunk envelopes found' });
    for (const e of leftovers) checkLeftover(dir, e, startSeq - 1, r);
    if (leftovers.length > 0) r.gaps.push({ file: dir, reason: 'no chunk has been sealed yet' });
    return finish(r);
  }
  const lastSeq = Math.max(...live);
  r.firstSeq = startSeq;
  r.lastSeq = lastSeq;
  let prev: ChunkInfo | undefined;
  for (let seq = startSeq; seq <= lastSeq; seq++) {
    const info = verifyOne(dir, seq, envSeqs.includes(seq), chunkSeqs.has(seq), keys, r);
    if (info !== undefined) {
      checkLink(seq === startSeq ? undefined : prev, info, seq === startSeq ? checkpoint : undefined, r);
      if (seq > startSeq && prev === undefined) checkLinkToInvalid(dir, seq, info, r);
      accumulate(info.predicate, r);
    }
    prev = info;
  }
  if (prev !== undefined && !prev.predicate.chain.final) {
    r.gaps.push({ file: envelopeName(lastSeq), reason: 'the chain ends without a final chunk: the collector is still running or was killed, and its unsealed tail is not accounted for yet' });
  }
  for (const e of entries) checkLeftover(dir, e, lastSeq, r);
  return finish(r);
}

function listForVerify(dir: string, r: VerifyReport): Entry[] | undefined {
  let names: string[];
  try {
    if (!fs.statSync(dir).isDirectory()) throw new Error('not a directory');
    names = fs.readdirSync(dir).sort();
  } catch (err) {
    r.problems.push({ file: dir, reason: `cannot read the evidence directory: ${errorMessage(err)}` });
    return undefined;
  }
  const out: Entry[] = [];
  for (const name of names) {
    const e = classify(name);
    if (e === undefined) {
      r.notes.push({ file: name, reason: 'not an rtev file; ignored' });
      continue;
    }
    const st = lstatMaybe(path.join(dir, name));
    if (st === undefined || !st.isFile()) {
      r.problems.push({ file: name, reason: 'is not a regular file (symlinks are refused)' });
      continue;
    }
    out.push(e);
  }
  return out;
}

function readEnvelope(dir: string, name: string, keys: readonly VerifyKey[], r: VerifyReport): { st: OpenedStatement; sha256: string } | undefined {
  let bytes: Buffer;
  try {
    bytes = readBounded(path.join(dir, name), MAX_ENVELOPE_BYTES);
  } catch (err) {
    r.problems.push({ file: name, reason: `cannot read the envelope: ${errorMessage(err)}` });
    return undefined;
  }
  const opened = openStatement(bytes);
  if (!opened.ok) {
    r.problems.push({ file: name, reason: opened.reason });
    return undefined;
  }
  const keyid = verifyEnvelope(opened.value.envelope, opened.value.payload, keys);
  if (keyid === undefined) {
    const claimed = opened.value.envelope.signatures.map((s) => s.keyid.slice(0, 16) || '?').join(', ');
    r.problems.push({ file: name, reason: `signature does not verify with the trusted public key(s) (envelope keyid ${claimed}...): forged, edited or signed by another key` });
    return undefined;
  }
  if (!r.keyids.includes(keyid)) r.keyids.push(keyid);
  return { st: opened.value, sha256: sha256Hex(bytes) };
}

function verifyOne(dir: string, seq: number, hasEnv: boolean, hasChunk: boolean, keys: readonly VerifyKey[], r: VerifyReport): ChunkInfo | undefined {
  const cName = chunkName(seq);
  const eName = envelopeName(seq);
  if (!hasEnv) {
    r.problems.push({ file: hasChunk ? cName : eName, reason: hasChunk ? 'has no envelope inside the chain' : `seq ${seq} is missing from the chain (deleted?)` });
    return undefined;
  }
  const env = readEnvelope(dir, eName, keys, r);
  if (env === undefined) return undefined;
  const { st } = env;
  r.chunks++;
  if (st.predicateType !== CHUNK_PREDICATE_TYPE) {
    r.problems.push({ file: eName, reason: `predicateType is ${st.predicateType}, expected ${CHUNK_PREDICATE_TYPE}` });
    return undefined;
  }
  if (st.subjectName !== cName) {
    r.problems.push({ file: eName, reason: `the envelope is for ${st.subjectName}, not ${cName} (moved, swapped or copied from another chunk)` });
    return undefined;
  }
  const parsed = parsePredicate(st.predicate);
  if (!parsed.ok) {
    r.problems.push({ file: eName, reason: `predicate fields missing or malformed: ${parsed.bad.slice(0, 6).join(', ')}` });
    return undefined;
  }
  const predicate = parsed.predicate;
  if (predicate.chain.seq !== BigInt(seq)) {
    r.problems.push({ file: eName, reason: `predicate seq is ${predicate.chain.seq}, the file name says ${seq}` });
  }
  for (const m of checkLedgerIdentity(predicate)) r.problems.push({ file: eName, reason: m });
  const fc = checkFunctionCalls(predicate.raw);
  for (const m of fc.problems) r.problems.push({ file: eName, reason: m });
  addFunctionCalls(fc.entries, r);
  const tls = checkTlsCoverage(predicate.raw);
  for (const m of tls.problems) r.problems.push({ file: eName, reason: m });
  if (tls.entry !== undefined) addTlsCoverage(tls.entry, predicate.chain.run_id, eName, r);
  if (!hasChunk) {
    r.problems.push({ file: cName, reason: 'chunk file is missing (deleted?) but its envelope exists' });
    return { seq, envelopeSha256: env.sha256, predicate };
  }
  let content;
  try {
    content = scanChunk(path.join(dir, cName));
  } catch (err) {
    r.problems.push({ file: cName, reason: `cannot read the chunk: ${errorMessage(err)}` });
    return { seq, envelopeSha256: env.sha256, predicate };
  }
  if (content.sha256 !== st.subjectSha256) {
    const details = checkContentAgainstPredicate(content, predicate);
    r.problems.push({ file: cName, reason: `sha256 ${content.sha256.slice(0, 16)}... does not match the signed digest ${st.subjectSha256.slice(0, 16)}...: the chunk was modified${details.length > 0 ? ` (${details.join('; ')})` : ''}` });
  } else {
    for (const m of checkContentAgainstPredicate(content, predicate)) r.problems.push({ file: cName, reason: m });
    // container facts and package attributions must cover exactly what the records name
    if (Object.prototype.hasOwnProperty.call(predicate.raw, 'attribution')) {
      for (const m of checkAttribution(predicate.raw['attribution'], content.subjects).slice(0, 8)) r.problems.push({ file: eName, reason: m });
    }
  }
  for (const m of content.lineProblems) r.problems.push({ file: cName, reason: m });
  return { seq, envelopeSha256: env.sha256, predicate };
}

interface Checkpoint {
  firstSeq: number;
  chainId: string;
}

function readCheckpoint(dir: string, keys: readonly VerifyKey[], r: VerifyReport): Checkpoint | undefined {
  const env = readEnvelope(dir, CHECKPOINT_NAME, keys, r);
  if (env === undefined) return undefined;
  const p = env.st.predicate;
  const first = p['first_seq'];
  const chainId = p['chain_id'];
  if (env.st.predicateType !== CHECKPOINT_PREDICATE_TYPE || typeof first !== 'bigint' || typeof chainId !== 'string' || first < 1n || first > 1_000_000_000_000n) {
    r.problems.push({ file: CHECKPOINT_NAME, reason: 'is not a valid retention checkpoint' });
    return undefined;
  }
  const firstSeq = Number(first);
  if (env.st.subjectName !== envelopeName(firstSeq)) {
    r.problems.push({ file: CHECKPOINT_NAME, reason: `names ${env.st.subjectName}, expected ${envelopeName(firstSeq)}` });
  } else {
    try {
      if (digestFile(path.join(dir, env.st.subjectName)).sha256 !== env.st.subjectSha256) {
        r.problems.push({ file: envelopeName(firstSeq), reason: 'does not match the digest the retention checkpoint signed' });
      }
    } catch {
      r.problems.push({ file: envelopeName(firstSeq), reason: 'the first chunk named by the retention checkpoint is missing' });
    }
  }
  r.notes.push({ file: CHECKPOINT_NAME, reason: `retention removed chunks before seq ${firstSeq}; the chain is verified from there` });
  return { firstSeq, chainId };
}

function checkLink(prev: ChunkInfo | undefined, cur: ChunkInfo, checkpoint: Checkpoint | undefined, r: VerifyReport): void {
  const c = cur.predicate.chain;
  const name = envelopeName(cur.seq);
  const chainId = c.chain_id;
  if (r.chainId === null) r.chainId = checkpoint?.chainId ?? chainId;
  if (chainId !== r.chainId) r.problems.push({ file: name, reason: `belongs to chain ${chainId}, not ${r.chainId}` });
  const link = c.prev_envelope_sha256;
  if (cur.seq === 1 && link !== null) r.problems.push({ file: name, reason: 'the first chunk of a chain must have prev_envelope_sha256 null' });
  if (prev !== undefined && link !== prev.envelopeSha256) {
    r.problems.push({ file: name, reason: `prev_envelope_sha256 does not match ${envelopeName(prev.seq)}: chunks were swapped, replaced or removed` });
  }
  const runId = c.run_id;
  const index = c.run_chunk_index;
  const restart = cur.predicate.restart;
  const p = prev?.predicate.chain;
  const newRun = p === undefined || p.run_id !== runId;
  if (newRun) r.runs++;
  if (p !== undefined && !newRun) {
    if (index !== p.run_chunk_index + 1n) r.problems.push({ file: name, reason: `run_chunk_index ${index} does not follow ${p.run_chunk_index}` });
    if (p.final) r.problems.push({ file: name, reason: 'follows a final chunk of the same run' });
  }
  if (prev !== undefined && p !== undefined && newRun) {
    if (index !== 0n) r.problems.push({ file: name, reason: `a new run starts with run_chunk_index ${index}, not 0 (chunks of a run missing?)` });
    if (restart === null) {
      r.problems.push({ file: name, reason: 'a new run starts without a restart record' });
    } else {
      if (restart['previous_run_id'] !== p.run_id || restart['previous_seq'] !== BigInt(prev.seq)) {
        r.problems.push({ file: name, reason: 'the restart record does not name the previous chunk and run' });
      }
      if (restart['previous_run_closed'] === true && !p.final) {
        r.problems.push({ file: name, reason: 'the restart record claims a clean stop but the previous chunk is not final' });
      }
    }
  }
  if (restart !== null) describeRestart(name, restart, r);
}

/** checkLinkToInvalid still compares the link when the previous envelope failed its checks. */
function checkLinkToInvalid(dir: string, seq: number, cur: ChunkInfo, r: VerifyReport): void {
  let digest: string;
  try {
    digest = sha256Hex(readBounded(path.join(dir, envelopeName(seq - 1)), MAX_ENVELOPE_BYTES));
  } catch {
    return;
  }
  if (cur.predicate.chain.prev_envelope_sha256 !== digest) {
    r.problems.push({ file: envelopeName(seq), reason: `prev_envelope_sha256 does not match ${envelopeName(seq - 1)}: chunks were swapped, replaced or removed` });
  }
}

function describeRestart(name: string, restart: StrictObject, r: VerifyReport): void {
  const unsealed = Array.isArray(restart['unsealed']) ? restart['unsealed'] : [];
  if (restart['previous_run_closed'] === true && unsealed.length === 0) {
    r.notes.push({ file: name, reason: `a new run begins after a clean stop of run ${String(restart['previous_run_id'])}` });
    return;
  }
  const parts = unsealed.map((u) => isObj(u) ? `${String(u['name'])} (${String(u['bytes'])} bytes, ${String(u['lines'])} lines)` : '?');
  const previous = restart['previous_run_id'] === null || restart['previous_seq'] === null
    ? 'an earlier run that sealed no chunk' : `run ${String(restart['previous_run_id'])} (after seq ${String(restart['previous_seq'])})`;
  r.gaps.push({ file: name, reason: `recorded gap: the collector restarted after an unclean stop of ${previous}; records between that chunk's seal and the stop are not in the chain${parts.length > 0 ? `; unsealed data kept: ${parts.join(', ')}` : ''}` });
}

function accumulate(p: SignedPredicate, r: VerifyReport): void {
  r.records += p.records.count;
  for (const [t, n] of p.records.by_type) r.byType[t] = (r.byType[t] ?? 0n) + n;
  const min = p.records.min_ts_ns;
  const max = p.records.max_ts_ns;
  if (min !== null && (r.minTs === null || min < r.minTs)) r.minTs = min;
  if (max !== null && (r.maxTs === null || max > r.maxTs)) r.maxTs = max;
  const host = `${p.host.hostname} boot ${p.host.boot_id}`;
  if (!r.hosts.includes(host)) r.hosts.push(host);
  for (const [name, w] of p.ledger.probes) {
    const acc = (r.ledger[name] ??= {});
    for (const f of PROBE_FIELDS) {
      if (f === 'in_flight_start' || f === 'in_flight_end') continue;
      acc[f] = (acc[f] ?? 0n) + probeField(w, f);
    }
    acc['in_flight_end'] = w.in_flight_end;
  }
  for (const [name, w] of p.ledger.probes) {
    for (const n of w.not_observed ?? []) {
      const file = chunkName(Number(p.chain.seq));
      const e = r.notObserved.find((x) => x.probe === name && x.class === n.class && x.reason === n.reason && x.sources.join() === n.sources.join());
      if (e === undefined) r.notObserved.push({ probe: name, class: n.class, sources: [...n.sources], reason: n.reason, chunks: 1, first: file, last: file });
      else {
        e.chunks++;
        e.last = file;
      }
    }
  }
  const lost = p.ledger.lost;
  r.lost += lost;
  if (lost > 0n) r.gaps.push({ file: chunkName(Number(p.chain.seq)), reason: `recorded drops: ${lost} records lost in this chunk's window (see the ledger)` });
}

/** addFunctionCalls sums a chunk's function_calls into the report, per (function, symbol, node_hash). */
const functionIndex = new WeakMap<VerifyReport, Map<string, FunctionCallEntry>>();

const tlsTotals = new WeakMap<VerifyReport, Map<string, bigint>>();

/** addTlsCoverage sums a chunk's tls_coverage; within a run, uncovered_total must grow by exactly uncovered. */
function addTlsCoverage(e: TlsCoverageEntry, runId: string, file: string, r: VerifyReport): void {
  let runs = tlsTotals.get(r);
  if (runs === undefined) tlsTotals.set(r, (runs = new Map()));
  const prev = runs.get(runId);
  if (prev !== undefined && prev + e.uncovered !== e.uncoveredTotal) {
    r.problems.push({ file, reason: `tls_coverage: uncovered_total ${e.uncoveredTotal} != the run's previous ${prev} + uncovered ${e.uncovered}` });
  }
  runs.set(runId, e.uncoveredTotal);
  r.tlsNotObservable ??= { pairs: 0n, examples: [] };
  r.tlsNotObservable.pairs += e.uncovered;
  for (const p of e.processes) {
    if (r.tlsNotObservable.examples.length < 10) r.tlsNotObservable.examples.push(`pid ${p.pid} ${p.comm} ${p.library} (${p.kind})`);
  }
}

function addFunctionCalls(entries: readonly FunctionCallEntry[], r: VerifyReport): void {
  let index = functionIndex.get(r);
  if (index === undefined) functionIndex.set(r, (index = new Map()));
  for (const e of entries) {
    const key = `${e.function}\u0000${e.symbol}\u0000${e.node_hash ?? ''}`;
    const acc = index.get(key);
    if (acc === undefined) {
      const added = { ...e };
      index.set(key, added);
      r.functionCalls.push(added);
    } else {
      acc.calls += e.calls;
      acc.emitted += e.emitted;
      acc.suppressed += e.suppressed;
    }
  }
}

function checkLeftover(dir: string, e: Entry, lastSeq: number, r: VerifyReport): void {
  if (e.kind === 'chunk-partial' || e.kind === 'unsealed-unrecorded' || (e.kind === 'chunk' && e.seq > lastSeq)) {
    let size = '?';
    try {
      size = String(fs.lstatSync(path.join(dir, e.name)).size);
    } catch {
      // listed a moment ago; report it anyway
    }
    r.gaps.push({ file: e.name, reason: `unsealed tail (${size} bytes): not signed yet; the next run records it as a gap` });
  } else if (e.kind === 'envelope-partial' || e.kind === 'checkpoint-partial') {
    r.notes.push({ file: e.name, reason: 'interrupted write; removed by the next run' });
  } else if (e.kind === 'lock') {
    r.notes.push({ file: e.name, reason: 'a collector holds (or held, if killed) this directory' });
  }
}

function finish(r: VerifyReport): VerifyReport {
  // a class not observed is not "nothing lost": its events were never seen, so never counted
  for (const n of r.notObserved) {
    const where = n.chunks === 1 ? n.first : `${n.first} .. ${n.last} (${n.chunks} chunks)`;
    r.gaps.push({ file: where, reason: `not observed: ${n.probe} events of class ${n.class} (${n.sources.join(', ')}) were not recorded and cannot be counted: ${n.reason}` });
  }
  r.functionCalls.sort((a, b) => (a.function < b.function ? -1 : a.function > b.function ? 1 : a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0));
  r.status = r.problems.length > 0 ? 'invalid' : r.gaps.length > 0 ? 'incomplete' : 'valid';
  return r;
}
