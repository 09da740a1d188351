/**
 * Names of the files in an evidence directory (docs/format.md "Directory layout").
 * Sequence numbers are zero-padded to 12 digits so names sort in chain order.
 */

export const SEQ_DIGITS = 12;
export const CHECKPOINT_NAME = 'checkpoint.dsse.json';
export const LOCK_NAME = '.rtev.lock';
/** how far `rtev ship` got the chain acknowledged (src/store/ship-cursor.ts) */
export const SHIP_CURSOR_NAME = '.rtev-ship.json';
/** suffix of a file being written; it is renamed to its final name once complete and fsynced */
export const PARTIAL_SUFFIX = '.partial';
/** suffix of unsealed data found at start-up that no sealed predicate names yet */
export const UNRECORDED_SUFFIX = '.unrecorded';

export function padSeq(seq: number): string {
  return String(seq).padStart(SEQ_DIGITS, '0');
}

/** The largest chunk the fleet takes (src/fleet/chunk-check.ts rejects a bigger one as `too-large`). */
export const CHUNK_HARD_LIMIT_BYTES = 64 * 1024 * 1024;

/**
 * The largest size at which a chunk is cut: `--chunk-size` is at most this, and a chunk held open
 * while seals lag (chunk-writer.ts MAX_PENDING_SEALS) is cut here whatever the backlog. A chunk
 * ends with the line that reached its size, and a line is at most 1 MiB (verify's MAX_LINE_BYTES),
 * so every chunk stays within CHUNK_HARD_LIMIT_BYTES.
 */
export const CHUNK_CUT_LIMIT_BYTES = CHUNK_HARD_LIMIT_BYTES - (1 << 20);

export function chunkName(seq: number): string {
  return `chunk-${padSeq(seq)}.ndjson`;
}

export function envelopeName(seq: number): string {
  return `chunk-${padSeq(seq)}.dsse.json`;
}

export function unsealedName(seq: number, sha256: string): string {
  return `unsealed-${padSeq(seq)}-${sha256.slice(0, 16)}.ndjson`;
}

export type EntryKind = 'chunk' | 'envelope' | 'chunk-partial' | 'envelope-partial' | 'unsealed' | 'unsealed-unrecorded' | 'checkpoint' | 'checkpoint-partial' | 'lock' | 'ship-cursor';

export interface Entry {
  name: string;
  kind: EntryKind;
  /** sequence number for chunk, envelope and their partials, and unsealed files */
  seq: number;
}

const PATTERNS: Array<[RegExp, EntryKind]> = [
  [/^chunk-(\d{12})\.ndjson$/, 'chunk'],
  [/^chunk-(\d{12})\.dsse\.json$/, 'envelope'],
  [/^chunk-(\d{12})\.ndjson\.partial$/, 'chunk-partial'],
  [/^chunk-(\d{12})\.dsse\.json\.partial$/, 'envelope-partial'],
  [/^unsealed-(\d{12})-[0-9a-f]{16}\.ndjson$/, 'unsealed'],
  [/^unsealed-(\d{12})-[0-9a-f]{16}\.ndjson\.unrecorded$/, 'unsealed-unrecorded'],
  [/^checkpoint\.dsse\.json()$/, 'checkpoint'],
  [/^checkpoint\.dsse\.json\.partial()$/, 'checkpoint-partial'],
  [/^\.rtev\.lock()$/, 'lock'],
  [/^\.rtev-ship\.json()$/, 'ship-cursor'],
];

/** classify names a directory entry, or returns undefined for a file rtev does not write. */
export function classify(name: string): Entry | undefined {
  for (const [re, kind] of PATTERNS) {
    const m = re.exec(name);
    if (m !== null) return { name, kind, seq: m[1] === '' || m[1] === undefined ? 0 : Number(m[1]) };
  }
  return undefined;
}
