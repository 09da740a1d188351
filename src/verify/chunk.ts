import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { accountedOf, lostOf } from '../model/ledger';
import { openNoFollow } from '../store/fsio';
import type { SignedPredicate } from './predicate';
import { AttributionSubjects, subjectsOf } from '../packages/evidence';
import { checkLine } from './record-check';

/**
 * Per-chunk checks of `rtev verify`: what a chunk file holds (digest, bytes, record lines)
 * and whether its predicate's record summary and ledger agree with it and with themselves.
 */

/** A line longer than this is refused without being buffered further (hostile input). */
export const MAX_LINE_BYTES = 1 << 20;
const MAX_LINE_PROBLEMS = 5;

export interface ChunkContent {
  sha256: string;
  bytes: number;
  count: number;
  byType: Map<string, number>;
  firstTs: bigint | null;
  lastTs: bigint | null;
  minTs: bigint | null;
  maxTs: bigint | null;
  /** bytes after the last "\n" (a truncated or unterminated last line) */
  tailBytes: number;
  lineProblems: string[];
  /** containers and (scope, path) the records name, for the predicate's `attribution` */
  subjects: AttributionSubjects;
}

/** scanChunk streams a chunk file: digest, and every line checked against the schema. */
export function scanChunk(file: string): ChunkContent {
  const out: ChunkContent = { sha256: '', bytes: 0, count: 0, byType: new Map(), firstTs: null, lastTs: null, minTs: null, maxTs: null, tailBytes: 0, lineProblems: [], subjects: new AttributionSubjects() };
  let badLines = 0;
  const fd = openNoFollow(file);
  try {
    if (!fs.fstatSync(fd).isFile()) throw new Error('not a regular file');
    const hash = crypto.createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 20);
    let carry: Buffer[] = [];
    let carryLen = 0;
    let lineNo = 0;
    let skipping = false;
    const onLine = (line: Buffer): void => {
      lineNo++;
      const r = checkLine(line.toString('utf8'));
      if (!r.ok) {
        if (++badLines <= MAX_LINE_PROBLEMS) out.lineProblems.push(`line ${lineNo}: ${r.reason}`);
        return;
      }
      count(out, r.type, r.tsNs);
      out.subjects.add(subjectsOf(r.value));
    };
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, out.bytes);
      if (n === 0) break;
      const part = buf.subarray(0, n);
      hash.update(part);
      out.bytes += n;
      let start = 0;
      for (let nl = part.indexOf(10); nl >= 0; nl = part.indexOf(10, start)) {
        const piece = part.subarray(start, nl);
        if (skipping) {
          skipping = false;
        } else if (carryLen > 0) {
          onLine(Buffer.concat([...carry, piece]));
        } else {
          onLine(piece);
        }
        carry = [];
        carryLen = 0;
        start = nl + 1;
      }
      const rest = part.subarray(start);
      if (!skipping && rest.length > 0) {
        carry.push(Buffer.from(rest));
        carryLen += rest.length;
        if (carryLen > MAX_LINE_BYTES) {
          lineNo++;
          if (++badLines <= MAX_LINE_PROBLEMS) out.lineProblems.push(`line ${lineNo}: longer than ${MAX_LINE_BYTES} bytes`);
          skipping = true;
          carry = [];
          carryLen = 0;
        }
      }
    }
    out.tailBytes = carryLen;
    out.sha256 = hash.digest('hex');
  } finally {
    fs.closeSync(fd);
  }
  if (badLines > MAX_LINE_PROBLEMS) out.lineProblems.push(`... and ${badLines - MAX_LINE_PROBLEMS} more bad lines`);
  return out;
}

function count(out: ChunkContent, type: string, ts: bigint): void {
  out.count++;
  out.byType.set(type, (out.byType.get(type) ?? 0) + 1);
  if (out.firstTs === null) out.firstTs = out.minTs = out.maxTs = ts;
  if (ts < out.minTs!) out.minTs = ts;
  if (ts > out.maxTs!) out.maxTs = ts;
  out.lastTs = ts;
}

/** checkContentAgainstPredicate compares what the file holds with what the predicate claims. */
export function checkContentAgainstPredicate(c: ChunkContent, p: SignedPredicate): string[] {
  const out: string[] = [];
  const claimed = Number(p.records.count);
  if (c.tailBytes > 0) out.push(`the last line is cut off (${c.tailBytes} bytes after the last newline): truncated?`);
  const lines = c.count + c.lineProblems.filter((l) => l.startsWith('line ')).length;
  if (c.count !== claimed) {
    const delta = claimed - c.count;
    out.push(`holds ${c.count} valid records, the predicate says ${claimed} (${delta > 0 ? `${delta} missing: deleted lines?` : `${-delta} extra: added lines?`})`);
  } else if (lines !== claimed) {
    out.push(`holds ${lines} lines, the predicate says ${claimed}`);
  }
  const bytes = Number(p.records.bytes);
  if (c.bytes !== bytes) out.push(`is ${c.bytes} bytes, the predicate says ${bytes}`);
  const byType = p.records.by_type;
  const types = new Set([...byType.keys(), ...c.byType.keys()]);
  for (const t of [...types].sort()) {
    const want = Number(byType.get(t) ?? 0n);
    const have = c.byType.get(t) ?? 0;
    if (want !== have) out.push(`holds ${have} ${t} records, the predicate says ${want}`);
  }
  const r = p.records;
  for (const [field, have, want] of [['first_ts_ns', c.firstTs, r.first_ts_ns], ['last_ts_ns', c.lastTs, r.last_ts_ns], ['min_ts_ns', c.minTs, r.min_ts_ns], ['max_ts_ns', c.maxTs, r.max_ts_ns]] as const) {
    if (want !== have) out.push(`${field} is ${have ?? 'null'}, the predicate says ${want ?? 'null'}`);
  }
  return out;
}

/** checkLedgerIdentity checks the per-probe ledger arithmetic of one predicate. */
export function checkLedgerIdentity(p: SignedPredicate): string[] {
  const out: string[] = [];
  let lost = 0n;
  let inChunk = 0n;
  for (const [name, w] of p.ledger.probes) {
    const disposed = accountedOf({ written: w.in_chunk, filtered: w.user.filtered, rejected: w.user.rejected, shed: w.user.shed, deduplicated: w.user.deduplicated }, w.in_flight_start, w.in_flight_end);
    if (w.kernel.submitted !== disposed) out.push(`ledger of ${name}: submitted ${w.kernel.submitted} != in_chunk + filtered + deduplicated + rejected + shed + in-flight change (${disposed})`);
    const l = lostOf({ ringFull: w.kernel.ring_full, rejected: w.user.rejected, shed: w.user.shed });
    if (w.lost !== l) out.push(`ledger of ${name}: lost ${w.lost} != ring_full + rejected + shed (${l})`);
    lost += l;
    inChunk += w.in_chunk;
  }
  if (p.ledger.lost !== lost) out.push(`ledger lost ${p.ledger.lost} != sum over probes (${lost})`);
  if (p.ledger.complete !== (lost === 0n)) out.push('ledger.complete disagrees with the lost count');
  if (inChunk !== p.records.count) out.push(`ledger in_chunk total ${inChunk} != records.count ${p.records.count}`);
  return out;
}
