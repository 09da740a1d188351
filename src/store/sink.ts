import type { Segment } from '../decode/segment';
import type { EventType } from '../model/record';
import type { Ledger } from '../model/ledger';
import type { AttributedRecord, AttributionTicket, ChunkAttribution } from '../packages';

/** What the sink learns about each line besides its bytes. */
export interface LineInfo {
  type: EventType;
  tsNs: bigint;
  /** probe name as in the ledger: file_open, process_exec, tcp_state, net_connect, ssl_op, function_call */
  probe: string;
  /** the record itself, for package attribution (the chunk writer notes its path and container) */
  record?: AttributedRecord;
}

/**
 * AttributionSource is what the chunk writer needs of package attribution (src/packages
 * Attributor): it notes each written record, takes the window at each seal and waits a
 * bounded time for its answers, which go into the predicate's `attribution`.
 */
export interface AttributionSource {
  note(record: AttributedRecord): void;
  /** true when the window is full: the writer seals before the next record */
  readonly windowFull: boolean;
  takeWindow(): AttributionTicket;
  finish(ticket: AttributionTicket, timeoutMs: number): Promise<ChunkAttribution>;
}

/**
 * RecordSink receives canonical NDJSON lines (without the trailing newline) in order.
 * write() never blocks on I/O for long: a sink buffers in bounded memory and reports
 * pressure through `backlogBytes` so the pipeline can shed load (docs/reliability.md).
 */
export interface RecordSink {
  write(line: string, info: LineInfo): void;
  /**
   * writeSegment writes lines [first, last) of a fast-path segment (src/decode/segment.ts):
   * the same bytes and facts as write() per line, without a string per line. Optional: the
   * pipeline falls back to write() for sinks without it.
   */
  writeSegment?(seg: Segment, first: number, last: number): void;
  /** bytes accepted but not yet durable; the pipeline sheds load when this grows */
  readonly backlogBytes: number;
  /** bytes written so far (for the status line) */
  readonly bytesWritten: number;
  /** flush everything and seal; the ledger passed is the final one */
  close(finalLedger: Ledger): Promise<void>;
  /**
   * records accepted but never written, per probe (--stdout: a stalled or closed reader);
   * the collector counts them as shed instead of written
   */
  unwritten?(): Map<string, bigint>;
}

/** Facts about the collector run that signed output records in its predicate. */
export interface ProducerInfo {
  collectorVersion: string;
  /** sha256 hex of the BPF object file that was loaded */
  bpfObjectSha256: string;
  /** where BTF came from and its sha256 hex */
  btf: { path: string; sha256: string };
  /** active filters, in a stable JSON-able form */
  filters: Record<string, unknown>;
  /** sha256 hex of the canonical JSON of the effective configuration */
  configSha256: string;
  probes: string[];
}

/** Options of the output stage, parsed by `rtev collect`. */
export interface OutputOptions {
  /** write NDJSON to stdout instead of a directory */
  stdout: boolean;
  /** evidence directory (rtev collect --out DIR) */
  outDir?: string;
  /** Ed25519 private key file (PEM, PKCS#8) to sign chunks with */
  keyFile?: string;
  /** rotate a chunk after this many bytes */
  chunkMaxBytes?: number;
  /** rotate a chunk after this many milliseconds */
  chunkMaxAgeMs?: number;
  /** retention: keep at most this many bytes of sealed chunks */
  retainMaxBytes?: number;
  /** retention: remove sealed chunks older than this many milliseconds */
  retainMaxAgeMs?: number;
  /** --stdout: a record waits at most this long before it is written (--flush-interval) */
  flushIntervalMs?: number;
  /** retention may remove chunks `rtev ship` has not had acknowledged (the checkpoint records them) */
  retainUnshipped?: boolean;
  /** at most this many rotated chunks wait to be sealed (openOutput: MAX_PENDING_SEALS of chunk-writer.ts) */
  maxPendingSeals?: number;
}

/** What the output stage can ask of the running collector. */
export interface OutputContext {
  producer: ProducerInfo;
  /** the cumulative ledger right now (kernel counters read from BPF, user counters) */
  ledger(): Ledger;
  /** where to print one-line notices (key fingerprint, warnings) */
  notice(message: string): void;
  /** the first error of a write that happened after write() returned (--stdout) */
  onError?(err: unknown): void;
  /**
   * the cumulative exact call counts per probed function (rtev collect --function), read
   * when a chunk is sealed; the chunk predicate holds the differences (`function_calls`).
   * Absent when the run probes no function: the predicate then has no such field.
   */
  functionCalls?(): FunctionCallTotal[];
  /**
   * called synchronously right after a chunk's facts (records, ledger, function calls) are
   * taken, before any further record is written: the first-seen window rotates here.
   */
  onSeal?(): void;
  /** package attribution; absent: chunk predicates have no `attribution` field */
  attribution?: AttributionSource;
  /**
   * ssl_op coverage (the run probes ssl_op): read when a chunk is sealed; the predicate's
   * `tls_coverage` holds what was found in the window. Absent: no such field.
   */
  tlsCoverage?(): TlsCoverageTotals;
}

/** One process that maps TLS rtev does not observe (docs/probes-network.md, "Counted coverage"). */
export interface TlsUncovered {
  pid: number;
  comm: string;
  exe: string;
  /** the file as the process maps it */
  library: string;
  /** nss, rustls, boringssl, java, go, openssl_nosym, ... */
  kind: string;
}

/** The (process, library) pairs found so far where TLS is not observable, in the order found. */
export interface TlsCoverageTotals {
  /** all pairs found since the collector started */
  total: number;
  /** the first ones (bounded): entries[i] is the i-th pair found */
  entries: readonly TlsUncovered[];
}

/** Cumulative call counts of one function target since the collector started. */
export interface FunctionCallTotal {
  /** `FILE:SYMBOL`, e.g. /usr/lib/x86_64-linux-gnu/libssl.so.3:SSL_read */
  function: string;
  symbol: string;
  node_hash?: string;
  calls: bigint;
  /** calls that gave a record (passed the first-seen filter) */
  emitted: bigint;
  /** calls the first-seen filter suppressed; emitted + suppressed = calls */
  suppressed: bigint;
}
