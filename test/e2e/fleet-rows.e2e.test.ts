import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { checkContent, checkEnvelope, type ChunkFacts } from '../../src/fleet/chunk-check';
import { COPY_RECORDS, initSchema } from '../../src/fleet/pg-schema';
import { encodeRows, RECORD_COLUMNS } from '../../src/fleet/rows';
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

async function copyRows(pieces: Buffer[]): Promise<void> {
  const stream = db.query(copyFrom(COPY_RECORDS));
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
