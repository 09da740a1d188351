import type { CanonicalValue } from '../encode/canonical';
import { inFlightOf, lostOf, type Ledger, type NotObservedClass } from '../model/ledger';
import type { ChunkAttribution } from '../packages/evidence';
import { EVENT_TYPES, type EventType } from '../model/record';
import type { HostFacts, TimeAnchor } from './host-facts';
import type { FunctionCallTotal, ProducerInfo, TlsCoverageTotals, TlsUncovered } from './sink';

/**
 * The predicate of a chunk statement (predicateType CHUNK_PREDICATE_TYPE). Every field is
 * documented in docs/format.md; bigint values are exact JSON integers.
 */

export const RECORD_SCHEMA_ID = 'https://stella-ops.io/schemas/runtime-evidence/v1.json';

export type SealReason = 'size' | 'age' | 'shutdown';

export interface ChainLink {
  chain_id: string;
  seq: number;
  /** sha256 hex of the previous chunk's envelope file, null for seq 1 */
  prev_envelope_sha256: string | null;
  run_id: string;
  run_chunk_index: number;
  /** true on the chunk sealed at a clean shutdown: the run ended here */
  final: boolean;
  seal_reason: SealReason;
}

export interface RecordSummary {
  count: number;
  bytes: number;
  by_type: Record<EventType, number>;
  first_ts_ns: bigint | null;
  last_ts_ns: bigint | null;
  min_ts_ns: bigint | null;
  max_ts_ns: bigint | null;
  schema: string;
}

export interface ProbeWindow {
  kernel: { submitted: bigint; filtered: bigint; ring_full: bigint; skipped: bigint; truncated: bigint };
  user: { received: bigint; written: bigint; filtered: bigint; rejected: bigint; shed: bigint; deduplicated: bigint };
  /** records of this probe in this chunk */
  in_chunk: bigint;
  /** submitted but not yet written, filtered, rejected or shed: at window start and end */
  in_flight_start: bigint;
  in_flight_end: bigint;
  /** ring_full + rejected + shed in this window */
  lost: bigint;
  /**
   * classes of this probe's events the run does not observe (docs/format.md, `not_observed`),
   * sorted by class then first source; absent when every class is observed
   */
  not_observed?: NotObservedClass[];
}

export interface LedgerWindow {
  /** true when nothing was lost in this window, anywhere */
  complete: boolean;
  lost: bigint;
  probes: Record<string, ProbeWindow>;
}

export interface UnsealedFile {
  name: string;
  bytes: number;
  /** complete lines in the file */
  lines: number;
  sha256: string;
}

export interface RestartRecord {
  /** run id of the last sealed chunk before this run, null if there was none */
  previous_run_id: string | null;
  previous_seq: number | null;
  /** whether that run ended with a final (shutdown) chunk; false means it crashed or was killed */
  previous_run_closed: boolean;
  /** data the previous run(s) wrote but never sealed, kept as unsealed-*.ndjson */
  unsealed: UnsealedFile[];
}

/** Exact calls of one probed function in a chunk's window (docs/function-calls.md). */
export interface FunctionCallWindow {
  function: string;
  symbol: string;
  node_hash: string | null;
  calls: bigint;
  emitted: bigint;
  suppressed: bigint;
}

/** at most this many processes are listed per chunk window (the count stays exact) */
export const MAX_TLS_LISTED = 64;

/**
 * ssl_op coverage in a chunk's window (docs/format.md, "tls_coverage"): the (process, library)
 * pairs found in the window where a process maps TLS that rtev does not observe.
 */
export interface TlsCoverageWindow {
  /** pairs found in this window */
  uncovered: number;
  /** pairs found since the run started, this window included */
  uncovered_total: number;
  /** the first MAX_TLS_LISTED of this window's pairs, in the order found */
  processes: TlsUncovered[];
  /** true when uncovered > processes.length */
  truncated: boolean;
}

/** tlsCoverageWindow takes the pairs found after the first `start` ones. */
export function tlsCoverageWindow(start: number, end: TlsCoverageTotals): TlsCoverageWindow {
  const uncovered = end.total - start;
  const processes = end.entries.slice(start, Math.min(end.entries.length, start + MAX_TLS_LISTED)).map((e) => ({ ...e }));
  return { uncovered, uncovered_total: end.total, processes, truncated: uncovered > processes.length };
}

export interface ChunkPredicate {
  chain: ChainLink;
  records: RecordSummary;
  ledger: LedgerWindow;
  restart: RestartRecord | null;
  host: HostFacts;
  clock: { ts_clock: 'CLOCK_MONOTONIC'; opened: TimeAnchor; sealed: TimeAnchor };
  producer: {
    collector_version: string;
    bpf_object_sha256: string;
    btf: { path: string; sha256: string };
    filters: Record<string, unknown>;
    config_sha256: string;
    probes: string[];
  };
  /** present only when the run probes functions (rtev collect --function) */
  function_calls?: FunctionCallWindow[];
  /** present only when the collector attributes packages (docs/format.md, "Attribution") */
  attribution?: ChunkAttribution;
  /** present only when the run probes ssl_op (docs/format.md, "tls_coverage") */
  tls_coverage?: TlsCoverageWindow;
}

/** producerFacts maps ProducerInfo to its predicate form. */
export function producerFacts(p: ProducerInfo): ChunkPredicate['producer'] {
  return {
    collector_version: p.collectorVersion,
    bpf_object_sha256: p.bpfObjectSha256,
    btf: { path: p.btf.path, sha256: p.btf.sha256 },
    filters: p.filters,
    config_sha256: p.configSha256,
    probes: [...p.probes].sort(),
  };
}

/** emptyByType gives a count of zero for every event type (absent types are stated as 0). */
export function emptyByType(): Record<EventType, number> {
  const out = {} as Record<EventType, number>;
  for (const t of EVENT_TYPES) out[t] = 0;
  return out;
}

/** Flat cumulative counters of one probe, the unit in which windows are subtracted. */
export interface ProbeTotals {
  k_submitted: bigint; k_filtered: bigint; k_ring_full: bigint; k_skipped: bigint; k_truncated: bigint;
  u_received: bigint; u_written: bigint; u_filtered: bigint; u_rejected: bigint; u_shed: bigint; u_deduplicated: bigint;
  in_chunks: bigint;
}

const ZERO: ProbeTotals = {
  k_submitted: 0n, k_filtered: 0n, k_ring_full: 0n, k_skipped: 0n, k_truncated: 0n,
  u_received: 0n, u_written: 0n, u_filtered: 0n, u_rejected: 0n, u_shed: 0n, u_deduplicated: 0n, in_chunks: 0n,
};

/** totalsOf flattens a cumulative ledger plus our own cumulative per-probe record counts. */
export function totalsOf(ledger: Ledger, written: ReadonlyMap<string, bigint>): Map<string, ProbeTotals> {
  const out = new Map<string, ProbeTotals>();
  for (const [probe, l] of Object.entries(ledger)) {
    out.set(probe, {
      k_submitted: l.kernel.submitted, k_filtered: l.kernel.filtered, k_ring_full: l.kernel.ringFull,
      k_skipped: l.kernel.skipped, k_truncated: l.kernel.truncated,
      u_received: l.user.received, u_written: l.user.written, u_filtered: l.user.filtered,
      u_rejected: l.user.rejected, u_shed: l.user.shed, u_deduplicated: l.user.deduplicated, in_chunks: written.get(probe) ?? 0n,
    });
  }
  for (const [probe, n] of written) if (!out.has(probe)) out.set(probe, { ...ZERO, in_chunks: n });
  return out;
}

/**
 * ledgerWindow subtracts two cumulative snapshots. in_flight = kernel submitted minus
 * everything user space disposed of (written to a chunk, filtered, deduplicated, rejected, shed), so
 * per probe: submitted = in_chunk + user filtered + deduplicated + rejected + shed + in_flight_end - in_flight_start.
 */
export function ledgerWindow(start: ReadonlyMap<string, ProbeTotals>, end: ReadonlyMap<string, ProbeTotals>): LedgerWindow {
  const probes: Record<string, ProbeWindow> = {};
  let lost = 0n;
  const names = [...new Set([...start.keys(), ...end.keys()])].sort();
  for (const name of names) {
    const a = start.get(name) ?? ZERO;
    const b = end.get(name) ?? ZERO;
    const d = (k: keyof ProbeTotals): bigint => b[k] - a[k];
    const w: ProbeWindow = {
      kernel: { submitted: d('k_submitted'), filtered: d('k_filtered'), ring_full: d('k_ring_full'), skipped: d('k_skipped'), truncated: d('k_truncated') },
      user: { received: d('u_received'), written: d('u_written'), filtered: d('u_filtered'), rejected: d('u_rejected'), shed: d('u_shed'), deduplicated: d('u_deduplicated') },
      in_chunk: d('in_chunks'),
      in_flight_start: inFlight(a),
      in_flight_end: inFlight(b),
      lost: lostOf({ ringFull: d('k_ring_full'), rejected: d('u_rejected'), shed: d('u_shed') }),
    };
    lost += w.lost;
    probes[name] = w;
  }
  return { complete: lost === 0n, lost, probes };
}

/**
 * addNotObserved copies each probe's unobserved classes from the ledger into its window: they
 * hold for the whole run (a part that could not be attached at start stays unattached).
 */
export function addNotObserved(window: LedgerWindow, ledger: Ledger): void {
  for (const [probe, l] of Object.entries(ledger)) {
    const w = window.probes[probe];
    if (w === undefined || l.notObserved === undefined || l.notObserved.length === 0) continue;
    w.not_observed = l.notObserved.map((n) => ({ class: n.class, sources: [...n.sources], reason: n.reason }))
      .sort((a, b) => (a.class !== b.class ? (a.class < b.class ? -1 : 1) : (a.sources[0] ?? '') < (b.sources[0] ?? '') ? -1 : 1));
  }
}

function inFlight(t: ProbeTotals): bigint {
  return inFlightOf(t.k_submitted, { written: t.in_chunks, filtered: t.u_filtered, rejected: t.u_rejected, shed: t.u_shed, deduplicated: t.u_deduplicated });
}

/** Cumulative function call counts keyed by target identity, the unit of function_calls windows. */
export type FunctionCallTotals = Map<string, FunctionCallWindow>;

function functionKey(t: { function: string; symbol: string; node_hash?: string | null | undefined }): string {
  return `${t.function}\u0000${t.symbol}\u0000${t.node_hash ?? ''}`;
}

/**
 * functionTotalsOf merges the provider's cumulative counts by (function, symbol, node_hash);
 * two targets with the same identity (aliases at different offsets) are summed.
 */
export function functionTotalsOf(list: readonly FunctionCallTotal[]): FunctionCallTotals {
  const out: FunctionCallTotals = new Map();
  for (const t of list) {
    const key = functionKey(t);
    const cur = out.get(key);
    if (cur === undefined) {
      out.set(key, { function: t.function, symbol: t.symbol, node_hash: t.node_hash ?? null, calls: t.calls, emitted: t.emitted, suppressed: t.suppressed });
    } else {
      cur.calls += t.calls;
      cur.emitted += t.emitted;
      cur.suppressed += t.suppressed;
    }
  }
  return out;
}

/**
 * functionCallsWindow subtracts two cumulative snapshots: one entry per target (zeros
 * included), sorted by function, symbol, node_hash.
 */
export function functionCallsWindow(start: FunctionCallTotals, end: FunctionCallTotals): FunctionCallWindow[] {
  const keys = [...new Set([...start.keys(), ...end.keys()])].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return keys.map((k) => {
    const a = start.get(k);
    const b = end.get(k) ?? a!; // a target never leaves the cumulative counts: no change
    return {
      function: b.function, symbol: b.symbol, node_hash: b.node_hash,
      calls: b.calls - (a?.calls ?? 0n), emitted: b.emitted - (a?.emitted ?? 0n), suppressed: b.suppressed - (a?.suppressed ?? 0n),
    };
  });
}

/** predicateValue gives the canonical-JSON form of a predicate. */
export function predicateValue(p: ChunkPredicate): CanonicalValue {
  return p as unknown as CanonicalValue;
}
