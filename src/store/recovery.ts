import * as fs from 'node:fs';
import * as path from 'node:path';
import { RtevError, errorMessage } from '../errors';
import { verifyEnvelope } from '../sign/envelope';
import type { SigningKey } from '../sign/keys';
import { CHECKPOINT_PREDICATE_TYPE, CHUNK_PREDICATE_TYPE } from '../sign/statement';
import { fsyncDir, lstatMaybe, outputError, readBounded } from './fsio';
import { classify, envelopeName, chunkName, unsealedName, UNRECORDED_SUFFIX, type Entry } from './layout';
import type { RestartRecord, UnsealedFile } from './predicate';
import { isObj } from '../encode/strict-json';
import { MAX_ENVELOPE_BYTES, openStatement, sha256Hex } from '../sign/statement-read';
import { digestFile } from './file-digest';

/**
 * Start-up recovery: find where the chain stands in an evidence directory and turn whatever
 * a killed run left behind into a RestartRecord for the next sealed predicate.
 *
 * - the last chunk with both data and envelope is the chain head; its envelope must parse,
 *   name its chunk and match its digest (and verify, when signed with our key);
 * - *.partial chunks, and chunks whose envelope was never written, are unsealed: they are
 *   renamed unsealed-SEQ-DIGEST.ndjson.unrecorded and listed in the RestartRecord; once the
 *   first chunk of the new run is sealed, the ".unrecorded" suffix is dropped;
 * - *.partial envelopes and checkpoints are removed (they sign nothing that survives);
 * - chunks below a retention checkpoint are leftovers of an interrupted cleanup: removed.
 */

export interface SealedChunk {
  seq: number;
  /** chunk plus envelope bytes */
  bytes: number;
  sealedAtMs: number;
}

export interface ChainState {
  chainId: string | null;
  nextSeq: number;
  prevEnvelopeSha256: string | null;
  restart: RestartRecord | null;
  /** .unrecorded files to finalize once the restart record is sealed */
  unrecorded: string[];
  sealed: SealedChunk[];
}

/** recoverChain scans DIR and prepares it for the next run. */
export function recoverChain(dir: string, key: SigningKey, notice: (m: string) => void): ChainState {
  const entries = listEntries(dir);
  const checkpointFirst = readCheckpointFirstSeq(dir, entries);
  const bySeq = new Map<number, Set<string>>();
  for (const e of entries) {
    if (checkpointFirst !== null && (e.kind === 'chunk' || e.kind === 'envelope') && e.seq < checkpointFirst) {
      fs.unlinkSync(path.join(dir, e.name));
      continue;
    }
    if (!bySeq.has(e.seq)) bySeq.set(e.seq, new Set());
    bySeq.get(e.seq)!.add(e.kind);
  }
  const sealedSeqs = [...bySeq.entries()].filter(([, k]) => k.has('chunk') && k.has('envelope')).map(([s]) => s).sort((a, b) => a - b);
  const head = sealedSeqs.length > 0 ? readHead(dir, sealedSeqs[sealedSeqs.length - 1]!, key, notice) : undefined;
  const lastSeq = head?.seq ?? (checkpointFirst !== null ? checkpointFirst - 1 : 0);

  const unsealed: UnsealedFile[] = [];
  const unrecorded: string[] = [];
  for (const e of entries) {
    const full = path.join(dir, e.name);
    if (lstatMaybe(full) === undefined) continue;
    if (e.kind === 'envelope-partial' || e.kind === 'checkpoint-partial') {
      fs.unlinkSync(full);
    } else if (e.kind === 'envelope' && e.seq > lastSeq) {
      throw new RtevError('OUTPUT', `evidence directory ${dir} has envelope ${e.name} without its chunk, after the chain head`, { hint: `run 'rtev verify ${dir}' and collect into a new directory` });
    } else if (e.kind === 'chunk-partial' || (e.kind === 'chunk' && e.seq > lastSeq) || e.kind === 'unsealed-unrecorded') {
      const d = digestFile(full);
      const target = e.kind === 'unsealed-unrecorded' ? e.name : unsealedName(e.seq, d.sha256) + UNRECORDED_SUFFIX;
      if (target !== e.name) {
        if (lstatMaybe(path.join(dir, target)) === undefined) fs.renameSync(full, path.join(dir, target));
        else fs.unlinkSync(full);
      }
      if (!unrecorded.includes(target)) {
        unrecorded.push(target);
        unsealed.push({ name: target.slice(0, -UNRECORDED_SUFFIX.length), bytes: d.bytes, lines: d.lines, sha256: d.sha256 });
      }
    }
  }
  fsyncDir(dir);
  unsealed.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const restart: RestartRecord | null = head === undefined && unsealed.length === 0 ? null : {
    previous_run_id: head?.runId ?? null,
    previous_seq: head?.seq ?? null,
    previous_run_closed: (head?.final ?? false) && unsealed.length === 0,
    unsealed,
  };
  const sealed = sealedSeqs.filter((s) => s <= lastSeq).map((seq) => sealedInfo(dir, seq));
  return { chainId: head?.chainId ?? null, nextSeq: lastSeq + 1, prevEnvelopeSha256: head?.envelopeSha256 ?? null, restart, unrecorded: unrecorded.sort(), sealed };
}

interface Head {
  seq: number;
  chainId: string;
  runId: string;
  final: boolean;
  envelopeSha256: string;
}

function readHead(dir: string, seq: number, key: SigningKey, notice: (m: string) => void): Head {
  const refuse = (reason: string): never => {
    throw new RtevError('OUTPUT', `the last sealed chunk ${chunkName(seq)} in ${dir} fails verification: ${reason}; refusing to extend a broken chain`, { hint: `run 'rtev verify ${dir}' and collect into a new directory` });
  };
  let bytes: Buffer;
  try {
    bytes = readBounded(path.join(dir, envelopeName(seq)), MAX_ENVELOPE_BYTES);
  } catch (err) {
    return refuse(errorMessage(err));
  }
  const opened = openStatement(bytes);
  if (!opened.ok) return refuse(opened.reason);
  const st = opened.value;
  if (st.predicateType !== CHUNK_PREDICATE_TYPE) return refuse(`predicateType is ${st.predicateType}`);
  if (st.subjectName !== chunkName(seq)) return refuse(`envelope names ${st.subjectName}`);
  if (digestFile(path.join(dir, chunkName(seq))).sha256 !== st.subjectSha256) return refuse('chunk digest does not match its envelope');
  if (st.envelope.signatures.some((s) => s.keyid === key.keyid)) {
    if (verifyEnvelope(st.envelope, st.payload, [key]) === undefined) return refuse('signature does not verify');
  } else {
    notice(`the chain in ${dir} was signed by another key (${st.envelope.signatures[0]?.keyid.slice(0, 16) ?? '?'}...); continuing it with key ${key.keyid.slice(0, 16)}...`);
  }
  const chain = st.predicate['chain'];
  if (!isObj(chain) || typeof chain['chain_id'] !== 'string' || typeof chain['run_id'] !== 'string' || chain['seq'] !== BigInt(seq)) {
    return refuse('predicate chain fields are malformed');
  }
  return { seq, chainId: chain['chain_id'], runId: chain['run_id'], final: chain['final'] === true, envelopeSha256: sha256Hex(bytes) };
}

function readCheckpointFirstSeq(dir: string, entries: Entry[]): number | null {
  if (!entries.some((e) => e.kind === 'checkpoint')) return null;
  const opened = openStatement(readBounded(path.join(dir, 'checkpoint.dsse.json'), MAX_ENVELOPE_BYTES));
  if (!opened.ok || opened.value.predicateType !== CHECKPOINT_PREDICATE_TYPE) {
    throw new RtevError('OUTPUT', `checkpoint.dsse.json in ${dir} is malformed`, { hint: `run 'rtev verify ${dir}'` });
  }
  const first = opened.value.predicate['first_seq'];
  return typeof first === 'bigint' ? Number(first) : null;
}

function sealedInfo(dir: string, seq: number): SealedChunk {
  const a = fs.lstatSync(path.join(dir, chunkName(seq)));
  const b = fs.lstatSync(path.join(dir, envelopeName(seq)));
  return { seq, bytes: a.size + b.size, sealedAtMs: b.mtimeMs };
}

/** listEntries lists the rtev files in DIR, refusing symlinks and non-regular files. */
export function listEntries(dir: string): Entry[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    throw outputError(err, `cannot read evidence directory ${dir}`);
  }
  const out: Entry[] = [];
  for (const name of names.sort()) {
    const entry = classify(name);
    if (entry === undefined) continue;
    const st = fs.lstatSync(path.join(dir, name));
    if (!st.isFile()) throw new RtevError('OUTPUT', `${path.join(dir, name)} is not a regular file (a planted symlink?); refusing to use ${dir}`);
    out.push(entry);
  }
  return out;
}
