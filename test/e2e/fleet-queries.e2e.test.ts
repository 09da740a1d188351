import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rootOrSkip, runRtev, tempDir } from '../helpers/collector';
import { startNatsCluster, startPostgres, type NatsCluster, type Postgres } from '../helpers/fleet-servers';
import { newKey, writeSynthetic } from '../helpers/synthetic-evidence';

/**
 * Fleet queries give what the same command gives on the host's own directory: two hosts of
 * signed synthetic evidence (every event type, containers with images, exact function call
 * counts, u64 values above 2^53, non-UTF-8 names) shipped through a real NATS JetStream and
 * indexed by `rtev ingest --once` into a real PostgreSQL; then `query`, `summary` (and
 * `report`) with --db --host equal their output on the directory.
 */

const root = process.getuid?.() === 0;
let base: string;
let nats: NatsCluster;
let pg: Postgres;
const hosts: { name: string; machineId: string; dir: string; pub: string }[] = [];

before(async () => {
  if (!root) return;
  base = tempDir('rtev-fleet-q-');
  const trust = path.join(base, 'trust');
  fs.mkdirSync(trust);
  for (const [i, name] of ['qa', 'qb'].entries()) {
    const { keyFile } = newKey(path.join(base, name, 'keys'));
    fs.copyFileSync(keyFile + '.pub', path.join(trust, `${name}.pub`));
    const dir = path.join(base, name, 'evidence');
    const machineId = String(i + 1).repeat(32);
    await writeSynthetic(dir, keyFile, 3000 + 1000 * i, { chunkMaxBytes: 256 * 1024, hostname: name, machineId });
    hosts.push({ name, machineId, dir, pub: keyFile + '.pub' });
  }
  [nats, pg] = await Promise.all([startNatsCluster(1), startPostgres()]);
  const init = await runRtev(['fleet', 'init', '--db', pg.url(), '--nats', nats.urls]);
  assert.equal(init.code, 0, init.stderr);
  for (const h of hosts) {
    const r = await runRtev(['ship', h.dir, '--nats', nats.urls]);
    assert.equal(r.code, 0, r.stderr);
  }
  const ingest = await runRtev(['ingest', '--nats', nats.urls, '--db', pg.url('rtev_ingest'), '--trust', trust, '--once', '--db-sessions', '2'], { timeoutMs: 120_000 });
  assert.equal(ingest.code, 0, ingest.stderr);
});

after(async () => {
  if (!root) return;
  await nats?.stopAll();
  pg?.stop();
  if (base !== undefined) fs.rmSync(base, { recursive: true, force: true });
});

const local = (h: (typeof hosts)[number], cmd: string, args: string[]) =>
  runRtev([cmd, h.dir, '--pubkey', h.pub, '--index', path.join(base, `${h.name}-${cmd}.duckdb`), ...args], { timeoutMs: 120_000 });
const fleet = (h: (typeof hosts)[number], cmd: string, args: string[]) => runRtev([cmd, '--db', pg.url('rtev_reader'), '--host', h.name, ...args], { timeoutMs: 120_000 });

test('query --db --host gives the directory\'s lines byte for byte, filters included', { timeout: 180_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  for (const h of hosts) {
    for (const filter of [[], ['--type', 'file_open', '--path', '/usr/lib/**'], ['--container', 'a1b2c3d4e5f6'], ['--symbol', 'vuln_*']]) {
      const [a, b] = await Promise.all([local(h, 'query', ['--format', 'ndjson', ...filter]), fleet(h, 'query', ['--format', 'ndjson', ...filter])]);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(b.code, 0, b.stderr);
      assert.ok(a.stdout.length > 0, `${h.name} ${filter.join(' ')}: some records`);
      assert.equal(b.stdout, a.stdout, `${h.name} ${filter.join(' ')}`);
    }
  }
});

test('summary --db --host equals summary on the directory (json and table)', { timeout: 180_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  for (const h of hosts) {
    for (const filter of [[], ['--pid', '1010'], ['--image', 'sha256:' + 'd'.repeat(64)]]) {
      const [a, b] = await Promise.all([local(h, 'summary', ['--format', 'json', ...filter]), fleet(h, 'summary', ['--format', 'json', ...filter])]);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(b.code, 0, b.stderr);
      const ja = JSON.parse(a.stdout) as { filter: unknown; coverage: { chains: { gaps: string[] }[] }; scopes: unknown[]; functionCalls: unknown[] };
      const jb = JSON.parse(b.stdout) as typeof ja;
      assert.deepEqual(jb.filter, { ...(ja.filter as object), hosts: [h.name] }, 'the same filter plus --host');
      assert.deepEqual({ ...jb, filter: null }, { ...ja, filter: null }, `${h.name} ${filter.join(' ')}`);
      if (filter.length === 0) assert.ok(ja.scopes.length >= 3 && ja.functionCalls.length > 0, 'host and image scopes, exact function counts');
    }
    const [a, b] = await Promise.all([local(h, 'summary', []), fleet(h, 'summary', [])]);
    assert.equal(b.stdout, a.stdout, `${h.name}: the table`);
  }
  // both hosts at once: the host scope sums them
  const all = await runRtev(['summary', '--db', pg.url('rtev_reader'), '--format', 'json']);
  assert.equal(all.code, 0, all.stderr);
  const s = JSON.parse(all.stdout) as { coverage: { records: number; chains: unknown[] } };
  assert.equal(s.coverage.records, 7000);
  assert.equal(s.coverage.chains.length, 2);
});
