import * as fs from 'node:fs';
import * as path from 'node:path';
import { canonicalize, type CanonicalValue } from '../encode/canonical';
import { EVENT_TYPES } from '../model/record';
import { verifyEnvelope } from '../sign/envelope';
import type { VerifyKey } from '../sign/keys';
import { CHUNK_PREDICATE_TYPE } from '../sign/statement';
import { isObj, type StrictObject } from '../encode/strict-json';
import { MAX_ENVELOPE_BYTES, openStatement, sha256Hex } from '../sign/statement-read';
import { lstatMaybe, readBounded } from '../platform/fsio';
import { chunkName, classify, envelopeName } from '../store/layout';
import { checkFunctionCalls, checkLedgerIdentity, parsePredicate, type SignedPredicate } from '../verify';

/**
 * Discovery and verification of sealed chunks for the index, and the streaming parse of
 * their lines into index rows. Nothing here trusts the directory: no symlinks, bounded
 * envelopes and lines, and a chunk's rows count only once its digest matched the signed one.
 */

/** How deep below the source directory evidence directories are looked for. */
const MAX_DEPTH = 4;
/** At most this many directories are walked (a hostile tree cannot make discovery unbounded). */
const MAX_DIRS = 10_000;

export interface SealedChunk {
  /** the evidence directory, relative to the source root ("" for the root itself) */
  dir: string;
  seq: number;
  /** path relative to the source root, for messages */
  file: string;
  /** inode, size and ctime of the chunk and its envelope: a change means re-verification */
  statKey: string;
}

export interface Discovery {
  chunks: SealedChunk[];
  /** files that look like rtev evidence but are refused (symlinks, not regular) */
  refused: { file: string; reason: string }[];
}

/** discoverChunks lists sealed chunks (a chunk file with its envelope) under root, in dir then seq order. */
export function discoverChunks(root: string): Discovery {
  const out: Discovery = { chunks: [], refused: [] };
  const queue: Array<[string, number]> = [['', 0]];
  let walked = 0;
  while (queue.length > 0 && walked < MAX_DIRS) {
    const [rel, depth] = queue.shift()!;
    walked++;
    let names: string[];
    try {
      names = fs.readdirSync(path.join(root, rel)).sort();
    } catch {
      continue;
    }
    const envelopes = new Set<number>();
    const chunks: number[] = [];
    for (const name of names) {
      const full = path.join(root, rel, name);
      const e = classify(name);
      if (e === undefined) {
        if (depth < MAX_DEPTH && !name.startsWith('.')) {
          const st = lstatMaybe(full);
          if (st?.isDirectory()) queue.push([path.join(rel, name), depth + 1]);
        }
        continue;
      }
      if (e.kind !== 'chunk' && e.kind !== 'envelope') continue;
      (e.kind === 'chunk' ? chunks : { push: (s: number) => envelopes.add(s) }).push(e.seq);
    }
    for (const seq of chunks) {
      if (!envelopes.has(seq)) continue; // renamed but not signed yet: not sealed
      const c = path.join(root, rel, chunkName(seq));
      const v = path.join(root, rel, envelopeName(seq));
      const file = path.join(rel, chunkName(seq));
      const cs = lstatMaybe(c);
      const vs = lstatMaybe(v);
      if (cs === undefined || vs === undefined) continue;
      if (!cs.isFile() || !vs.isFile()) {
        out.refused.push({ file, reason: 'is not a regular file (symlinks are refused)' });
        continue;
      }
      out.chunks.push({ dir: rel, seq, file, statKey: `${statKey(cs)}/${statKey(vs)}` });
    }
  }
  return out;
}

function statKey(st: fs.Stats): string {
  const ns = (st as fs.BigIntStats | fs.Stats).ctimeMs;
  return `${st.ino}:${st.size}:${ns}`;
}

/** What the signed envelope of a chunk says, once its signature and shape verified. */
export interface ChunkFacts {
  chainId: string;
  seq: number;
  chunkSha256: string;
  envelopeSha256: string;
  prevEnvelopeSha256: string | null;
  runId: string;
  runChunkIndex: bigint;
  final: boolean;
  hostname: string;
  machineId: string;
  bootId: string;
  opened: { wall: bigint; mono: bigint };
  sealed: { wall: bigint; mono: bigint };
  minTs: bigint | null;
  maxTs: bigint | null;
  count: bigint;
  lost: bigint;
  complete: boolean;
  probes: string[];
  ledgerJson: string;
  functionCallsJson: string | null;
  restartJson: string | null;
  predicate: SignedPredicate;
  /** the predicate's optional attribution field (container facts, package attribution; h14p), if present */
  attribution: StrictObject | null;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; reason: string };

/** readChunkEnvelope verifies a chunk's envelope: signature, statement, subject, predicate shape and ledger. */
export function readChunkEnvelope(root: string, c: SealedChunk, keys: readonly VerifyKey[]): Checked<ChunkFacts> {
  const eName = envelopeName(c.seq);
  let bytes: Buffer;
  try {
    bytes = readBounded(path.join(root, c.dir, eName), MAX_ENVELOPE_BYTES);
  } catch (err) {
    return { ok: false, reason: `cannot read the envelope: ${(err as Error).message}` };
  }
  const opened = openStatement(bytes);
  if (!opened.ok) return { ok: false, reason: `envelope: ${opened.reason}` };
  const st = opened.value;
  if (verifyEnvelope(st.envelope, st.payload, keys) === undefined) {
    return { ok: false, reason: 'the envelope signature does not verify with the trusted public key(s): forged, edited or signed by another key' };
  }
  if (st.predicateType !== CHUNK_PREDICATE_TYPE) return { ok: false, reason: `predicateType is ${st.predicateType.slice(0, 100)}` };
  if (st.subjectName !== chunkName(c.seq)) return { ok: false, reason: `the envelope is for ${st.subjectName.slice(0, 100)}, not ${chunkName(c.seq)} (moved, swapped or copied)` };
  const parsed = parsePredicate(st.predicate);
  if (!parsed.ok) return { ok: false, reason: `predicate fields missing or malformed: ${parsed.bad.slice(0, 6).join(', ')}` };
  const p = parsed.predicate;
  if (p.chain.seq !== BigInt(c.seq)) return { ok: false, reason: `predicate seq is ${p.chain.seq}, the file name says ${c.seq}` };
  const ledger = checkLedgerIdentity(p);
  if (ledger.length > 0) return { ok: false, reason: ledger[0]! };
  const fc = checkFunctionCalls(p.raw);
  if (fc.problems.length > 0) return { ok: false, reason: fc.problems[0]! };
  const raw = p.raw;
  const has = (k: string): boolean => Object.prototype.hasOwnProperty.call(raw, k);
  const attribution = has('attribution') && isObj(raw['attribution']) ? raw['attribution'] : null;
  return {
    ok: true,
    value: {
      chainId: p.chain.chain_id,
      seq: c.seq,
      chunkSha256: st.subjectSha256,
      envelopeSha256: sha256Hex(bytes),
      prevEnvelopeSha256: p.chain.prev_envelope_sha256,
      runId: p.chain.run_id,
      runChunkIndex: p.chain.run_chunk_index,
      final: p.chain.final,
      hostname: p.host.hostname,
      machineId: p.host.machine_id,
      bootId: p.host.boot_id,
      opened: { wall: p.clock.opened.wall_ns, mono: p.clock.opened.mono_ns },
      sealed: { wall: p.clock.sealed.wall_ns, mono: p.clock.sealed.mono_ns },
      minTs: p.records.min_ts_ns,
      maxTs: p.records.max_ts_ns,
      count: p.records.count,
      lost: p.ledger.lost,
      complete: p.ledger.complete,
      probes: [...p.ledger.probes.keys()].sort(),
      ledgerJson: canonicalize(raw['ledger'] as CanonicalValue),
      functionCallsJson: has('function_calls') ? canonicalize(raw['function_calls'] as CanonicalValue) : null,
      restartJson: isObj(raw['restart']) ? canonicalize(raw['restart'] as CanonicalValue) : null,
      predicate: p,
      attribution,
    },
  };
}

/** One record line, parsed into the columns of the records table. */
export interface ParsedLine {
  tsNs: bigint;
  type: string;
  src: string;
  pid: number;
  tid: number | null;
  comm: string;
  cgroupId: bigint | null;
  containerId: string | null;
  imageDigest: string | null;
  path: string | null;
  access: string | null;
  peerAddr: string | null;
  peerPort: number | null;
  localAddr: string | null;
  localPort: number | null;
  symbol: string | null;
  library: string | null;
  nodeHash: string | null;
  runtime: string | null;
  sslBytes: number | null;
  sslOp: string | null;
  line: string;
}

const TYPES = new Set<string>(EVENT_TYPES);

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const int = (v: unknown): number | null => (typeof v === 'number' && Number.isSafeInteger(v) ? v : null);

/**
 * exactInt takes a u64 field from the line's text: JSON.parse would round it beyond 2^53.
 * In canonical JSON a top-level key `"K":` cannot occur inside a string (its quotes would be
 * escaped), and ts_ns sorts after every other top-level key, cgroup_id before them.
 */
function exactInt(line: string, key: string, last: boolean): bigint | null {
  const needle = `"${key}":`;
  const at = last ? line.lastIndexOf(needle) : line.indexOf(needle);
  if (at < 0) return null;
  let end = at + needle.length;
  while (end < line.length && line.charCodeAt(end) >= 48 && line.charCodeAt(end) <= 57) end++;
  if (end === at + needle.length || end - at - needle.length > 20) return null;
  return BigInt(line.slice(at + needle.length, end));
}

/** parseLine turns one canonical line into index columns, or gives the reason it cannot. */
export function parseLine(line: string): ParsedLine | string {
  let o: any;
  try {
    o = JSON.parse(line);
  } catch {
    return 'not valid JSON';
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return 'not a JSON object';
  const e = o.event;
  if (typeof e !== 'object' || e === null || !TYPES.has(e.type)) return 'lacks a known event.type';
  const tsNs = exactInt(line, 'ts_ns', true);
  const pid = int(o.pid);
  if (tsNs === null || tsNs >= 1n << 64n || pid === null || typeof o.comm !== 'string' || typeof o.src !== 'string') return 'lacks ts_ns, pid, comm or src';
  const cg = o.cgroup_id === undefined ? null : exactInt(line, 'cgroup_id', false);
  const row: ParsedLine = {
    tsNs, type: e.type, src: o.src, pid, tid: int(o.tid), comm: o.comm, cgroupId: cg !== null && cg < 1n << 64n ? cg : null,
    containerId: str(o.container_id), imageDigest: str(o.image_digest),
    path: null, access: null, peerAddr: null, peerPort: null, localAddr: null, localPort: null,
    symbol: null, library: null, nodeHash: null, runtime: null, sslBytes: null, sslOp: null, line,
  };
  switch (e.type) {
    case 'file_open': row.path = str(e.path); row.access = str(e.access); break;
    case 'process_exec': row.path = str(e.filename); break;
    case 'net_connect': row.peerAddr = str(e.addr); row.peerPort = int(e.port); break;
    case 'tcp_state': row.peerAddr = str(e.daddr); row.peerPort = int(e.dport); row.localAddr = str(e.saddr); row.localPort = int(e.sport); break;
    case 'ssl_op': row.sslOp = str(e.operation); row.sslBytes = int(e.bytes); break;
    case 'function_call': row.symbol = str(e.symbol); row.library = str(e.library); row.nodeHash = str(e.node_hash); row.runtime = str(e.runtime); break;
  }
  return row;
}

/** wallClock maps a record's CLOCK_MONOTONIC ts_ns to Unix ns with the nearest of the chunk's two anchors. */
export function wallClock(tsNs: bigint, facts: Pick<ChunkFacts, 'opened' | 'sealed'>): bigint {
  const dOpen = tsNs > facts.opened.mono ? tsNs - facts.opened.mono : facts.opened.mono - tsNs;
  const dSeal = tsNs > facts.sealed.mono ? tsNs - facts.sealed.mono : facts.sealed.mono - tsNs;
  const a = dSeal < dOpen ? facts.sealed : facts.opened;
  return tsNs - a.mono + a.wall;
}
