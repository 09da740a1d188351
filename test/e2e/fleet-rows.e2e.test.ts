import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import { checkContent, checkEnvelope, type ChunkFacts } from '../../src/fleet/chunk-check';
import { checkSchema, COPY_RECORDS, copyPieces, initSchema } from '../../src/fleet/pg-schema';
import { encodeRows, RECORD_COLUMNS } from '../../src/fleet/rows';
import { COPY_RECORDS_BINARY, encodeRowsBinary } from '../../src/fleet/rows-binary';
import { FleetIndex } from '../../src/fleet/query';
import { chunkBatch, sqlLiteral } from '../../src/fleet/chunk-rows';
import { loadVerifyKeyFile } from '../../src/sign/key-files';
import type { ChunkContent, SignedPredicate } from '../../src/verify';
import { rootOrSkip, tempDir } from '../helpers/collector';
import { startPostgres, type Postgres } from '../helpers/fleet-servers';
import { newKey, writeSynthetic } from '../helpers/synthetic-evidence';

/**
 * The two row builders of ingest agree: the binary COPY rows (src/fleet/rows-binary.ts, the
 * ingest path) and encodeRows' text rows (the fallback), column by column on signed synthetic
 * chunks (every event type, u64 values above 2^53, non-ASCII and lone-surrogate strings); a
 * record's (line_off, line_len) is its line in the body; a body the binary path must not take
 * goes to encodeRows; `rtev fleet init` migrates a schema v3 database with every body rebuilt
 * byte for byte, and a schema v4 database's numeric(20) u64 columns to biased int8, exactly, with
 * each row's line taken from the stored body (schema v6) and the wall_ns index dropped (schema v7);
 * the per-chunk rows as one batch of literals; a --since/--until window through its chunks' ids.
 */

const root = process.getuid?.() === 0;
let pg: Postgres;
let db: Client;
let chunks: { body: Buffer; facts: ChunkFacts; predicate: SignedPredicate }[] = [];

before(async () => {
  if (!root) return;
  pg = await startPostgres();
  const owner = new Client({ connectionString: pg.url() });
  await owner.connect();
  await initSchema(owner, { ingest: 'rtev_ingest', reader: 'rtev_reader' });
  await owner.end();
  db = new Client({ connectionString: pg.url('rtev_ingest') });
  await db.connect();
  const base = tempDir('rtev-fleet-rows-');
  const { keyFile } = newKey(path.join(base, 'keys'));
  const dir = path.join(base, 'evidence');
  await writeSynthetic(dir, keyFile, 6000, { chunkMaxBytes: 512 * 1024, hostname: 'rows-host', machineId: 'ab'.repeat(16) });
  const key = loadVerifyKeyFile(keyFile + '.pub');
  for (const name of fs.readdirSync(dir).filter((n) => n.endsWith('.dsse.json')).sort()) {
    const v = checkEnvelope(fs.readFileSync(path.join(dir, name)), 'ab'.repeat(16), [key]);
    assert.ok(v.ok, name);
    chunks.push({ body: fs.readFileSync(path.join(dir, name.replace('.dsse.json', '.ndjson'))), facts: v.facts, predicate: v.predicate });
  }
  fs.rmSync(base, { recursive: true, force: true });
});

after(async () => {
  if (!root) return;
  await db?.end().catch(() => undefined);
  pg?.stop();
});

function copyRows(pieces: Buffer[], sql = COPY_RECORDS): Promise<void> {
  return copyPieces(db, sql, pieces);
}

function comparable(c: ChunkContent): unknown {
  return { ...c, byType: Object.fromEntries([...c.byType].sort()), subjects: { files: [...c.subjects.files].sort(), containers: [...c.subjects.containers].map(([k, v]) => [k, [...v].sort()]).sort() } };
}

let nextId = 1000n;

test('binary COPY rows (the ingest path) equal encodeRows\' text rows, column by column, and the same summary', { timeout: 120_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const cols = RECORD_COLUMNS.filter((c) => c !== 'chunk_id').join(', ');
  for (const c of chunks) {
    const binId = nextId++;
    const jsId = nextId++;
    const bin = encodeRowsBinary(c.body, c.facts, binId, true);
    assert.ok(bin !== undefined, 'the binary path takes a canonical body');
    const js = encodeRows(c.body, c.facts, jsId);
    await db.query('BEGIN');
    await copyRows(bin.pieces, COPY_RECORDS_BINARY);
    await copyRows(js.pieces);
    await db.query('COMMIT');
    assert.deepEqual(comparable(bin.content), comparable(js.content), 'the same summary for the predicate check');
    assert.equal(checkContent(bin.content, c.predicate), undefined);
    const diff = await db.query(`(SELECT ${cols} FROM records WHERE chunk_id = $1 EXCEPT ALL SELECT ${cols} FROM records WHERE chunk_id = $2)
      UNION ALL (SELECT ${cols} FROM records WHERE chunk_id = $2 EXCEPT ALL SELECT ${cols} FROM records WHERE chunk_id = $1)`, [String(binId), String(jsId)]);
    assert.equal(diff.rowCount, 0, `rows differ: ${JSON.stringify(diff.rows.slice(0, 2))}`);
    const n = await db.query(`SELECT count(*) AS n, count(*) FILTER (WHERE rtev_u64(cgroup_id_biased) > 9007199254740993) AS big, count(*) FILTER (WHERE path LIKE $2) AS esc,
        count(DISTINCT type) AS types FROM records WHERE chunk_id = $1`, [String(binId), '%\udcff%']);
    assert.equal(Number(n.rows[0].n), Number(c.facts.count));
    assert.ok(Number(n.rows[0].big) > 0, 'u64 cgroup ids are exact');
    assert.ok(Number(n.rows[0].esc) > 0, 'paths with lone surrogates are stored as JSON.parse reads them');
    assert.ok(Number(n.rows[0].types) >= 5, 'every event type takes the binary path');
    // each record holds its line, and its (line_off, line_len) place it in the body: the body is the lines joined, byte for byte
    const at = await db.query<{ line_off: number; line_len: number; line: Buffer }>('SELECT line_off, line_len, line FROM records WHERE chunk_id = $1 ORDER BY line_no', [String(binId)]);
    assert.ok(at.rows.every((r) => r.line.equals(c.body.subarray(r.line_off, r.line_off + r.line_len))), 'each row\'s line is its bytes of the body');
    assert.ok(Buffer.concat(at.rows.map((r) => Buffer.concat([r.line, Buffer.from('\n')]))).equals(c.body), 'the lines are the body, byte for byte');
    const agg = await db.query<{ ok: boolean }>(`SELECT encode(sha256(string_agg(line || '\\x0a'::bytea, ''::bytea ORDER BY line_no)), 'hex') = $2 AS ok FROM records WHERE chunk_id = $1`, [String(binId), c.facts.chunkSha256]);
    assert.equal(agg.rows[0]!.ok, true, 'the rows\' lines hash to the signed chunk digest');
  }
  // u64 from digits into biased int8 (schema v5): 0, every digit count's carries, 2^32 and 2^63 around, u64 max
  const all = chunks[0]!.body.toString('utf8').split('\n');
  const line = all[0]!;
  const cg = all.find((l) => l.startsWith('{"cgroup_id":'))!;
  assert.ok(cg !== undefined, 'a line with a cgroup id');
  const u64s = ['0', '1', '9999', '12345', '123456789', '4294967295', '4294967296', '9007199254740993', '1000000000000000000',
    '7000000000000000001', '9223372036854775807', '9223372036854775808', '18446744073709551615'];
  const cases: [string, string][] = [
    ...u64s.map((v): [string, string] => ['ts_ns', line.replace(/"ts_ns":\d+}$/, `"ts_ns":${v}}`)]),
    ...[...u64s, '10000'].map((v): [string, string] => ['cgroup_id', cg.replace(/^\{"cgroup_id":\d+,/, `{"cgroup_id":${v},`)]),
  ];
  for (const [col, l] of cases) {
    const body = Buffer.from(l + '\n');
    const id = nextId;
    nextId += 2n;
    const b = encodeRowsBinary(body, chunks[0]!.facts, id, false);
    // a ts_ns this high has a wall time beyond int8: the binary path declines it (tested below)
    if (col === 'ts_ns' && BigInt(/"ts_ns":(\d+)/.exec(l)![1]!) > (1n << 63n) - 1n - chunks[0]!.facts.sealedWallNs + chunks[0]!.facts.sealedMonoNs) continue;
    assert.ok(b !== undefined, l.slice(0, 60));
    await db.query('BEGIN');
    await copyRows(b.pieces, COPY_RECORDS_BINARY);
    await copyRows(encodeRows(body, chunks[0]!.facts, id + 1n).pieces);
    const r = await db.query<{ a: string; b: string }>(`SELECT (SELECT rtev_u64(${col}_biased)::text FROM records WHERE chunk_id = $1) AS a,
      (SELECT rtev_u64(${col}_biased)::text FROM records WHERE chunk_id = $2) AS b`, [String(id), String(id + 1n)]);
    await db.query('ROLLBACK');
    const want = BigInt(new RegExp(`"${col}":(\\d+)`).exec(l)![1]!).toString();
    assert.equal(r.rows[0]!.a, want, `${col} ${want}`);
    assert.equal(r.rows[0]!.a, r.rows[0]!.b, `${col} ${want}`);
  }
  // a ts_ns whose wall time is beyond bigint, a ts_ns or a cgroup_id beyond u64: not the binary path's to decide
  // (the text rows get the database's error: ingest rejects the chunk as content-mismatch)
  const beyond = [line.replace(/"ts_ns":\d+}$/, '"ts_ns":18446744073709551615}'), line.replace(/"ts_ns":\d+}$/, '"ts_ns":99999999999999999999}'),
    cg.replace(/^\{"cgroup_id":\d+,/, '{"cgroup_id":18446744073709551616,'), cg.replace(/^\{"cgroup_id":\d+,/, '{"cgroup_id":99999999999999999999,')];
  for (const l of beyond) {
    const body = Buffer.from(l + '\n');
    assert.equal(encodeRowsBinary(body, chunks[0]!.facts, 1n, false), undefined, l.slice(0, 60));
    await db.query('BEGIN');
    const err = await copyRows(encodeRows(body, chunks[0]!.facts, nextId++).pieces).then(() => undefined, (e: { code?: string }) => e);
    await db.query('ROLLBACK');
    assert.match(String(err?.code), /^22/, `out of range for the database: ${l.slice(0, 60)}`);
  }
});

test('a body the binary path does not take goes to encodeRows, which diagnoses it', { timeout: 60_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const c = chunks[0]!;
  const lines = c.body.toString('utf8').split('\n').slice(0, -1);
  const bodies: [string, Buffer][] = [
    ['not JSON', Buffer.from([...lines.slice(0, 3), '{"broken', ...lines.slice(3)].join('\n') + '\n')],
    ['JSON but not a record', Buffer.from([...lines.slice(0, 3), '{"a":1,"ts_ns":1}', ...lines.slice(3)].join('\n') + '\n')],
    ['ts_ns not the last key', Buffer.from([lines[0]!.replace(/,"ts_ns":(\d+)}$/, '}').replace('{', '{"ts_ns":1,'), ...lines.slice(1)].join('\n') + '\n')],
    ['a carriage return', Buffer.from(lines.join('\r\n') + '\r\n')],
    ['an empty line', Buffer.from(lines.join('\n\n') + '\n')],
    ['a pid beyond int4', Buffer.from([lines[0]!.replace(/"pid":\d+/, '"pid":4294967296'), ...lines.slice(1)].join('\n') + '\n')],
  ];
  for (const [what, body] of bodies) {
    assert.equal(encodeRowsBinary(body, c.facts, 1n, true), undefined, what);
    if (what !== 'a pid beyond int4') assert.ok(encodeRows(body, c.facts, 1n).content.lineProblems.length > 0, `${what}: encodeRows reports it`);
  }
  assert.equal(encodeRowsBinary(Buffer.concat([Buffer.from(lines[0]!.slice(0, 40)), Buffer.from([0xff]), Buffer.from(lines[0]!.slice(40) + '\n')]), c.facts, 1n, true), undefined, 'invalid UTF-8');
  // a cut last line: built without it, counted as tail bytes like encodeRows does
  const cut = c.body.subarray(0, c.body.length - 10);
  const b = encodeRowsBinary(cut, c.facts, 1n, false)!;
  assert.equal(b.content.tailBytes, encodeRows(cut, c.facts, 1n).content.tailBytes);
  assert.match(String(checkContent(b.content, c.predicate)?.reason), /cut off/);
  // a value the database refuses is a data error (ingest rejects the chunk, it does not retry it forever)
  const nul = Buffer.from([lines[0]!.replace(/"comm":"[^"]*"/, '"comm":"a\\u0000b"'), ...lines.slice(1)].join('\n') + '\n');
  const refused = encodeRowsBinary(nul, c.facts, nextId++, false);
  assert.ok(refused !== undefined);
  await db.query('BEGIN');
  const err = await copyRows(refused.pieces, COPY_RECORDS_BINARY).then(() => undefined, (e: { code?: string }) => e);
  await db.query('ROLLBACK');
  assert.match(String(err?.code), /^22/, 'a NUL in a string is a data error');
});

test('rtev fleet init migrates a schema v3 database: bodies rebuilt from the lines byte for byte, records narrow', { timeout: 120_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const owner = new Client({ connectionString: pg.url() });
  await owner.connect();
  try {
    await owner.query('CREATE DATABASE rtev_v3');
  } finally {
    await owner.end();
  }
  const v3 = new Client({ connectionString: pg.url(undefined, 'rtev_v3') });
  await v3.connect();
  try {
    // a v3 database: initSchema's tables, then chunks without a body and v3's records table
    await initSchema(v3, { ingest: 'rtev_ingest', reader: 'rtev_reader' });
    await v3.query(`DROP TABLE records; UPDATE rtev_meta SET value = '3' WHERE key = 'schema_version';
      CREATE TABLE records (
        chunk_id bigint NOT NULL, host_id text NOT NULL, chain_id text NOT NULL, seq bigint NOT NULL, chunk_sha256 text NOT NULL, line_no integer NOT NULL,
        ts_ns numeric(20) NOT NULL, wall_ns bigint NOT NULL, type text NOT NULL, src text NOT NULL, pid integer NOT NULL, tid integer,
        comm text NOT NULL, cgroup_id numeric(20), container_id text, image_digest text, path text, access text,
        peer_addr text, peer_port integer, local_addr text, local_port integer, symbol text, library text, node_hash text,
        runtime text, ssl_bytes bigint, ssl_op text, line text NOT NULL, verified boolean NOT NULL DEFAULT true);
      CREATE INDEX records_chunk_line ON records (chunk_id, line_no);
      CREATE INDEX records_wall ON records USING brin (wall_ns);`);
    await assert.rejects(checkSchema(v3), /schema v3, this rtev needs v7/, 'a v3 database is refused (the hint: run rtev fleet init again)');
    const picked = chunks.slice(0, 2);
    for (const [i, c] of picked.entries()) {
      const f = c.facts;
      await v3.query(`INSERT INTO chunks (chunk_id, host_id, chain_id, seq, chunk_sha256, envelope_sha256, run_id, run_chunk_index, final, hostname, machine_id, boot_id,
          opened_wall_ns, opened_mono_ns, sealed_wall_ns, sealed_mono_ns, count, bytes, lost, complete, probes, ledger_json, keyid, stream_seq, envelope)
        VALUES ($1, $2, $3, $4, $5, $6, 'run', 0, false, 'h', $2, 'b', 0, 0, 0, 0, $7, $8, 0, true, '', '{}', 'k', $1, '{}')`,
      [i + 1, f.hostId, f.chainId, String(f.seq), f.chunkSha256, `e${i}`, String(f.count), String(c.body.length)]);
      const lines = c.body.toString('utf8').split('\n').slice(0, -1);
      for (let j = 0; j < lines.length; j += 500) {
        const part = lines.slice(j, j + 500);
        await v3.query(`INSERT INTO records (chunk_id, host_id, chain_id, seq, chunk_sha256, line_no, ts_ns, wall_ns, type, src, pid, comm, path, line)
          SELECT $1, $2, $3, $4, $5, j + $6, 1, 2, 'file_open', 's', 1, 'c', 'p' || (j + $6), l FROM unnest($7::text[]) WITH ORDINALITY AS u(l, j)`,
        [i + 1, f.hostId, f.chainId, String(f.seq), f.chunkSha256, j, part]);
      }
    }
    const done = await initSchema(v3, { ingest: 'rtev_ingest', reader: 'rtev_reader' });
    assert.ok(done.some((d) => /migrated the records of 2 chunk/.test(d)), done.join('; '));
    await checkSchema(v3);
    for (const [i, c] of picked.entries()) {
      const body = await v3.query<{ body: Buffer }>(`SELECT string_agg(line || '\\x0a'::bytea, ''::bytea ORDER BY line_no) AS body FROM records WHERE chunk_id = $1`, [i + 1]);
      assert.ok(body.rows[0]!.body.equals(c.body), `chunk ${i + 1}: the lines joined are the shipped body`);
      const rows = await v3.query<{ line_no: number; path: string; line: string; off: Buffer }>(`SELECT r.line_no, r.path, convert_from(r.line, 'UTF8') AS line,
          substring(b.body FROM r.line_off + 1 FOR r.line_len) AS off
        FROM records r, (SELECT string_agg(line || '\\x0a'::bytea, ''::bytea ORDER BY line_no) AS body FROM records WHERE chunk_id = $1) b WHERE r.chunk_id = $1 ORDER BY r.line_no`, [i + 1]);
      assert.deepEqual(rows.rows.map((r) => r.line), c.body.toString('utf8').split('\n').slice(0, -1), 'every line as bytes of its row');
      assert.ok(rows.rows.every((r) => r.off.toString('utf8') === r.line), 'line_off/line_len place each line in the body');
      assert.ok(rows.rows.every((r) => r.path === `p${r.line_no}`), 'the typed columns move with their rows');
    }
    const cols = await v3.query(`SELECT column_name FROM information_schema.columns WHERE table_name = 'records' AND column_name IN ('host_id', 'chain_id', 'chunk_sha256')`);
    assert.equal(cols.rowCount, 0, 'the per-row constants are gone from records');
    assert.equal((await v3.query(`SELECT data_type FROM information_schema.columns WHERE table_name = 'records' AND column_name = 'line'`)).rows[0].data_type, 'bytea');
    assert.equal((await v3.query(`SELECT to_regclass('records_v3') AS t`)).rows[0].t, null);
  } finally {
    await v3.end();
  }
});

test('rtev fleet init migrates a schema v4 database: numeric(20) u64 columns become biased int8, exactly, in the same order', { timeout: 120_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const owner = new Client({ connectionString: pg.url() });
  await owner.connect();
  try {
    await owner.query('CREATE DATABASE rtev_v4');
  } finally {
    await owner.end();
  }
  const v4 = new Client({ connectionString: pg.url(undefined, 'rtev_v4') });
  await v4.connect();
  try {
    // a v4 database: today's tables, then v4's records table (numeric(20) u64 columns)
    await initSchema(v4, { ingest: 'rtev_ingest', reader: 'rtev_reader' });
    await v4.query(`DROP TABLE records; UPDATE rtev_meta SET value = '4' WHERE key = 'schema_version'; ALTER TABLE chunks ADD COLUMN body bytea;
      CREATE TABLE records (
        chunk_id bigint NOT NULL, wall_ns bigint NOT NULL, ssl_bytes bigint, line_no integer NOT NULL, line_off integer NOT NULL, line_len integer NOT NULL,
        pid integer NOT NULL, tid integer, peer_port integer, local_port integer, ts_ns numeric(20) NOT NULL, cgroup_id numeric(20),
        type text NOT NULL, src text NOT NULL, comm text NOT NULL, container_id text, image_digest text, path text, access text,
        peer_addr text, local_addr text, symbol text, library text, node_hash text, runtime text, ssl_op text);
      CREATE INDEX records_chunk ON records USING brin (chunk_id) WITH (pages_per_range = 32);
      CREATE INDEX records_wall ON records USING brin (wall_ns);`);
    await assert.rejects(checkSchema(v4), /schema v4, this rtev needs v7/);
    const c = chunks[0]!;
    const f = c.facts;
    await v4.query(`INSERT INTO chunks (chunk_id, host_id, chain_id, seq, chunk_sha256, envelope_sha256, run_id, run_chunk_index, final, hostname, machine_id, boot_id,
        opened_wall_ns, opened_mono_ns, sealed_wall_ns, sealed_mono_ns, count, bytes, lost, complete, probes, ledger_json, keyid, stream_seq, envelope, body)
      VALUES (1, $1, $2, $3, $4, 'e1', 'run', 0, false, 'h', $1, 'b', 0, 0, 0, 0, $5, $6, 0, true, '', '{}', 'k', 1, '{}', $7)`,
    [f.hostId, f.chainId, String(f.seq), f.chunkSha256, String(f.count), String(c.body.length), c.body]);
    // the v4 builder's rows (numeric u64 columns) and, on two more lines, a cgroup_id at u64 max and one beyond u64
    const rows = encodeRowsBinary(c.body, f, 1n, false, { numericU64: true, line: false })!;
    await copyPieces(v4, COPY_RECORDS_BINARY.replace('ts_ns_biased', 'ts_ns').replace('cgroup_id_biased', 'cgroup_id').replace(', line)', ')'), rows.pieces);
    await v4.query(`INSERT INTO chunks (chunk_id, host_id, chain_id, seq, chunk_sha256, envelope_sha256, run_id, run_chunk_index, final, hostname, machine_id, boot_id,
        opened_wall_ns, opened_mono_ns, sealed_wall_ns, sealed_mono_ns, count, bytes, lost, complete, probes, ledger_json, keyid, stream_seq, envelope, body)
      VALUES (2, $1, $2, 999, 'x', 'e2', 'run', 0, false, 'h', $1, 'b', 0, 0, 0, 0, 2, 2, 0, true, '', '{}', 'k', 2, '{}', '\\x7b7d'::bytea)`, [f.hostId, f.chainId]);
    await v4.query(`INSERT INTO records (chunk_id, wall_ns, line_no, line_off, line_len, pid, ts_ns, cgroup_id, type, src, comm)
      VALUES (2, 0, 1, 0, 1, 1, 18446744073709551615, 18446744073709551615, 't', 's', 'c'), (2, 0, 2, 1, 1, 1, 0, 99999999999999999999, 't', 's', 'c')`);
    const before = await v4.query<{ ts: string; cg: string | null }>('SELECT ts_ns::text AS ts, cgroup_id::text AS cg FROM records WHERE chunk_id = 1 ORDER BY ts_ns, line_no');
    const done = await initSchema(v4, { ingest: 'rtev_ingest', reader: 'rtev_reader' });
    assert.ok(done.some((d) => /migrated records to schema v5/.test(d)), done.join('; '));
    assert.ok(done.some((d) => /migrated records to schema v6/.test(d)), done.join('; '));
    assert.ok(done.some((d) => /schema v7: dropped the BRIN index records_wall/.test(d)), done.join('; '));
    assert.deepEqual((await v4.query(`SELECT indexname FROM pg_indexes WHERE tablename = 'records' ORDER BY 1`)).rows.map((r) => r.indexname), ['records_chunk'], 'v7: one index on records');
    assert.equal((await v4.query(`SELECT 1 FROM information_schema.columns WHERE table_name = 'chunks' AND column_name = 'body'`)).rowCount, 0, 'chunks.body is gone');
    const lines = await v4.query<{ line: Buffer }>('SELECT line FROM records WHERE chunk_id = 1 ORDER BY line_no');
    assert.ok(Buffer.concat(lines.rows.map((r) => Buffer.concat([r.line, Buffer.from('\n')]))).equals(c.body), 'each row took its line from the body, byte for byte');
    assert.deepEqual((await v4.query<{ l: string }>(`SELECT convert_from(line, 'UTF8') AS l FROM records WHERE chunk_id = 2 ORDER BY line_no`)).rows.map((r) => r.l), ['{', '}']);
    await checkSchema(v4);
    const after = await v4.query<{ ts: string; cg: string | null }>('SELECT rtev_u64(ts_ns_biased)::text AS ts, rtev_u64(cgroup_id_biased)::text AS cg FROM records WHERE chunk_id = 1 ORDER BY ts_ns_biased, line_no');
    assert.deepEqual(after.rows, before.rows, 'every u64 value the same, in the same order');
    const edge = await v4.query<{ ts: string; cg: string | null }>('SELECT rtev_u64(ts_ns_biased)::text AS ts, rtev_u64(cgroup_id_biased)::text AS cg FROM records WHERE chunk_id = 2 ORDER BY line_no');
    assert.deepEqual(edge.rows, [{ ts: '18446744073709551615', cg: '18446744073709551615' }, { ts: '0', cg: null }], 'u64 max kept; a cgroup_id beyond u64 becomes NULL');
    // the same columns as rows built for v5 now
    const cols = RECORD_COLUMNS.filter((x) => x !== 'chunk_id').join(', ');
    await copyPieces(v4, COPY_RECORDS_BINARY, encodeRowsBinary(c.body, f, 3n, false)!.pieces);
    const diff = await v4.query(`(SELECT ${cols} FROM records WHERE chunk_id = 1 EXCEPT ALL SELECT ${cols} FROM records WHERE chunk_id = 3)
      UNION ALL (SELECT ${cols} FROM records WHERE chunk_id = 3 EXCEPT ALL SELECT ${cols} FROM records WHERE chunk_id = 1)`);
    assert.equal(diff.rowCount, 0, 'migrated rows equal the rows v5 builds');
    // query --db reads them back: ts_ns exact and in ts order, each line byte for byte
    await v4.query('DELETE FROM records WHERE chunk_id <> 1');
    const fleet = await FleetIndex.open(pg.url(undefined, 'rtev_v4'));
    try {
      const got: { ts: bigint; line: string }[] = [];
      for await (const r of fleet.rows({})) got.push({ ts: r.tsNs, line: r.line });
      const want = c.body.toString('utf8').split('\n').slice(0, -1).map((line) => ({ ts: BigInt(/"ts_ns":(\d+)}$/.exec(line)![1]!), line }))
        .sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
      assert.deepEqual(got.map((g) => g.ts), want.map((w) => w.ts));
      assert.deepEqual(new Set(got.map((g) => g.line)), new Set(want.map((w) => w.line)));
    } finally {
      await fleet.close();
    }
  } finally {
    await v4.end();
  }
});

test('the per-chunk batch (literals, one round trip) stores exactly what parameters store, quotes and backslashes included', { timeout: 60_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const nasty = ['plain', "it's", 'back\\slash', "both ' and \\", "E'x'", '$$ dollar $$', "'); DROP TABLE chunks; --", '\\\'', "''", '',
    'line\nbreak\ttab\r', 'ünïcödé ✓ 𝄞', 'lone \udcff surrogate', '\\x41\\u0041', '%_*?'];
  for (const scs of ['on', 'off']) {
    // (the literals do not depend on standard_conforming_strings: a backslash only appears inside E'')
    await db.query(`SET standard_conforming_strings = ${scs}`);
    for (const s of nasty) {
      const lit = await db.query<{ v: string }>(`SELECT ${sqlLiteral(s)}::text AS v`);
      const par = await db.query<{ v: string }>('SELECT $1::text AS v', [s]);
      assert.equal(lit.rows[0]!.v, par.rows[0]!.v, `standard_conforming_strings ${scs}: ${JSON.stringify(s)}`);
    }
  }
  await db.query('RESET standard_conforming_strings');
  const c = chunks[0]!;
  const weird = "host 'quoted' \\ back";
  const envelope = `{"weird":"${weird.replace(/\\/g, '\\\\')}","é":"\u2713"}`;
  const f: ChunkFacts = { ...c.facts, hostId: 'batch-host', hostname: weird, envelopeSha256: 'f'.repeat(64), ledgerJson: `{"x":"${"'\\\\'"}"}` };
  const id = nextId++;
  const sql = chunkBatch({ f, chunkId: id, streamSeq: 77, envelope, publishedMs: 1_764_576_000_123, host: 'new' });
  assert.ok(sql !== undefined);
  await db.query('BEGIN');
  await db.query(sql);
  await db.query('COMMIT');
  const other = new Client({ connectionString: pg.url('rtev_ingest') });
  await other.connect();
  try {
    const k = await other.query(`SELECT chunk_id, hostname, envelope, ledger_json, seq, count, min_ts_ns, max_ts_ns, opened_mono_ns, stream_seq, published_at = to_timestamp(1764576000.123) AS pub
      FROM chunks WHERE envelope_sha256 = $1`, [f.envelopeSha256]);
    assert.equal(k.rowCount, 1);
    const row = k.rows[0]!;
    assert.deepEqual([row.chunk_id, row.hostname, row.envelope, row.ledger_json, row.seq, row.count, row.min_ts_ns, row.max_ts_ns, row.opened_mono_ns, row.stream_seq, row.pub],
      [String(id), weird, envelope, f.ledgerJson, String(f.seq), String(f.count), String(f.minTs), String(f.maxTs), String(f.openedMonoNs), '77', true]);
    const h = await other.query('SELECT hostname, head_seq, head_envelope_sha256, chunks, records FROM hosts WHERE host_id = $1', [f.hostId]);
    assert.deepEqual(h.rows[0], { hostname: weird, head_seq: String(f.seq), head_envelope_sha256: f.envelopeSha256, chunks: '1', records: String(f.count) });
    const l = await other.query('SELECT probe, submitted, in_chunk FROM chunk_ledger WHERE host_id = $1 ORDER BY probe', [f.hostId]);
    assert.deepEqual(l.rows, f.probes.map((p) => ({ probe: p.probe, submitted: String(p.values['kernel.submitted']), in_chunk: String(p.values.in_chunk) })).sort((a, b) => (a.probe < b.probe ? -1 : 1)));
    const hk = await other.query('SELECT keyid, chunks FROM host_keys WHERE host_id = $1', [f.hostId]);
    assert.deepEqual(hk.rows, [{ keyid: f.keyid, chunks: '1' }]);
  } finally {
    await other.end();
  }
  // a failing batch stops at its first error and aborts the transaction
  await db.query('BEGIN');
  await assert.rejects(db.query(chunkBatch({ f: { ...f, seq: f.seq + 1n }, chunkId: id, streamSeq: 78, envelope, publishedMs: 1, host: 'head' })!), /duplicate key/);
  await assert.rejects(db.query('SELECT 1'), /current transaction is aborted/);
  await db.query('ROLLBACK');
  const n = await db.query('SELECT count(*) AS n FROM chunks WHERE host_id = $1', [f.hostId]);
  assert.equal(n.rows[0].n, '1');
});

test('a --since/--until window (schema v7: through its chunks\' ids, no wall_ns index) returns exactly the records whose wall_ns is in it', { timeout: 120_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const host = 'window-host';
  const ids: bigint[] = [];
  for (const [i, c] of chunks.entries()) {
    // odd chunks: an opened anchor 7 s behind the sealed one (a clock step), so each record's wall_ns is ts_ns + one of two deltas
    const f: ChunkFacts = { ...c.facts, hostId: host, hostname: host, machineId: host, envelopeSha256: (0xa000 + i).toString(16).padStart(64, '0'),
      openedWallNs: c.facts.openedWallNs - (i % 2 === 1 ? 7_000_000_000n : 0n) };
    const id = nextId++;
    ids.push(id);
    const rows = encodeRowsBinary(c.body, f, id, false);
    assert.ok(rows !== undefined);
    await db.query('BEGIN');
    await copyRows(rows.pieces, COPY_RECORDS_BINARY);
    await db.query(chunkBatch({ f, chunkId: id, streamSeq: 1000 + i, envelope: '{}', publishedMs: 1, host: i === 0 ? 'new' : 'head' })!);
    await db.query('COMMIT');
  }
  const walls = (await db.query<{ w: string }>(`SELECT DISTINCT wall_ns AS w FROM (SELECT chunk_id, min(wall_ns) AS a, max(wall_ns) AS b FROM records WHERE chunk_id = ANY($1::bigint[]) GROUP BY 1) x,
      LATERAL (VALUES (a - 1), (a), (a + 1), (b - 1), (b), (b + 1)) v(wall_ns) ORDER BY 1`, [ids.map(String)])).rows.map((r) => BigInt(r.w));
  const fleet = await FleetIndex.open(pg.url('rtev_reader'));
  try {
    const cases: { since?: bigint; until?: bigint }[] = [{}, { since: walls[0]! - 1n }, { until: walls.at(-1)! + 1n }, { since: walls.at(-1)! + 1n }, { until: walls[0]! }];
    for (let i = 0; i < walls.length; i += 3) cases.push({ since: walls[i]! }, { until: walls[i]! }, { since: walls[i]!, until: walls[Math.min(walls.length - 1, i + 4)]! });
    for (const w of cases) {
      const got: string[] = [];
      for await (const r of fleet.rows({ hosts: [host], ...(w.since !== undefined ? { sinceWallNs: w.since } : {}), ...(w.until !== undefined ? { untilWallNs: w.until } : {}) })) got.push(r.line);
      const want = await db.query<{ line: string }>(`SELECT convert_from(line, 'UTF8') AS line FROM records WHERE chunk_id = ANY($1::bigint[]) AND wall_ns >= $2::bigint AND wall_ns < $3::bigint`,
        [ids.map(String), String(w.since ?? -(2n ** 63n)), String(w.until ?? 2n ** 63n - 1n)]);
      assert.equal(got.length, want.rowCount, `window ${w.since}..${w.until}`);
      assert.deepEqual([...got].sort(), want.rows.map((r) => r.line).sort(), `window ${w.since}..${w.until}`);
    }
    // the plan reads the window's chunk range through the chunk_id BRIN (no wall_ns index left)
    const idx = await db.query(`SELECT indexname FROM pg_indexes WHERE tablename = 'records' ORDER BY 1`);
    assert.deepEqual(idx.rows.map((r) => r.indexname), ['records_chunk']);
  } finally {
    await fleet.close();
  }
});
