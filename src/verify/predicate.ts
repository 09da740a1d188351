import { isObj, type StrictObject, type StrictValue } from '../encode/strict-json';
import type { NotObservedClass } from '../model/ledger';
import type { FunctionCallWindow, ProbeWindow } from '../store/predicate';

/**
 * The typed reader of a signed chunk predicate (docs/format.md, "Predicate"). The writer's
 * types (store/predicate.ts) hold numbers where the reader holds the exact bigints of the
 * strict parse; everything below is checked once here, so the checks of verify/ work on
 * typed fields instead of casting dotted lookups.
 */

/** The per-probe ledger fields, in the order `rtev verify` reports them. */
export const PROBE_FIELDS = [
  'kernel.submitted', 'kernel.filtered', 'kernel.ring_full', 'kernel.skipped', 'kernel.truncated',
  'user.received', 'user.written', 'user.filtered', 'user.rejected', 'user.shed', 'user.deduplicated',
  'in_chunk', 'in_flight_start', 'in_flight_end', 'lost',
] as const;

export type ProbeField = (typeof PROBE_FIELDS)[number];

export interface SignedChain {
  chain_id: string;
  seq: bigint;
  prev_envelope_sha256: string | null;
  run_id: string;
  run_chunk_index: bigint;
  final: boolean;
  seal_reason: string;
}

export interface SignedRecords {
  count: bigint;
  bytes: bigint;
  /** counts per event type; entries whose value is not an integer are left out */
  by_type: ReadonlyMap<string, bigint>;
  first_ts_ns: bigint | null;
  last_ts_ns: bigint | null;
  min_ts_ns: bigint | null;
  max_ts_ns: bigint | null;
  schema: string;
}

export interface SignedLedger {
  complete: boolean;
  lost: bigint;
  /** per probe, in the predicate's order */
  probes: ReadonlyMap<string, ProbeWindow>;
}

export interface SignedTime {
  wall_ns: bigint;
  mono_ns: bigint;
}

/** SignedPredicate is a chunk predicate whose every required field has its type. */
export interface SignedPredicate {
  chain: SignedChain;
  records: SignedRecords;
  ledger: SignedLedger;
  /**
   * null or an object; its fields are described by verify as they are (a restart record
   * reports what the previous run left, it is not required to be well-formed)
   */
  restart: StrictObject | null;
  host: { boot_id: string; hostname: string; machine_id: string; kernel_release: string };
  clock: { opened: SignedTime; sealed: SignedTime };
  producer: { collector_version: string; bpf_object_sha256: string; btf: { path: string; sha256: string }; config_sha256: string };
  /** the parsed predicate, for the optional fields read by their own checks (function_calls) */
  raw: StrictObject;
}

export type PredicateParse = { ok: true; predicate: SignedPredicate } | { ok: false; bad: string[] };

/**
 * parsePredicate checks every required field's type and returns the typed predicate, or
 * the dotted names of the fields that are missing or malformed (in document order, probe
 * fields last).
 */
export function parsePredicate(p: StrictObject): PredicateParse {
  const f = new Fields(p, '');
  f.obj('chain');
  const chain: SignedChain = {
    chain_id: f.str('chain.chain_id'), seq: f.int('chain.seq'), prev_envelope_sha256: f.strOrNull('chain.prev_envelope_sha256'),
    run_id: f.str('chain.run_id'), run_chunk_index: f.int('chain.run_chunk_index'), final: f.bool('chain.final'),
    seal_reason: f.str('chain.seal_reason'),
  };
  f.obj('records');
  const count = f.int('records.count');
  const bytes = f.int('records.bytes');
  const byType = f.obj('records.by_type');
  const records: SignedRecords = {
    count, bytes, by_type: integerEntries(byType),
    first_ts_ns: f.intOrNull('records.first_ts_ns'), last_ts_ns: f.intOrNull('records.last_ts_ns'),
    min_ts_ns: f.intOrNull('records.min_ts_ns'), max_ts_ns: f.intOrNull('records.max_ts_ns'),
    schema: f.str('records.schema'),
  };
  f.obj('ledger');
  const complete = f.bool('ledger.complete');
  const lost = f.int('ledger.lost');
  const probesObj = f.obj('ledger.probes');
  const restart = f.objOrNull('restart');
  f.obj('host');
  const host = { boot_id: f.str('host.boot_id'), hostname: f.str('host.hostname'), machine_id: f.str('host.machine_id'), kernel_release: f.str('host.kernel_release') };
  f.obj('clock');
  const clock = {
    opened: { wall_ns: f.int('clock.opened.wall_ns'), mono_ns: f.int('clock.opened.mono_ns') },
    sealed: { wall_ns: f.int('clock.sealed.wall_ns'), mono_ns: f.int('clock.sealed.mono_ns') },
  };
  f.obj('producer');
  const producer = {
    collector_version: f.str('producer.collector_version'), bpf_object_sha256: f.str('producer.bpf_object_sha256'),
    btf: { path: f.str('producer.btf.path'), sha256: f.str('producer.btf.sha256') }, config_sha256: f.str('producer.config_sha256'),
  };
  const probes = new Map<string, ProbeWindow>();
  if (probesObj !== undefined) {
    for (const [name, w] of Object.entries(probesObj)) probes.set(name, probeWindow(new Fields(w, `ledger.probes.${name}.`), f.bad, w));
  }
  if (f.bad.length > 0) return { ok: false, bad: f.bad };
  return { ok: true, predicate: { chain, records, ledger: { complete, lost, probes }, restart: restart ?? null, host, clock, producer, raw: p } };
}

function probeWindow(f: Fields, bad: string[], raw: StrictValue): ProbeWindow {
  const n = (field: ProbeField): bigint => f.int(field);
  const w: ProbeWindow = {
    kernel: { submitted: n('kernel.submitted'), filtered: n('kernel.filtered'), ring_full: n('kernel.ring_full'), skipped: n('kernel.skipped'), truncated: n('kernel.truncated') },
    user: {
      received: n('user.received'), written: n('user.written'), filtered: n('user.filtered'), rejected: n('user.rejected'), shed: n('user.shed'),
      // absent from chunks written before --file-open-mode existed
      deduplicated: f.intOrZero('user.deduplicated'),
    },
    in_chunk: n('in_chunk'), in_flight_start: n('in_flight_start'), in_flight_end: n('in_flight_end'), lost: n('lost'),
  };
  const notObserved = notObservedOf(raw);
  if (notObserved === 'bad') f.bad.push(`${f.prefix}not_observed`);
  else if (notObserved !== undefined) w.not_observed = notObserved;
  bad.push(...f.bad);
  return w;
}

const NOT_OBSERVED_FIELDS = ['class', 'reason', 'sources'];

/**
 * notObservedOf reads a probe window's optional `not_observed` (docs/format.md): absent, or a
 * non-empty array of at most 16 entries with exactly {class, sources, reason}, strings of at most
 * 1024 characters, sources a non-empty array of at most 16 strings; 'bad' otherwise.
 */
function notObservedOf(w: StrictValue): NotObservedClass[] | undefined | 'bad' {
  if (!isObj(w) || !Object.prototype.hasOwnProperty.call(w, 'not_observed')) return undefined;
  const list = w['not_observed'];
  if (!Array.isArray(list) || list.length === 0 || list.length > 16) return 'bad';
  const out: NotObservedClass[] = [];
  const short = (v: StrictValue | undefined): v is string => typeof v === 'string' && v.length > 0 && v.length <= 1024;
  for (const e of list) {
    if (!isObj(e) || Object.keys(e).sort().join(',') !== NOT_OBSERVED_FIELDS.join(',')) return 'bad';
    const { class: c, sources, reason } = e;
    if (!short(c) || !short(reason) || !Array.isArray(sources) || sources.length === 0 || sources.length > 16 || !sources.every(short)) return 'bad';
    out.push({ class: c, sources: sources as string[], reason });
  }
  return out;
}

/** probeField reads one of PROBE_FIELDS from a typed probe window. */
export function probeField(w: ProbeWindow, field: ProbeField): bigint {
  switch (field) {
    case 'kernel.submitted': return w.kernel.submitted;
    case 'kernel.filtered': return w.kernel.filtered;
    case 'kernel.ring_full': return w.kernel.ring_full;
    case 'kernel.skipped': return w.kernel.skipped;
    case 'kernel.truncated': return w.kernel.truncated;
    case 'user.received': return w.user.received;
    case 'user.written': return w.user.written;
    case 'user.filtered': return w.user.filtered;
    case 'user.rejected': return w.user.rejected;
    case 'user.shed': return w.user.shed;
    case 'user.deduplicated': return w.user.deduplicated;
    case 'in_chunk': return w.in_chunk;
    case 'in_flight_start': return w.in_flight_start;
    case 'in_flight_end': return w.in_flight_end;
    case 'lost': return w.lost;
  }
}

function integerEntries(o: StrictObject | undefined): Map<string, bigint> {
  const out = new Map<string, bigint>();
  if (o !== undefined) for (const [k, v] of Object.entries(o)) if (typeof v === 'bigint') out.set(k, v);
  return out;
}

/** Fields reads typed values at dotted paths, collecting the names of those that are missing or of the wrong type. */
class Fields {
  readonly bad: string[] = [];
  constructor(private readonly root: StrictValue, readonly prefix: string) {}

  #at(dotted: string): StrictValue | undefined {
    let cur: StrictValue | undefined = this.root;
    for (const key of dotted.split('.')) {
      if (!isObj(cur)) return undefined;
      cur = Object.prototype.hasOwnProperty.call(cur, key) ? cur[key] : undefined;
    }
    return cur;
  }

  #fail(dotted: string): void {
    this.bad.push(this.prefix + dotted);
  }

  int(dotted: string): bigint {
    const v = this.#at(dotted);
    if (typeof v === 'bigint') return v;
    this.#fail(dotted);
    return 0n;
  }

  /** intOrZero: an integer, or 0 when the field is absent */
  intOrZero(dotted: string): bigint {
    const v = this.#at(dotted);
    if (v === undefined) return 0n;
    if (typeof v === 'bigint') return v;
    this.#fail(dotted);
    return 0n;
  }

  intOrNull(dotted: string): bigint | null {
    const v = this.#at(dotted);
    if (v === null || typeof v === 'bigint') return v;
    this.#fail(dotted);
    return null;
  }

  str(dotted: string): string {
    const v = this.#at(dotted);
    if (typeof v === 'string') return v;
    this.#fail(dotted);
    return '';
  }

  strOrNull(dotted: string): string | null {
    const v = this.#at(dotted);
    if (v === null || typeof v === 'string') return v;
    this.#fail(dotted);
    return null;
  }

  bool(dotted: string): boolean {
    const v = this.#at(dotted);
    if (typeof v === 'boolean') return v;
    this.#fail(dotted);
    return false;
  }

  obj(dotted: string): StrictObject | undefined {
    const v = this.#at(dotted);
    if (isObj(v)) return v;
    this.#fail(dotted);
    return undefined;
  }

  objOrNull(dotted: string): StrictObject | null | undefined {
    const v = this.#at(dotted);
    if (v === null || isObj(v)) return v;
    this.#fail(dotted);
    return undefined;
  }
}

const FUNCTION_CALL_FIELDS = ['calls', 'emitted', 'function', 'node_hash', 'suppressed', 'symbol'];

/** One well-formed entry of a predicate's function_calls: the writer's FunctionCallWindow. */
export type FunctionCallEntry = FunctionCallWindow;

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

/** One well-formed `tls_coverage` field (docs/format.md, "tls_coverage"). */
export interface TlsCoverageEntry {
  uncovered: bigint;
  uncoveredTotal: bigint;
  processes: { pid: bigint; comm: string; exe: string; library: string; kind: string }[];
  truncated: boolean;
}

const TLS_COVERAGE_FIELDS = ['processes', 'truncated', 'uncovered', 'uncovered_total'];
const TLS_PROCESS_FIELDS = ['comm', 'exe', 'kind', 'library', 'pid'];

/**
 * checkTlsCoverage checks the optional `tls_coverage` field (written by runs that probe ssl_op;
 * absent from older chunks and from runs without ssl_op): exactly its fields, non-negative counts
 * with uncovered <= uncovered_total, at most 64 processes listed, no more than counted, and
 * truncated exactly when fewer are listed than counted.
 */
export function checkTlsCoverage(p: StrictObject): { entry: TlsCoverageEntry | undefined; problems: string[] } {
  if (!Object.prototype.hasOwnProperty.call(p, 'tls_coverage')) return { entry: undefined, problems: [] };
  const t = p['tls_coverage'];
  const bad = (m: string): { entry: undefined; problems: string[] } => ({ entry: undefined, problems: [`tls_coverage: ${m}`] });
  if (!isObj(t)) return bad('not an object');
  const keys = Object.keys(t).sort();
  if (keys.join(',') !== TLS_COVERAGE_FIELDS.join(',')) return bad(`must have exactly the fields ${TLS_COVERAGE_FIELDS.join(', ')}`);
  const { uncovered, uncovered_total: total, processes, truncated } = t;
  if (typeof uncovered !== 'bigint' || typeof total !== 'bigint' || uncovered < 0n || total < uncovered) {
    return bad('uncovered and uncovered_total must be integers with 0 <= uncovered <= uncovered_total');
  }
  if (!Array.isArray(processes) || processes.length > 64 || BigInt(processes.length) > uncovered) {
    return bad('processes must be an array of at most 64 and at most `uncovered` entries');
  }
  if (typeof truncated !== 'boolean' || truncated !== BigInt(processes.length) < uncovered) return bad('truncated must say whether fewer processes are listed than counted');
  const list: TlsCoverageEntry['processes'] = [];
  for (const [i, e] of processes.entries()) {
    if (!isObj(e) || Object.keys(e).sort().join(',') !== TLS_PROCESS_FIELDS.join(',')) return bad(`processes[${i}] must have exactly the fields ${TLS_PROCESS_FIELDS.join(', ')}`);
    const { pid, comm, exe, library, kind } = e;
    if (typeof pid !== 'bigint' || pid < 1n || typeof comm !== 'string' || typeof exe !== 'string' || typeof library !== 'string' || typeof kind !== 'string') {
      return bad(`processes[${i}]: pid must be a positive integer, comm, exe, library and kind strings`);
    }
    list.push({ pid, comm, exe, library, kind });
  }
  return { entry: { uncovered, uncoveredTotal: total, processes: list, truncated }, problems: [] };
}
