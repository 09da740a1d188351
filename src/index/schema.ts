/**
 * Tables of the evidence index (/work/coord/iface-index.md). The index is derived data:
 * every row comes from a sealed chunk whose envelope signature and digest verified, and the
 * whole file can be deleted and rebuilt from the chunks at any time.
 */

export const INDEX_FORMAT = 'rtev-evidence-index';
/** bump when a table changes: an index of another version is rebuilt */
export const INDEX_VERSION = '3';

export const RECORD_COLUMNS = [
  ['chunk_id', 'UINTEGER'], ['seq', 'UBIGINT'], ['line_no', 'UINTEGER'],
  ['ts_ns', 'UBIGINT'], ['wall_ns', 'BIGINT'], ['type', 'VARCHAR'], ['src', 'VARCHAR'], ['pid', 'UINTEGER'], ['tid', 'UINTEGER'],
  ['comm', 'VARCHAR'], ['cgroup_id', 'UBIGINT'], ['container_id', 'VARCHAR'], ['image_digest', 'VARCHAR'],
  ['path', 'VARCHAR'], ['access', 'VARCHAR'], ['peer_addr', 'VARCHAR'], ['peer_port', 'INTEGER'], ['local_addr', 'VARCHAR'], ['local_port', 'INTEGER'],
  ['symbol', 'VARCHAR'], ['library', 'VARCHAR'], ['node_hash', 'VARCHAR'], ['runtime', 'VARCHAR'], ['ssl_bytes', 'BIGINT'], ['ssl_op', 'VARCHAR'],
  // where the original line is in its chunk, and the first 64 bits of its sha256 (rows() checks the bytes it serves)
  ['line_offset', 'UBIGINT'], ['line_len', 'UINTEGER'], ['line_sha', 'UBIGINT'], ['verified', 'BOOLEAN'],
] as const;

/** The JSON shape read_json parses a record line into (unknown keys are ignored). */
export const RECORD_JSON_COLUMNS = `{ts_ns: 'UBIGINT', src: 'VARCHAR', pid: 'UINTEGER', tid: 'UINTEGER', comm: 'VARCHAR', cgroup_id: 'UBIGINT',
  container_id: 'VARCHAR', image_digest: 'VARCHAR', event: 'STRUCT(type VARCHAR, path VARCHAR, filename VARCHAR, access VARCHAR,
  addr VARCHAR, port INTEGER, daddr VARCHAR, dport INTEGER, saddr VARCHAR, sport INTEGER, oldstate VARCHAR, newstate VARCHAR,
  symbol VARCHAR, library VARCHAR, node_hash VARCHAR, runtime VARCHAR, bytes BIGINT, operation VARCHAR)'}`;

/** The select list that maps a parsed line j and its raw text l to the records columns (after chunk_id, seq). */
export const recordSelect = (wallExpr: string): string => `l.line_no, j.ts_ns, ${wallExpr}, j.event.type, j.src, j.pid, j.tid, j.comm, j.cgroup_id, j.container_id, j.image_digest,
  CASE j.event.type WHEN 'file_open' THEN j.event.path WHEN 'process_exec' THEN j.event.filename END, j.event.access,
  CASE j.event.type WHEN 'net_connect' THEN j.event.addr WHEN 'tcp_state' THEN j.event.daddr END,
  CASE j.event.type WHEN 'net_connect' THEN j.event.port WHEN 'tcp_state' THEN j.event.dport END,
  CASE j.event.type WHEN 'tcp_state' THEN j.event.saddr END, CASE j.event.type WHEN 'tcp_state' THEN j.event.sport END,
  j.event.symbol, j.event.library, j.event.node_hash, j.event.runtime, j.event.bytes, j.event.operation, l.line_offset, l.line_len, l.line_sha`;

/**
 * Per-chunk aggregates of the records, written when a chunk is indexed (aggregateChunk() in
 * index.ts) and deleted with it: what `rtev report` reads instead of the records
 * (src/report/index-observations.ts). `product` is the record's product (iface-observations.md):
 * 'host' without container, else its own image digest, else its container's image in the
 * signed facts of its own chunk; agg_products keeps the records without a product (NULL).
 * `verified` is the chunk's (records.verified). The ref_* columns are the earliest record of the
 * group in the chunk (wall_ns, then line_no); refs the 5 earliest.
 */
export const AGGREGATE_TABLES = ['agg_products', 'agg_files', 'agg_hits', 'agg_activity'] as const;
export const AGGREGATE_SQL = [
  `CREATE TABLE agg_products (chunk_id UINTEGER, verified BOOLEAN, product VARCHAR, container_id VARCHAR, n UBIGINT)`,
  `CREATE TABLE agg_files (chunk_id UINTEGER, verified BOOLEAN, product VARCHAR, scope VARCHAR, path VARCHAR, n UBIGINT, first_wall BIGINT, last_wall BIGINT,
    ref_line UINTEGER, ref_ts UBIGINT, ref_wall BIGINT, ref_pid UINTEGER, ref_comm VARCHAR, ref_container VARCHAR, ref_image VARCHAR)`,
  `CREATE TABLE agg_hits (chunk_id UINTEGER, verified BOOLEAN, product VARCHAR, library VARCHAR, symbol VARCHAR, node_hash VARCHAR, runtime VARCHAR,
    n UBIGINT, first_wall BIGINT, last_wall BIGINT,
    refs STRUCT(line_no UINTEGER, ts_ns UBIGINT, wall_ns BIGINT, pid UINTEGER, comm VARCHAR, container_id VARCHAR, image_digest VARCHAR)[])`,
  // sec = floor(wall_ns / 1e9)
  `CREATE TABLE agg_activity (chunk_id UINTEGER, verified BOOLEAN, product VARCHAR, type VARCHAR, sec BIGINT, n UBIGINT)`,
];

export const SCHEMA_SQL = [
  `CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)`,
  `CREATE TABLE chunks (
    chunk_id UINTEGER, dir VARCHAR, seq UBIGINT, file VARCHAR,
    stat_key VARCHAR, status VARCHAR, reason VARCHAR, rows_indexed BOOLEAN,
    chain_id VARCHAR, chunk_sha256 VARCHAR, envelope_sha256 VARCHAR, prev_envelope_sha256 VARCHAR,
    run_id VARCHAR, run_chunk_index UBIGINT, final BOOLEAN,
    hostname VARCHAR, machine_id VARCHAR, boot_id VARCHAR,
    opened_wall_ns BIGINT, opened_mono_ns UBIGINT, sealed_wall_ns BIGINT, sealed_mono_ns UBIGINT,
    min_ts_ns UBIGINT, max_ts_ns UBIGINT, count UBIGINT, lost UBIGINT, complete BOOLEAN,
    probes VARCHAR, ledger_json VARCHAR, function_calls_json VARCHAR, restart_json VARCHAR, verified BOOLEAN)`,
  `CREATE TABLE records (${RECORD_COLUMNS.map(([n, t]) => `${n} ${t}`).join(', ')})`,
  // from the signed attribution field of the chunk predicate (h14p): one row per container name (name NULL if none)
  `CREATE TABLE containers (chunk_id UINTEGER, container_id VARCHAR, runtime VARCHAR, name VARCHAR, image_digest VARCHAR, image_id VARCHAR, reason VARCHAR)`,
  `CREATE TABLE images (chunk_id UINTEGER, image_digest VARCHAR, image_name VARCHAR)`,
  // purl_base: pkg:type/namespace/name decoded; version: decoded version (NULL if none)
  `CREATE TABLE attribution (chunk_id UINTEGER, scope VARCHAR, path VARCHAR, purl VARCHAR, purl_base VARCHAR, version VARCHAR, via VARCHAR, root VARCHAR, reason VARCHAR, components VARCHAR)`,
  ...AGGREGATE_SQL,
];
