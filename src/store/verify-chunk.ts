import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { openNoFollow } from './fsio';
import { checkLine } from './record-check';
import { isObj, type StrictObject } from './statement-read';
import type { StrictValue } from './strict-json';

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
}

/** scanChunk streams a chunk file: digest, and every line checked against the schema. */
export function scanChunk(file: string): ChunkContent {
  const out: ChunkContent = { sha256: '', bytes: 0, count: 0, byType: new Map(), firstTs: null, lastTs: null, minTs: null, maxTs: null, tailBytes: 0, lineProblems: [] };
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

/** get walks a dotted path in a parsed predicate. */
export function get(obj: StrictValue | undefined, dotted: string): StrictValue | undefined {
  let cur: StrictValue | undefined = obj;
  for (const key of dotted.split('.')) {
    if (!isObj(cur)) return undefined;
    cur = Object.prototype.hasOwnProperty.call(cur, key) ? cur[key] : undefined;
  }
  return cur;
}

type Kind = 'int' | 'str' | 'bool' | 'obj' | 'int?' | 'str?' | 'obj?';

const PREDICATE_SHAPE: Array<[string, Kind]> = [
  ['chain', 'obj'], ['chain.chain_id', 'str'], ['chain.seq', 'int'], ['chain.prev_envelope_sha256', 'str?'],
  ['chain.run_id', 'str'], ['chain.run_chunk_index', 'int'], ['chain.final', 'bool'], ['chain.seal_reason', 'str'],
  ['records', 'obj'], ['records.count', 'int'], ['records.bytes', 'int'], ['records.by_type', 'obj'],
  ['records.first_ts_ns', 'int?'], ['records.last_ts_ns', 'int?'], ['records.min_ts_ns', 'int?'], ['records.max_ts_ns', 'int?'],
  ['records.schema', 'str'],
  ['ledger', 'obj'], ['ledger.complete', 'bool'], ['ledger.lost', 'int'], ['ledger.probes', 'obj'],
  ['restart', 'obj?'], ['host', 'obj'], ['host.boot_id', 'str'], ['host.hostname', 'str'], ['host.machine_id', 'str'],
  ['host.kernel_release', 'str'], ['clock', 'obj'], ['clock.opened.wall_ns', 'int'], ['clock.opened.mono_ns', 'int'],
  ['clock.sealed.wall_ns', 'int'], ['clock.sealed.mono_ns', 'int'], ['producer', 'obj'], ['producer.collector_version', 'str'],
  ['producer.bpf_object_sha256', 'str'], ['producer.btf.path', 'str'], ['producer.btf.sha256', 'str'], ['producer.config_sha256', 'str'],
];

const PROBE_FIELDS = [
  'kernel.submitted', 'kernel.filtered', 'kernel.ring_full', 'kernel.skipped', 'kernel.truncated',
  'user.received', 'user.written', 'user.filtered', 'user.rejected', 'user.shed',
  'in_chunk', 'in_flight_start', 'in_flight_end', 'lost',
] as const;

export type ProbeField = (typeof PROBE_FIELDS)[number];
export { PROBE_FIELDS };

/** checkPredicateShape lists fields that are missing or of the wrong type. */
export function checkPredicateShape(p: StrictObject): string[] {
  const bad: string[] = [];
  for (const [field, kind] of PREDICATE_SHAPE) {
    const v = get(p, field);
    const optional = kind.endsWith('?');
    if (optional && v === null) continue;
    const base = kind.replace('?', '');
    const ok = base === 'int' ? typeof v === 'bigint' : base === 'str' ? typeof v === 'string' : base === 'bool' ? typeof v === 'boolean' : isObj(v);
    if (!ok) bad.push(field);
  }
  const probes = get(p, 'ledger.probes');
  if (isObj(probes)) {
    for (const [name, w] of Object.entries(probes)) {
      for (const f of PROBE_FIELDS) if (typeof get(w, f) !== 'bigint') bad.push(`ledger.probes.${name}.${f}`);
    }
  }
  return bad;
}

/** checkContentAgainstPredicate compares what the file holds with what the predicate claims. */
export function checkContentAgainstPredicate(c: ChunkContent, p: StrictObject): string[] {
  const out: string[] = [];
  const claimed = Number(get(p, 'records.count') as bigint);
  if (c.tailBytes > 0) out.push(`the last line is cut off (${c.tailBytes} bytes after the last newline): truncated?`);
  const lines = c.count + c.lineProblems.filter((l) => l.startsWith('line ')).length;
  if (c.count !== claimed) {
    const delta = claimed - c.count;
    out.push(`holds ${c.count} valid records, the predicate says ${claimed} (${delta > 0 ? `${delta} missing: deleted lines?` : `${-delta} extra: added lines?`})`);
  } else if (lines !== claimed) {
    out.push(`holds ${lines} lines, the predicate says ${claimed}`);
  }
  const bytes = Number(get(p, 'records.bytes') as bigint);
  if (c.bytes !== bytes) out.push(`is ${c.bytes} bytes, the predicate says ${bytes}`);
  const byType = get(p, 'records.by_type');
  if (isObj(byType)) {
    const types = new Set([...Object.keys(byType), ...c.byType.keys()]);
    for (const t of [...types].sort()) {
      const want = typeof byType[t] === 'bigint' ? Number(byType[t]) : 0;
      const have = c.byType.get(t) ?? 0;
      if (want !== have) out.push(`holds ${have} ${t} records, the predicate says ${want}`);
    }
  }
  for (const [field, have] of [['first_ts_ns', c.firstTs], ['last_ts_ns', c.lastTs], ['min_ts_ns', c.minTs], ['max_ts_ns', c.maxTs]] as const) {
    const want = get(p, `records.${field}`);
    if (want !== have) out.push(`${field} is ${have ?? 'null'}, the predicate says ${want ?? 'null'}`);
  }
  return out;
}

/** checkLedgerIdentity checks the per-probe ledger arithmetic of one predicate. */
export function checkLedgerIdentity(p: StrictObject): string[] {
  const out: string[] = [];
  const probes = get(p, 'ledger.probes');
  if (!isObj(probes)) return out;
  let lost = 0n;
  let inChunk = 0n;
  for (const [name, w] of Object.entries(probes)) {
    const n = (f: ProbeField): bigint => get(w, f) as bigint;
    const disposed = n('in_chunk') + n('user.filtered') + n('user.rejected') + n('user.shed') + n('in_flight_end') - n('in_flight_start');
    if (n('kernel.submitted') !== disposed) out.push(`ledger of ${name}: submitted ${n('kernel.submitted')} != in_chunk + filtered + rejected + shed + in-flight change (${disposed})`);
    const l = n('kernel.ring_full') + n('user.rejected') + n('user.shed');
    if (n('lost') !== l) out.push(`ledger of ${name}: lost ${n('lost')} != ring_full + rejected + shed (${l})`);
    lost += l;
    inChunk += n('in_chunk');
  }
  if (get(p, 'ledger.lost') !== lost) out.push(`ledger lost ${String(get(p, 'ledger.lost'))} != sum over probes (${lost})`);
  if (get(p, 'ledger.complete') !== (lost === 0n)) out.push('ledger.complete disagrees with the lost count');
  if (inChunk !== get(p, 'records.count')) out.push(`ledger in_chunk total ${inChunk} != records.count ${String(get(p, 'records.count'))}`);
  return out;
}

const FUNCTION_CALL_FIELDS = ['calls', 'emitted', 'function', 'node_hash', 'suppressed', 'symbol'];

/** One well-formed entry of a predicate's function_calls. */
export interface FunctionCallEntry {
  function: string;
  symbol: string;
  node_hash: string | null;
  calls: bigint;
  emitted: bigint;
  suppressed: bigint;
}

/**
 * checkFunctionCalls checks the optional `function_calls` field: absent, or an array of
 * entries with exactly the fields {function, symbol, node_hash, calls, emitted, suppressed},
 * non-negative integer counts with emitted + suppressed = calls, no entry twice. Returns the
 * entries (empty when absent) or the problems found.
 */
export function checkFunctionCalls(p: StrictObject): { entries: FunctionCallEntry[]; problems: string[] } {
  if (!Object.prototype.hasOwnProperty.call(p, 'function_calls')) return { entries: [], problems: [] };
  const list = p['function_calls'];
  if (!Array.isArray(list)) return { entries: [], problems: ['function_calls is not an array'] };
  const problems: string[] = [];
  const entries: FunctionCallEntry[] = [];
  const seen = new Set<string>();
  list.forEach((e, i) => {
    const at = `function_calls[${i}]`;
    if (!isObj(e)) {
      problems.push(`${at} is not an object`);
      return;
    }
    const keys = Object.keys(e).sort();
    if (keys.join(',') !== FUNCTION_CALL_FIELDS.join(',')) {
      problems.push(`${at} must have exactly the fields ${FUNCTION_CALL_FIELDS.join(', ')} (has ${keys.slice(0, 10).join(', ').slice(0, 200)})`);
      return;
    }
    const { function: fn, symbol, node_hash: nodeHash, calls, emitted, suppressed } = e;
    if (typeof fn !== 'string' || typeof symbol !== 'string' || (nodeHash !== null && typeof nodeHash !== 'string')) {
      problems.push(`${at}: function and symbol must be strings, node_hash a string or null`);
      return;
    }
    if (typeof calls !== 'bigint' || typeof emitted !== 'bigint' || typeof suppressed !== 'bigint' || calls < 0n || emitted < 0n || suppressed < 0n) {
      problems.push(`${at} (${fn.slice(0, 120)}): calls, emitted and suppressed must be non-negative integers`);
      return;
    }
    if (emitted + suppressed !== calls) {
      problems.push(`${at} (${fn.slice(0, 120)}): emitted ${emitted} + suppressed ${suppressed} != calls ${calls}`);
      return;
    }
    const key = `${fn}\u0000${symbol}\u0000${nodeHash ?? ''}`;
    if (seen.has(key)) {
      problems.push(`${at} (${fn.slice(0, 120)}): listed twice`);
      return;
    }
    seen.add(key);
    entries.push({ function: fn, symbol, node_hash: nodeHash, calls, emitted, suppressed });
  });
  return { entries, problems };
}
