import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { checkContent, checkEnvelope, type ChunkFacts } from '../../src/fleet/chunk-check';
import { COPY_RECORDS, initSchema } from '../../src/fleet/pg-schema';
import { encodeRows, RECORD_COLUMNS } from '../../src/fleet/rows';
import { COPY_RECORDS_BINARY, encodeRowsBinary } from '../../src/fleet/rows-binary';
import { buildRowsInDb, STAGE_DDL, STAGE_SETTINGS, stageable } from '../../src/fleet/stage';
import { loadVerifyKeyFile } from '../../src/sign/key-files';
import type { ChunkContent, SignedPredicate } from '../../src/verify';
import { rootOrSkip, tempDir } from '../helpers/collector';
import { startPostgres, type Postgres } from '../helpers/fleet-servers';
import { newKey, writeSynthetic } from '../helpers/synthetic-evidence';

/**
 * The two row builders of ingest agree: PostgreSQL deriving the columns from the staged lines
 * (src/fleet/stage.ts, the normal path) and encodeRows in JavaScript (the fallback), column by
 * column on signed synthetic chunks (every event type, u64 values above 2^53, non-ASCII and
 * lone-surrogate strings), and a body the server path must not take falls back.
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
  await db.query(STAGE_DDL);
  await db.query(STAGE_SETTINGS);
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

async function copyRows(pieces: Buffer[], sql = COPY_RECORDS): Promise<void> {
  const stream = db.query(copyFrom(sql));
  await new Promise<void>((resolve, reject) => {
    stream.on('error', reject);
    stream.on('finish', resolve);
    for (const p of pieces) stream.write(p);
    stream.end();
  });
}

function comparable(c: ChunkContent): unknown {
  return { ...c, byType: Object.fromEntries([...c.byType].sort()), subjects: { files: [...c.subjects.files].sort(), containers: [...c.subjects.containers].map(([k, v]) => [k, [...v].sort()]).sort() } };
}

let nextId = 1000n;

test('PostgreSQL derives the same records as encodeRows, column by column, and the same summary', { timeout: 120_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  assert.ok(chunks.length >= 3, `${chunks.length} chunks`);
  const cols = RECORD_COLUMNS.filter((c) => c !== 'chunk_id').join(', ');
  for (const c of chunks) {
    const sqlId = nextId++;
    const jsId = nextId++;
    await db.query('BEGIN');
    const staged = await buildRowsInDb(db, c.body, c.facts, sqlId, true);
    assert.ok(staged !== undefined, 'the server path takes a canonical body');
    const js = encodeRows(c.body, c.facts, jsId);
    await copyRows(js.pieces);
    await db.query('COMMIT');
    assert.deepEqual(comparable(staged.content), comparable(js.content), 'the same summary for the predicate check');
    assert.equal(checkContent(staged.content, c.predicate), undefined);
    const diff = await db.query(`(SELECT ${cols} FROM records WHERE chunk_id = $1 EXCEPT ALL SELECT ${cols} FROM records WHERE chunk_id = $2)
      UNION ALL (SELECT ${cols} FROM records WHERE chunk_id = $2 EXCEPT ALL SELECT ${cols} FROM records WHERE chunk_id = $1)`, [String(sqlId), String(jsId)]);
    assert.equal(diff.rowCount, 0, `rows differ: ${JSON.stringify(diff.rows.slice(0, 2))}`);
    const n = await db.query('SELECT count(*) AS n, count(*) FILTER (WHERE cgroup_id > 9007199254740993) AS big, count(*) FILTER (WHERE line LIKE $2) AS esc FROM records WHERE chunk_id = $1', [String(sqlId), '%\\\\udcff%']);
    assert.equal(Number(n.rows[0].n), staged.records);
    assert.ok(Number(n.rows[0].big) > 0, 'u64 cgroup ids are exact');
    assert.ok(Number(n.rows[0].esc) > 0, 'lines with lone surrogate escapes are stored as shipped');
  }
  // the stored lines are the body, byte for byte
  const c = chunks[0]!;
  const id = nextId++;
  await db.query('BEGIN');
  await buildRowsInDb(db, c.body, c.facts, id, false);
  await db.query('COMMIT');
  const lines = await db.query<{ line: string }>('SELECT line FROM records WHERE chunk_id = $1 ORDER BY line_no', [String(id)]);
  assert.ok(Buffer.from(lines.rows.map((r) => r.line + '\n').join('')).equals(c.body));
});

test('a body the server path does not take falls back, and nothing of it stays staged', { timeout: 60_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const c = chunks[0]!;
  const lines = c.body.toString('utf8').split('\n').slice(0, -1);
  const bodies: [string, Buffer][] = [
    ['not JSON', Buffer.from([...lines.slice(0, 3), '{"broken', ...lines.slice(3)].join('\n') + '\n')],
    ['JSON but not a record', Buffer.from([...lines.slice(0, 3), '{"a":1}', ...lines.slice(3)].join('\n') + '\n')],
    ['ts_ns not the last key', Buffer.from([lines[0]!.replace(/,"ts_ns":(\d+)}$/, '}').replace('{', '{"ts_ns":1,'), ...lines.slice(1)].join('\n') + '\n')],
    ['a carriage return', Buffer.from(lines.join('\r\n') + '\r\n')],
    ['an empty line', Buffer.from(lines.join('\n\n') + '\n')],
    ['invalid UTF-8', Buffer.concat([Buffer.from(lines[0]!.slice(0, 40)), Buffer.from([0xff]), Buffer.from(lines[0]!.slice(40) + '\n')])],
  ];
  for (const [what, body] of bodies) {
    await db.query('BEGIN');
    const staged = await buildRowsInDb(db, body, c.facts, nextId++, true);
    assert.equal(staged, undefined, what);
    const left = await db.query('SELECT count(*) AS n FROM rtev_stage');
    await db.query('ROLLBACK');
    assert.equal(left.rows[0].n, '0', `${what}: the savepoint undid the staging`);
    assert.ok(encodeRows(body, c.facts, 1n).content.lineProblems.length > 0 || 'why' in stageable(body) || what === 'invalid UTF-8', `${what}: encodeRows reports it`);
  }
  // a cut last line: staged without it, counted as tail bytes like encodeRows does
  const cut = c.body.subarray(0, c.body.length - 10);
  await db.query('BEGIN');
  const staged = await buildRowsInDb(db, cut, c.facts, nextId++, false);
  await db.query('ROLLBACK');
  assert.ok(staged !== undefined);
  assert.equal(staged.content.tailBytes, encodeRows(cut, c.facts, 1n).content.tailBytes);
  assert.match(String(checkContent(staged.content, c.predicate)?.reason), /cut off/);
});

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
    const n = await db.query(`SELECT count(*) AS n, count(*) FILTER (WHERE cgroup_id > 9007199254740993) AS big, count(*) FILTER (WHERE line LIKE $2) AS esc,
        count(DISTINCT type) AS types FROM records WHERE chunk_id = $1`, [String(binId), '%\\\\udcff%']);
    assert.equal(Number(n.rows[0].n), Number(c.facts.count));
    assert.ok(Number(n.rows[0].big) > 0, 'u64 cgroup ids are exact');
    assert.ok(Number(n.rows[0].esc) > 0, 'lines with lone surrogate escapes are stored as shipped');
    assert.ok(Number(n.rows[0].types) >= 5, 'every event type takes the binary path');
    const lines = await db.query<{ line: string }>('SELECT line FROM records WHERE chunk_id = $1 ORDER BY line_no', [String(binId)]);
    assert.ok(Buffer.from(lines.rows.map((r) => r.line + '\n').join('')).equals(c.body), 'the stored lines are the body, byte for byte');
  }
  // numeric from digits: 0, every group length (ts_ns), up to u64 max and 20 nines (cgroup_id)
  const all = chunks[0]!.body.toString('utf8').split('\n');
  const line = all[0]!;
  const cg = all.find((l) => l.startsWith('{"cgroup_id":'))!;
  assert.ok(cg !== undefined, 'a line with a cgroup id');
  const cases: [string, string][] = [
    ...['0', '1', '12345', '123456789', '1000000000000000000', '7000000000000000001'].map((v): [string, string] => ['ts_ns', line.replace(/"ts_ns":\d+}$/, `"ts_ns":${v}}`)]),
    ...['0', '10000', '9007199254740993', '18446744073709551615', '99999999999999999999'].map((v): [string, string] => ['cgroup_id', cg.replace(/^\{"cgroup_id":\d+,/, `{"cgroup_id":${v},`)]),
  ];
  for (const [col, l] of cases) {
    const body = Buffer.from(l + '\n');
    const id = nextId;
    nextId += 2n;
    const b = encodeRowsBinary(body, chunks[0]!.facts, id, false);
    assert.ok(b !== undefined, l.slice(0, 60));
    await db.query('BEGIN');
    await copyRows(b.pieces, COPY_RECORDS_BINARY);
    await copyRows(encodeRows(body, chunks[0]!.facts, id + 1n).pieces);
    const r = await db.query<{ a: string; b: string }>(`SELECT (SELECT ${col}::text FROM records WHERE chunk_id = $1) AS a, (SELECT ${col}::text FROM records WHERE chunk_id = $2) AS b`, [String(id), String(id + 1n)]);
    await db.query('ROLLBACK');
    const want = BigInt(new RegExp(`"${col}":(\\d+)`).exec(l)![1]!).toString();
    assert.equal(r.rows[0]!.a, want, `${col} ${want}`);
    assert.equal(r.rows[0]!.a, r.rows[0]!.b, `${col} ${want}`);
  }
  // a ts_ns whose wall time is beyond bigint: not the binary path's to decide (the text rows get the database's error)
  assert.equal(encodeRowsBinary(Buffer.from(line.replace(/"ts_ns":\d+}$/, '"ts_ns":99999999999999999999}') + '\n'), chunks[0]!.facts, 1n, false), undefined);
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
