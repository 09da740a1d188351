import type { Client } from 'pg';
import type { CheckpointFacts, ChunkFacts, RejectCode } from './chunk-check';

/**
 * Gaps in a host's chain as the central index records them, and the signed retention
 * checkpoints that account for some of them (docs/fleet.md "Gaps and checkpoints").
 *
 * A gap row (`gaps`) is written when a chunk is indexed although chunks before it are not:
 * kind `missing`, one row per seq (one row for a range of 1000 seqs or more). It is then in one
 * of three states, kept in `closed_by`:
 * - open (NULL): nothing accounts for the missing chunk;
 * - filled (`chunk`): the chunk arrived late, linked both neighbours and was indexed;
 * - checkpointed (`checkpoint`): a signed retention checkpoint of the host names the seq as
 *   removed on the host before it was shipped (`checkpoint_sha256` says which checkpoint).
 * A checkpointed seq whose chunk arrives after all (shipped before the cursor said so) becomes
 * filled. `unclean-restart` rows are a different thing: records lost in a collector crash,
 * recorded at the chunk that says so.
 *
 * A checkpoint is accepted when it is signed by a trusted key (chunk-check.ts), names a chain
 * of the host (its indexed chain, another chain of it that has indexed chunks, or one an
 * operator accepted) and, if its first chunk is indexed, vouches for that chunk's envelope:
 * otherwise the host signed two histories and it is rejected as a `fork`. A chunk that arrives
 * after an accepted checkpoint and does not match the envelope it vouches for is a `fork` too.
 */

/** a run of this many seqs or more is one gap row, shorter runs are one row per seq */
export const PER_SEQ_ROWS_BELOW = 1000n;

export type GapState = 'open' | 'filled' | 'checkpointed' | 'recorded';

/** the unshipped range of one accepted checkpoint */
export interface UnshippedRange {
  from: bigint;
  through: bigint;
  checkpointSha256: string;
}

export interface SkippedCover {
  /** every skipped seq is named by a checkpoint as removed before shipping */
  covered: boolean;
  /** a checkpoint vouches for this chunk's envelope (its first_seq is this chunk) */
  vouched: boolean;
  /** a checkpoint vouches for another envelope at this chunk's seq */
  contradicted: string | null;
  ranges: UnshippedRange[];
}

/** segments splits [from, through] into runs covered by the ranges (with the checkpoint) and runs that are not (pure). */
export function segments(ranges: readonly UnshippedRange[], from: bigint, through: bigint): { from: bigint; through: bigint; checkpointSha256: string | null }[] {
  const out: { from: bigint; through: bigint; checkpointSha256: string | null }[] = [];
  let s = from;
  while (s <= through) {
    // the covering range that reaches furthest, else the nearest range that starts later
    let cover: UnshippedRange | undefined;
    let nextStart = through + 1n;
    for (const r of ranges) {
      if (r.from <= s && r.through >= s) {
        if (cover === undefined || r.through > cover.through) cover = r;
      } else if (r.from > s && r.from < nextStart) nextStart = r.from;
    }
    if (cover !== undefined) {
      const end = cover.through < through ? cover.through : through;
      out.push({ from: s, through: end, checkpointSha256: cover.checkpointSha256 });
      s = end + 1n;
    } else {
      const end = nextStart - 1n;
      out.push({ from: s, through: end, checkpointSha256: null });
      s = end + 1n;
    }
  }
  return out;
}

/**
 * skippedCover reads what the host's accepted checkpoints say about a chunk that skips seqs
 * [from, f.seq - 1] (from = head + 1, or 1 for a first chunk).
 */
export async function skippedCover(db: Client, f: ChunkFacts, from: bigint): Promise<SkippedCover> {
  const r = await db.query<{ unshipped_from: string | null; unshipped_through: string | null; envelope_sha256: string; first_seq: string; first_envelope_sha256: string | null }>(
    `SELECT unshipped_from, unshipped_through, envelope_sha256, first_seq, first_envelope_sha256 FROM checkpoints
      WHERE host_id = $1 AND chain_id = $2 AND ((unshipped_from <= $4 AND unshipped_through >= $3) OR first_seq = $5) ORDER BY first_seq`,
    [f.hostId, f.chainId, String(from), String(f.seq - 1n), String(f.seq)]);
  const ranges: UnshippedRange[] = [];
  let vouched = false;
  let contradicted: string | null = null;
  for (const c of r.rows) {
    if (c.unshipped_from !== null && c.unshipped_through !== null) ranges.push({ from: BigInt(c.unshipped_from), through: BigInt(c.unshipped_through), checkpointSha256: c.envelope_sha256 });
    if (BigInt(c.first_seq) === f.seq && c.first_envelope_sha256 !== null) {
      if (c.first_envelope_sha256 === f.envelopeSha256) vouched = true;
      else contradicted ??= c.envelope_sha256;
    }
  }
  const covered = from <= f.seq - 1n && segments(ranges, from, f.seq - 1n).every((s) => s.checkpointSha256 !== null);
  return { covered, vouched, contradicted, ranges };
}

const MISSING_DETAIL = (next: bigint): string =>
  `never arrived before seq ${next} was indexed (removed on the host, rejected, or lost before shipping); seq ${next}'s link to them is unverified`;
export const CHECKPOINTED_DETAIL = (next: bigint, vouched: boolean): string =>
  `removed on the host by retention before they were shipped, as its signed retention checkpoint records; ${vouched ? `seq ${next} is the chunk that checkpoint vouches for` : `seq ${next}'s link to them is unverified`}`;

/**
 * recordSkipped writes the gap rows for the seqs [from, through] that chunk f skipped: the
 * ones a checkpoint names are checkpointed at once, the others open.
 */
export async function recordSkipped(db: Client, f: ChunkFacts, from: bigint, through: bigint, ranges: readonly UnshippedRange[], vouched: boolean): Promise<void> {
  for (const seg of segments(ranges, from, through)) {
    const perSeq = seg.through - seg.from < PER_SEQ_ROWS_BELOW;
    const source = perSeq ? `SELECT $1, $2, 'missing', s, s, $5, $6::text, $7::text, CASE WHEN $6::text IS NULL THEN NULL ELSE now() END FROM generate_series($3::bigint, $4::bigint) AS s`
      : `SELECT $1, $2, 'missing', $3::bigint, $4::bigint, $5, $6::text, $7::text, CASE WHEN $6::text IS NULL THEN NULL ELSE now() END`;
    const cp = seg.checkpointSha256;
    await db.query(`INSERT INTO gaps (host_id, chain_id, kind, from_seq, through_seq, detail, closed_by, checkpoint_sha256, filled_at) ${source} ON CONFLICT DO NOTHING`,
      [f.hostId, f.chainId, String(seg.from), String(seg.through), cp === null ? MISSING_DETAIL(f.seq) : CHECKPOINTED_DETAIL(f.seq, vouched), cp === null ? null : 'checkpoint', cp]);
  }
}

/**
 * lateSlotSql: whether a chunk that arrives behind the head fills a gap: a `missing` (or, from
 * schema v3, `retention`) gap covers its seq, is not filled yet, and no chunk is indexed there.
 */
export const LATE_OPEN_SQL = `EXISTS (SELECT 1 FROM gaps WHERE host_id = $1 AND chain_id = $2 AND kind IN ('missing', 'retention') AND from_seq <= $3 AND through_seq >= $3
    AND closed_by IS DISTINCT FROM 'chunk') AND NOT EXISTS (SELECT 1 FROM chunks WHERE host_id = $1 AND chain_id = $2 AND seq = $3)`;

/** closeByChunk marks the single-seq gap of a late chunk filled (a range row stays; status counts what arrived in it). */
export async function closeByChunk(db: Client, f: ChunkFacts): Promise<void> {
  await db.query(`UPDATE gaps SET filled_at = now(), closed_by = 'chunk' WHERE host_id = $1 AND chain_id = $2 AND kind IN ('missing', 'retention')
    AND from_seq = $3 AND through_seq = $3 AND closed_by IS DISTINCT FROM 'chunk'`, [f.hostId, f.chainId, String(f.seq)]);
}

export type CheckpointOutcome = { ok: true; closed: number } | { ok: false; code: RejectCode; reason: string };

/**
 * recordCheckpoint checks an envelope-verified checkpoint against the host's chain and records
 * it; the open gaps it names as removed before shipping become checkpointed. Runs inside the
 * caller's transaction; the host row is locked so that it is ordered with the host's chunks.
 */
export async function recordCheckpoint(db: Client, host: string, c: CheckpointFacts, streamSeq: number, envelope: string): Promise<CheckpointOutcome> {
  const head = (await db.query<{ chain_id: string; head_seq: string }>('SELECT chain_id, head_seq FROM hosts WHERE host_id = $1 FOR UPDATE', [host])).rows[0];
  if (head !== undefined && head.chain_id !== c.chainId) {
    const known = await db.query(`SELECT 1 FROM chunks WHERE host_id = $1 AND chain_id = $2 LIMIT 1`, [host, c.chainId]);
    const accepted = known.rowCount === 0 ? await db.query(`SELECT 1 FROM chain_accepts WHERE host_id = $1 AND new_chain_id = $2 LIMIT 1`, [host, c.chainId]) : known;
    if (accepted.rowCount === 0) {
      return { ok: false, code: 'chain-replaced', reason: `retention checkpoint of chain ${c.chainId} (first seq ${c.firstSeq}), which is not the host's indexed chain ${head.chain_id}` };
    }
  }
  const first = await db.query<{ envelope_sha256: string }>('SELECT envelope_sha256 FROM chunks WHERE host_id = $1 AND chain_id = $2 AND seq = $3', [host, c.chainId, String(c.firstSeq)]);
  const indexed = first.rows[0]?.envelope_sha256;
  if (indexed !== undefined && indexed !== c.firstEnvelopeSha256) {
    return { ok: false, code: 'fork', reason: `the retention checkpoint vouches for envelope ${c.firstEnvelopeSha256.slice(0, 16)}... of seq ${c.firstSeq}, the indexed seq ${c.firstSeq} is ${indexed.slice(0, 16)}...: two signed histories` };
  }
  const s = (x: bigint | undefined): string | null => (x === undefined ? null : String(x));
  await db.query(`INSERT INTO checkpoints (host_id, chain_id, first_seq, removed_from, removed_through, unshipped_from, unshipped_through, keyid, envelope_sha256, stream_seq,
      first_envelope_sha256, envelope) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) ON CONFLICT (envelope_sha256) DO NOTHING`,
  [host, c.chainId, s(c.firstSeq), s(c.removedFrom), s(c.removedThrough), s(c.unshipped?.from), s(c.unshipped?.through), c.keyid, c.envelopeSha256, streamSeq,
    c.firstEnvelopeSha256, envelope]);
  if (c.unshipped === null) return { ok: true, closed: 0 };
  const closed = await db.query(`UPDATE gaps SET closed_by = 'checkpoint', checkpoint_sha256 = $5, filled_at = now() WHERE host_id = $1 AND chain_id = $2 AND kind = 'missing'
    AND closed_by IS NULL AND filled_at IS NULL AND from_seq >= $3 AND through_seq <= $4`, [host, c.chainId, s(c.unshipped.from), s(c.unshipped.through), c.envelopeSha256]);
  return { ok: true, closed: closed.rowCount ?? 0 };
}

/** gapState names the state of a gap row (legacy schema-v3 rows included). */
export function gapState(kind: string, closedBy: string | null, filledAt: unknown): GapState {
  if (kind === 'unclean-restart') return 'recorded';
  if (closedBy === 'chunk') return 'filled';
  if (closedBy === 'checkpoint' || kind === 'retention') return 'checkpointed';
  return filledAt === null || filledAt === undefined ? 'open' : 'filled';
}

/**
 * DeferredChunks remembers which chunks this ingest process deferred lately (they arrived ahead
 * of their predecessor), per host chain, bounded. A chunk that waited out --gap-wait is not
 * indexed past a lower chunk of its chain that is itself waiting to be redelivered: JetStream
 * redelivers deferred messages in no particular order, and indexing seq 5 before a waiting seq 3
 * would record 3 as a gap that is "filled" a moment later. Another ingest process's deferrals are
 * not seen here (then the lower one fills its gap, which is still correct); an entry older than
 * `freshMs` no longer holds anything back.
 */
export class DeferredChunks {
  readonly #by = new Map<string, Map<bigint, number>>();
  #size = 0;

  constructor(readonly maxEntries = 10_000, readonly freshMs = 10_000) {}

  note(f: ChunkFacts, now = Date.now()): void {
    if (this.#size >= this.maxEntries) {
      this.#by.clear();
      this.#size = 0;
    }
    const key = `${f.hostId}\0${f.chainId}`;
    let m = this.#by.get(key);
    if (m === undefined) this.#by.set(key, (m = new Map()));
    if (!m.has(f.seq)) this.#size++;
    m.set(f.seq, now);
  }

  forget(f: ChunkFacts): void {
    const key = `${f.hostId}\0${f.chainId}`;
    const m = this.#by.get(key);
    if (m === undefined || !m.delete(f.seq)) return;
    this.#size--;
    if (m.size === 0) this.#by.delete(key);
  }

  /** the lowest seq in [from, f.seq - 1] of f's chain deferred within freshMs, if any */
  lowerWaiting(f: ChunkFacts, from: bigint, now = Date.now()): bigint | undefined {
    const m = this.#by.get(`${f.hostId}\0${f.chainId}`);
    let low: bigint | undefined;
    for (const [seq, at] of m ?? []) {
      if (seq >= from && seq < f.seq && now - at <= this.freshMs && (low === undefined || seq < low)) low = seq;
    }
    return low;
  }
}
