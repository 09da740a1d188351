import { escapeLiteral } from 'pg';
import type { ChunkFacts } from './chunk-check';

/**
 * The per-chunk rows of an indexed chunk (chunks, chunk_ledger, the host's head and totals in
 * hosts, host_keys) as one simple-protocol batch: one round trip instead of five, each of them an
 * unnamed extended-protocol statement parsed and planned anew (measured 2.4 -> 0.4 ms of
 * PostgreSQL backend CPU per chunk, docs/benchmarks.md "Session 6 (h35)"). The COMMIT stays a
 * statement of its own, sent by ingest after the batch succeeded: a batch that held it would
 * commit in the server even when ingest died after sending it (the server has the whole text),
 * and "a killed ingest commits nothing it had not committed" is kept. PostgreSQL runs the
 * statements in order and stops at the first error (the transaction is then aborted).
 * The values are SQL literals: strings quoted by the pg client's escapeLiteral (quotes doubled,
 * backslashes doubled inside E'', so the text is the same whatever standard_conforming_strings says), integers from
 * bigints or safe integers, booleans, NULL. A string holding a NUL (which no text column can
 * hold, and which would end a simple query's text) makes chunkBatch return undefined: the caller
 * then runs the same rows as parameterized statements, which fail as they always did.
 */

export type SqlValue = string | bigint | number | boolean | null | undefined;

/** a string holding a NUL: not representable as a literal (chunkBatch declines) */
class NotLiteral extends Error {}

/** sqlLiteral renders one value as a PostgreSQL literal (throws NotLiteral for a string holding a NUL or a non-integer number) */
export function sqlLiteral(v: SqlValue): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'boolean') return v ? 'TRUE' : 'FALSE';
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new NotLiteral(`not a safe integer: ${v}`);
    return String(v);
  }
  if (v.includes('\0')) throw new NotLiteral('a string holds a NUL');
  // the pg client's own quoting: quotes doubled, and with a backslash the E'' form with backslashes doubled
  return escapeLiteral(v);
}

/** how the indexed chunk moves its host's row */
export type HostMove =
  /** the next chunk of the indexed chain: the head moves */
  | 'head'
  /** the host's first chunk: its row is created */
  | 'new'
  /** the first chunk of a chain an operator accepted: the head moves to the new chain */
  | 'replace'
  /** a late chunk that fills a gap: only the totals */
  | 'late';

export interface ChunkRow {
  f: ChunkFacts;
  chunkId: bigint;
  /** JetStream stream sequence of the envelope's message */
  streamSeq: number;
  /** the envelope as received (UTF-8 text) */
  envelope: string;
  /** the message's publish time, ms since the epoch */
  publishedMs: number;
  host: HostMove;
}

const CHUNK_COLUMNS = `chunk_id, host_id, chain_id, seq, chunk_sha256, envelope_sha256, prev_envelope_sha256, run_id, run_chunk_index, final,
  hostname, machine_id, boot_id, opened_wall_ns, opened_mono_ns, sealed_wall_ns, sealed_mono_ns, min_ts_ns, max_ts_ns, count, bytes,
  lost, complete, probes, ledger_json, function_calls_json, restart_json, keyid, stream_seq, envelope, published_at`;
const LEDGER_COLUMNS = `host_id, chain_id, seq, probe, submitted, k_filtered, ring_full, skipped, truncated, received,
  written, u_filtered, rejected, shed, in_chunk, in_flight_start, in_flight_end, lost`;

/** the chunk's statements (chunks, chunk_ledger, hosts, host_keys) as one batch, or undefined when a value is not a literal */
export function chunkBatch(r: ChunkRow): string | undefined {
  try {
    return chunkStatements(r).join(';\n');
  } catch (err) {
    if (err instanceof NotLiteral) return undefined;
    throw err;
  }
}

function chunkStatements(r: ChunkRow): string[] {
  const { f } = r;
  const L = sqlLiteral;
  const out: string[] = [];
  const chunk: SqlValue[] = [r.chunkId, f.hostId, f.chainId, f.seq, f.chunkSha256, f.envelopeSha256, f.prevEnvelopeSha256, f.runId, f.runChunkIndex, f.final,
    f.hostname, f.machineId, f.bootId, f.openedWallNs, f.openedMonoNs, f.sealedWallNs, f.sealedMonoNs, f.minTs, f.maxTs, f.count, f.bytes,
    f.lost, f.complete, f.probes.map((p) => p.probe).join(','), f.ledgerJson, f.functionCallsJson, f.restartJson, f.keyid, r.streamSeq, r.envelope];
  out.push(`INSERT INTO chunks (${CHUNK_COLUMNS}) VALUES (${chunk.map(L).join(',')},to_timestamp(${L(r.publishedMs)}::double precision / 1000))`);
  if (f.probes.length > 0) {
    const rows = f.probes.map((p) => {
      const v = p.values;
      return `(${[f.hostId, f.chainId, f.seq, p.probe, v['kernel.submitted'], v['kernel.filtered'], v['kernel.ring_full'], v['kernel.skipped'],
        v['kernel.truncated'], v['user.received'], v['user.written'], v['user.filtered'], v['user.rejected'], v['user.shed'], v.in_chunk,
        v.in_flight_start, v.in_flight_end, v.lost].map(L).join(',')})`;
    });
    out.push(`INSERT INTO chunk_ledger (${LEDGER_COLUMNS}) VALUES ${rows.join(',')}`);
  }
  const totals = `chunks = chunks + 1, records = records + ${L(f.count)}, lost = lost + ${L(f.lost)}`;
  switch (r.host) {
    case 'late':
      out.push(`UPDATE hosts SET last_indexed_at = now(), ${totals} WHERE host_id = ${L(f.hostId)}`);
      break;
    case 'replace':
      out.push(`UPDATE hosts SET hostname = ${L(f.hostname)}, chain_id = ${L(f.chainId)}, head_seq = ${L(f.seq)}, head_envelope_sha256 = ${L(f.envelopeSha256)},
        head_sealed_wall_ns = ${L(f.sealedWallNs)}, last_indexed_at = now(), ${totals} WHERE host_id = ${L(f.hostId)}`);
      break;
    case 'new':
      out.push(`INSERT INTO hosts (host_id, hostname, machine_id, chain_id, head_seq, head_envelope_sha256, head_sealed_wall_ns, chunks, records, lost)
        VALUES (${[f.hostId, f.hostname, f.machineId, f.chainId, f.seq, f.envelopeSha256, f.sealedWallNs, 1, f.count, f.lost].map(L).join(',')})`);
      break;
    case 'head':
      out.push(`UPDATE hosts SET hostname = ${L(f.hostname)}, head_seq = ${L(f.seq)}, head_envelope_sha256 = ${L(f.envelopeSha256)}, head_sealed_wall_ns = ${L(f.sealedWallNs)},
        last_indexed_at = now(), ${totals} WHERE host_id = ${L(f.hostId)}`);
      break;
  }
  out.push(`INSERT INTO host_keys (host_id, keyid, chunks) VALUES (${L(f.hostId)}, ${L(f.keyid)}, 1)
    ON CONFLICT (host_id, keyid) DO UPDATE SET last_seen = now(), chunks = host_keys.chunks + 1`);
  return out;
}
