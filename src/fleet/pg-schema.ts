import type { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { UsageError } from '../errors';
import { RECORD_COLUMNS } from './rows';

/**
 * The fleet index in PostgreSQL. `records` and `chunks` mirror the local index's columns
 * (src/index) with a host_id; `hosts` keeps each host's verified chain head (the central
 * copy the host cannot rewrite); `rejections` and `gaps` keep what did not index, with
 * reasons. The schema is created by an administrator (`rtev fleet init`); ingest runs as a
 * role that can only read and append (and move heads), never delete or change the schema.
 *
 * Schema 4: each chunk's verified body is stored once (chunks.body, STORAGE EXTERNAL: not
 * compressed, so a line is read by a substring that fetches only its part); a record row
 * holds its typed columns and (chunk_id, line_no, line_off, line_len), the per-chunk values
 * (host, chain, seq, digest) stay in `chunks`. Schema 3 databases are migrated by `rtev fleet
 * init` (bodies rebuilt from the stored lines, byte for byte).
 *
 * Schema 5: the u64 columns of records are int8s biased by -2^63 (ts_ns_biased = ts_ns - 2^63,
 * cgroup_id_biased likewise): exact for every u64, in the same order (ORDER BY, min/max and
 * ranges work on the biased value), and fixed-width 8 bytes that PostgreSQL takes without
 * numeric's input and varlena cost. Readers map them back (biasedToU64 in src/fleet/rows.ts,
 * sqlU64 in SQL; rtev_u64(bigint) for people at a psql prompt). `rtev fleet init` rewrites a
 * v4 records table in place (ALTER COLUMN ... TYPE ... USING).
 *
 * Schema 6: each record row holds its line (records.line, bytea) and chunks no longer holds the
 * body: a body stored once went through TOAST (~2,100 tuples and index entries per 4 MiB), which
 * cost PostgreSQL more per record than the line inline in its row (docs/benchmarks.md "Session 5
 * (h29)"). The body is still there byte for byte: the chunk's lines in line_no order, each with
 * its newline (ingest refuses any other body), at line_off/line_len. `rtev fleet init` moves the
 * lines of a v4/v5 database from chunks.body into the rows and drops the column.
 *
 * Schema 7: records has one index, the BRIN on chunk_id; the BRIN on wall_ns is gone. Every index
 * is maintained per row during COPY, and in PostgreSQL 15 a BRIN insert reads the index's
 * metapage and revmap page for every row: the wall_ns one cost ~0.5-0.85 us of backend CPU per
 * record (docs/benchmarks.md "Session 6 (h35)"). A --since/--until window finds its records
 * through their chunks instead (src/fleet/query.ts wallWindow: the chunk ids whose signed ts range,
 * moved to wall time by the chunk's anchors, can hold a record of the window), which the chunk_id
 * BRIN serves. `rtev fleet init` drops the index of a v6 database.
 */

export const SCHEMA_VERSION = 7;

const DDL = `
CREATE TABLE IF NOT EXISTS rtev_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS hosts (
  host_id text PRIMARY KEY, hostname text NOT NULL, machine_id text NOT NULL,
  chain_id text NOT NULL, head_seq bigint NOT NULL, head_envelope_sha256 text NOT NULL,
  head_sealed_wall_ns bigint, first_indexed_at timestamptz NOT NULL DEFAULT now(),
  last_indexed_at timestamptz NOT NULL DEFAULT now(),
  chunks bigint NOT NULL DEFAULT 0, records bigint NOT NULL DEFAULT 0, lost numeric(20) NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS host_keys (
  host_id text NOT NULL, keyid text NOT NULL, first_seen timestamptz NOT NULL DEFAULT now(),
  last_seen timestamptz NOT NULL DEFAULT now(), chunks bigint NOT NULL DEFAULT 0, PRIMARY KEY (host_id, keyid));
CREATE TABLE IF NOT EXISTS chunks (
  chunk_id bigserial UNIQUE, host_id text NOT NULL, chain_id text NOT NULL, seq bigint NOT NULL, chunk_sha256 text NOT NULL,
  envelope_sha256 text NOT NULL UNIQUE, prev_envelope_sha256 text, run_id text NOT NULL, run_chunk_index bigint NOT NULL,
  final boolean NOT NULL, hostname text NOT NULL, machine_id text NOT NULL, boot_id text NOT NULL,
  opened_wall_ns bigint NOT NULL, opened_mono_ns numeric(20) NOT NULL, sealed_wall_ns bigint NOT NULL, sealed_mono_ns numeric(20) NOT NULL,
  min_ts_ns numeric(20), max_ts_ns numeric(20), count bigint NOT NULL, bytes bigint NOT NULL, lost numeric(20) NOT NULL,
  complete boolean NOT NULL, probes text NOT NULL, ledger_json text NOT NULL, function_calls_json text, restart_json text,
  verified boolean NOT NULL DEFAULT true, keyid text NOT NULL, stream_seq bigint NOT NULL, envelope text NOT NULL,
  published_at timestamptz, ingested_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (host_id, chain_id, seq));
CREATE TABLE IF NOT EXISTS chunk_ledger (
  host_id text NOT NULL, chain_id text NOT NULL, seq bigint NOT NULL, probe text NOT NULL,
  submitted numeric(20) NOT NULL, k_filtered numeric(20) NOT NULL, ring_full numeric(20) NOT NULL, skipped numeric(20) NOT NULL,
  truncated numeric(20) NOT NULL, received numeric(20) NOT NULL, written numeric(20) NOT NULL, u_filtered numeric(20) NOT NULL,
  rejected numeric(20) NOT NULL, shed numeric(20) NOT NULL, in_chunk numeric(20) NOT NULL,
  in_flight_start numeric(20) NOT NULL, in_flight_end numeric(20) NOT NULL, lost numeric(20) NOT NULL,
  PRIMARY KEY (host_id, chain_id, seq, probe));
-- one row per record: fixed-width columns first (no alignment padding), the original line last
-- (bytea: the signed bytes; the chunk's body is its lines in line_no order, each + newline, and
-- line_off/line_len place it there); ts_ns_biased, cgroup_id_biased: the u64 minus 2^63, see rtev_u64
CREATE TABLE IF NOT EXISTS records (
  chunk_id bigint NOT NULL, wall_ns bigint NOT NULL, ts_ns_biased bigint NOT NULL, cgroup_id_biased bigint, ssl_bytes bigint,
  line_no integer NOT NULL, line_off integer NOT NULL, line_len integer NOT NULL, pid integer NOT NULL, tid integer, peer_port integer, local_port integer,
  type text NOT NULL, src text NOT NULL, comm text NOT NULL, container_id text, image_digest text, path text, access text,
  peer_addr text, local_addr text, symbol text, library text, node_hash text, runtime text, ssl_op text, line bytea NOT NULL);
-- COPY appends a chunk's rows to pages of their own, and chunk ids grow with the order rows
-- arrive in: a BRIN index finds a chunk's rows (a line of an evidence reference, the records of
-- a host's or chain's chunks, the chunks of a --since/--until window) at a fraction of a btree's
-- cost per row; every other fleet query aggregates over the records it scans. v7: no index on
-- wall_ns (a window goes through its chunks' ids), one index maintained per row during COPY
CREATE INDEX IF NOT EXISTS records_chunk ON records USING brin (chunk_id) WITH (pages_per_range = 32);
DROP INDEX IF EXISTS records_wall;
CREATE TABLE IF NOT EXISTS containers (chunk_id bigint NOT NULL, container_id text, runtime text, name text, image_digest text, image_id text, reason text);
CREATE TABLE IF NOT EXISTS images (chunk_id bigint NOT NULL, image_digest text, image_name text);
CREATE TABLE IF NOT EXISTS attribution (chunk_id bigint NOT NULL, scope text, path text, purl text, purl_base text, version text, via text, root text, reason text, components text);
CREATE INDEX IF NOT EXISTS attribution_chunk ON attribution (chunk_id, path);
CREATE TABLE IF NOT EXISTS rejections (
  id bigserial PRIMARY KEY, host_id text NOT NULL, subject text NOT NULL, stream_seq bigint NOT NULL, code text NOT NULL,
  reason text NOT NULL, chain_id text, seq bigint, keyid text, envelope_sha256 text, at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (host_id, stream_seq, code));
CREATE TABLE IF NOT EXISTS gaps (
  id bigserial PRIMARY KEY, host_id text NOT NULL, chain_id text NOT NULL, kind text NOT NULL,
  from_seq bigint NOT NULL, through_seq bigint NOT NULL, detail text NOT NULL, at timestamptz NOT NULL DEFAULT now(),
  filled_at timestamptz, UNIQUE (host_id, chain_id, kind, from_seq));
-- an operator's acceptance of a host's new chain (rtev fleet accept-chain), written by the
-- database owner, read by ingest: the chain that replaces old_chain_id is indexed from then on
CREATE TABLE IF NOT EXISTS chain_accepts (
  id bigserial PRIMARY KEY, host_id text NOT NULL, old_chain_id text NOT NULL, old_head_seq bigint NOT NULL,
  new_chain_id text NOT NULL, reason text NOT NULL, accepted_by text NOT NULL DEFAULT current_user,
  at timestamptz NOT NULL DEFAULT now(), UNIQUE (host_id, old_chain_id, new_chain_id));
-- signed retention checkpoints the hosts shipped: chunks removed on the host, and which of them were never shipped
CREATE TABLE IF NOT EXISTS checkpoints (
  host_id text NOT NULL, chain_id text NOT NULL, first_seq bigint NOT NULL, removed_from bigint NOT NULL, removed_through bigint NOT NULL,
  unshipped_from bigint, unshipped_through bigint, keyid text NOT NULL, envelope_sha256 text NOT NULL UNIQUE, stream_seq bigint NOT NULL,
  at timestamptz NOT NULL DEFAULT now());
-- v4 (src/fleet/gaps.ts): how a gap was closed ('chunk': the late chunk was indexed; 'checkpoint': a signed
-- retention checkpoint names it removed before shipping; NULL: open), and which checkpoint; a checkpoint
-- keeps the envelope digest of its first chunk (checked against the indexed chunk) and itself
ALTER TABLE gaps ADD COLUMN IF NOT EXISTS closed_by text;
ALTER TABLE gaps ADD COLUMN IF NOT EXISTS checkpoint_sha256 text;
ALTER TABLE checkpoints ADD COLUMN IF NOT EXISTS first_envelope_sha256 text;
ALTER TABLE checkpoints ADD COLUMN IF NOT EXISTS envelope text;
-- v5: the u64 of a biased int8 column (records.ts_ns_biased, records.cgroup_id_biased), for SQL by hand
CREATE OR REPLACE FUNCTION rtev_u64(biased bigint) RETURNS numeric LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS 'SELECT biased::numeric + 9223372036854775808';
`;

/**
 * Schema 4 -> 5, after the DDL: the records table's numeric(20) u64 columns become biased
 * int8s, in one rewrite of the table. A v4 cgroup_id beyond u64 (numeric(20) held up to
 * 10^20 - 1; no collector writes one) becomes NULL: its line keeps it.
 */
const MIGRATE_V4 = `
ALTER TABLE records
  ALTER COLUMN ts_ns TYPE bigint USING (ts_ns - 9223372036854775808)::bigint,
  ALTER COLUMN cgroup_id TYPE bigint USING (CASE WHEN cgroup_id <= 18446744073709551615 THEN cgroup_id - 9223372036854775808 END)::bigint;
ALTER TABLE records RENAME COLUMN ts_ns TO ts_ns_biased;
ALTER TABLE records RENAME COLUMN cgroup_id TO cgroup_id_biased;
`;

/**
 * Schema 4/5 -> 6, after the u64 columns: each row takes its line from its chunk's body, the
 * body column goes.
 */
const MIGRATE_V5 = `
ALTER TABLE records ADD COLUMN line bytea;
UPDATE records r SET line = substring(k.body FROM r.line_off + 1 FOR r.line_len) FROM chunks k WHERE k.chunk_id = r.chunk_id;
ALTER TABLE records ALTER COLUMN line SET NOT NULL;
ALTER TABLE chunks DROP COLUMN body;
`;

function ident(name: string, option: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new UsageError(`--${option}: '${name}' is not a plain lowercase PostgreSQL role name`);
  return name;
}

/**
 * Schema 3 -> 4, before the DDL: the old records table (with per-row constants and the line)
 * steps aside with its indexes.
 */
const MIGRATE_V3_BEFORE = `
ALTER TABLE records RENAME TO records_v3;
DROP INDEX IF EXISTS records_chunk_line;
DROP INDEX IF EXISTS records_wall;
DROP INDEX IF EXISTS records_host_order;
DROP INDEX IF EXISTS records_chunk;
`;

/**
 * ... and after it: the rows move with their lines (as bytes) and their offsets in the body (the
 * content check refused any body with a cut last line, so the body is the lines joined with
 * newlines, byte for byte), the old table goes.
 */
const MIGRATE_V3_AFTER = `
INSERT INTO records (chunk_id, line_no, line_off, line_len, ts_ns_biased, wall_ns, type, src, pid, tid, comm, cgroup_id_biased, container_id, image_digest,
    path, access, peer_addr, peer_port, local_addr, local_port, symbol, library, node_hash, runtime, ssl_bytes, ssl_op, line)
  SELECT chunk_id, line_no, (sum(octet_length(convert_to(line, 'UTF8')) + 1) OVER w - octet_length(convert_to(line, 'UTF8')) - 1)::integer,
    octet_length(convert_to(line, 'UTF8')), (ts_ns - 9223372036854775808)::bigint, wall_ns, type, src, pid, tid, comm,
    (CASE WHEN cgroup_id <= 18446744073709551615 THEN cgroup_id - 9223372036854775808 END)::bigint, container_id, image_digest,
    path, access, peer_addr, peer_port, local_addr, local_port, symbol, library, node_hash, runtime, ssl_bytes, ssl_op, convert_to(line, 'UTF8')
  FROM records_v3 WINDOW w AS (PARTITION BY chunk_id ORDER BY line_no);
DROP TABLE records_v3;
`;

/** initSchema creates the tables and the two roles (if missing) and grants least privilege. */
export async function initSchema(db: Client, roles: { ingest: string; reader: string }): Promise<string[]> {
  const ingest = ident(roles.ingest, 'ingest-role');
  const reader = ident(roles.reader, 'reader-role');
  const done: string[] = [];
  await db.query('BEGIN');
  const v3 = await db.query(`SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'records' AND column_name = 'line'`);
  const wall = await db.query<{ w: boolean }>(`SELECT to_regclass('records_wall') IS NOT NULL AS w`);
  if (v3.rowCount !== 0) await db.query(MIGRATE_V3_BEFORE);
  await db.query(DDL);
  if (wall.rows[0]!.w && v3.rowCount === 0) done.push('schema v7: dropped the BRIN index records_wall (a --since/--until window goes through its chunks)');
  if (v3.rowCount !== 0) {
    await db.query(MIGRATE_V3_AFTER);
    const n = await db.query<{ n: string }>('SELECT count(*) AS n FROM chunks');
    done.push(`migrated the records of ${n.rows[0]!.n} chunk(s) from schema v3 (per-row constants gone, lines as bytes)`);
  }
  const v4 = await db.query(`SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'records' AND column_name = 'ts_ns'`);
  if (v4.rowCount !== 0) {
    await db.query(MIGRATE_V4);
    done.push('migrated records to schema v5 (u64 columns as biased int8: ts_ns_biased, cgroup_id_biased)');
  }
  const v5 = await db.query(`SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'chunks' AND column_name = 'body'`);
  if (v5.rowCount !== 0) {
    await db.query(MIGRATE_V5);
    done.push('migrated records to schema v6 (each row holds its line; chunks.body dropped)');
  }
  await db.query(`INSERT INTO rtev_meta (key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, [String(SCHEMA_VERSION)]);
  for (const role of [ingest, reader]) {
    const have = await db.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
    if (have.rowCount === 0) {
      // LOGIN without a password here: set one with \\password, or use peer/cert authentication
      await db.query(`CREATE ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT`);
      done.push(`created role ${role}`);
    }
  }
  await db.query(`REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ${ingest}, ${reader}`);
  await db.query(`GRANT USAGE ON SCHEMA public TO ${ingest}, ${reader}`);
  await db.query(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${ingest}, ${reader}`);
  await db.query(`GRANT INSERT ON chunks, chunk_ledger, records, rejections, gaps, hosts, host_keys, containers, images, attribution, checkpoints TO ${ingest}`);
  await db.query(`GRANT UPDATE (hostname, chain_id, head_seq, head_envelope_sha256, head_sealed_wall_ns, last_indexed_at, chunks, records, lost) ON hosts TO ${ingest}`);
  await db.query(`GRANT UPDATE (last_seen, chunks) ON host_keys TO ${ingest}`);
  await db.query(`GRANT UPDATE (filled_at, closed_by, checkpoint_sha256) ON gaps TO ${ingest}`);
  // schema v3 closed a gap a checkpoint named by filling it and adding a 'retention' row beside it
  await db.query(`UPDATE gaps g SET closed_by = CASE WHEN EXISTS (SELECT 1 FROM gaps r WHERE r.host_id = g.host_id AND r.chain_id = g.chain_id AND r.kind = 'retention'
      AND r.from_seq <= g.from_seq AND r.through_seq >= g.through_seq) THEN 'checkpoint' ELSE 'chunk' END
    WHERE g.kind = 'missing' AND g.filled_at IS NOT NULL AND g.closed_by IS NULL`);
  await db.query(`GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ${ingest}`);
  // (ingest COPYs its rows straight into records: no temporary table, no TEMPORARY grant)
  await db.query('COMMIT');
  done.push(`schema v${SCHEMA_VERSION} ready; ${ingest} may read and append, ${reader} may read`);
  return done;
}

/** checkSchema fails with the fix when the schema is missing. */
export async function checkSchema(db: Client): Promise<void> {
  const r = await db.query(`SELECT to_regclass('public.rtev_meta') AS t`);
  if (r.rows[0]?.t === null) throw new UsageError('the fleet database has no rtev schema', "run 'rtev fleet init --db URL' once as the database owner");
  const v = await db.query<{ value: string }>(`SELECT value FROM rtev_meta WHERE key = 'schema_version'`);
  const have = Number(v.rows[0]?.value ?? 0);
  if (have < SCHEMA_VERSION) throw new UsageError(`the fleet database has schema v${have}, this rtev needs v${SCHEMA_VERSION}`, "run 'rtev fleet init --db URL' again as the database owner (it only adds)");
}

/** copyPieces streams COPY data pieces into `sql` (a COPY ... FROM STDIN), waiting on the stream's drain */
export async function copyPieces(db: Client, sql: string, pieces: Buffer[]): Promise<void> {
  if (pieces.length === 0) return;
  const stream = db.query(copyFrom(sql));
  await new Promise<void>((resolve, reject) => {
    stream.on('error', reject);
    stream.on('finish', resolve);
    let i = 0;
    const pump = (): void => {
      while (i < pieces.length) {
        if (!stream.write(pieces[i++]!)) {
          stream.once('drain', pump);
          return;
        }
      }
      stream.end();
    };
    pump();
  });
}

export const COPY_RECORDS = `COPY records (${RECORD_COLUMNS.join(', ')}) FROM STDIN`;
export const COPY_CONTAINERS = 'COPY containers (chunk_id, container_id, runtime, name, image_digest, image_id, reason) FROM STDIN';
export const COPY_IMAGES = 'COPY images (chunk_id, image_digest, image_name) FROM STDIN';
export const COPY_ATTRIBUTION = 'COPY attribution (chunk_id, scope, path, purl, purl_base, version, via, root, reason, components) FROM STDIN';
