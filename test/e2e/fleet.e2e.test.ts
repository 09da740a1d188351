import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createUser } from '@nats-io/nkeys';
import { Client } from 'pg';
import { connect } from '@nats-io/transport-node';
import { headers, nkeyAuthenticator } from '@nats-io/nats-core';
import { jetstream } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import { renderAccounts } from '../../src/fleet/nats-config';
import { CHUNK_BUCKET, envelopeSubject, HDR_KIND, HDR_OBJECT, objectName } from '../../src/fleet/names';
import { RTEV, rootOrSkip, runRtev, tempDir } from '../helpers/collector';
import { byTs, collectOn, hostLines, makeHost, sealedCount, type FleetHost } from '../helpers/fleet-hosts';
import { freePort, startNatsCluster, startPostgres, type NatsCluster, type Postgres } from '../helpers/fleet-servers';

/**
 * The fleet end to end, against real servers the test starts: a 3-node JetStream cluster
 * with nkey accounts and per-host publish permissions, a throwaway PostgreSQL, collectors
 * in their own UTS+mount namespaces (own hostname, machine-id and key), ship and ingest as
 * separate processes. Faults: a NATS node killed mid-stream, NATS stopped for 30 s, ingest
 * killed inside a chunk's transaction (held there by a table lock the test takes), tampered,
 * untrusted, replayed and rewritten chunks.
 */

const root = process.getuid?.() === 0;
let base: string;
let nats: NatsCluster;
let pg: Postgres;
let trust: string;
let ingestSeed: string;
const hosts: Record<string, FleetHost> = {};
let ingest: (ChildProcess & { log: string[] }) | undefined;
let metricsPort = 0;

const WORKLOAD = 'for i in $(seq 1 30); do /bin/true; done; sleep 1.3; for i in $(seq 1 30); do /bin/true; done; sleep 1.3; /bin/true';

function psql(sql: string): string {
  return pg.psql(sql);
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}${ingest !== undefined ? `\ningest log:\n${ingest.log.slice(-20).join('')}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function startIngest(): ChildProcess & { log: string[] } {
  const child = spawn(process.execPath, [RTEV, 'ingest', '--nats', nats.urls, '--nats-creds', ingestSeed, '--db', pg.url('rtev_ingest'), '--trust', trust,
    '--replicas', '3', '--ack-wait', '3s', '--gap-wait', '2s', '--metrics', `127.0.0.1:${metricsPort}`], { stdio: ['ignore', 'ignore', 'pipe'] }) as ChildProcess & { log: string[] };
  child.log = [];
  child.stderr!.on('data', (d: Buffer) => child.log.push(d.toString()));
  return child;
}

/**
 * Each fault test leaves the servers as it found them, even when it fails: a test that stopped
 * the cluster and then failed must not make the next tests time out against a dead NATS (a
 * failure of one test is reported as that test's failure, not as three).
 */
async function serversUp(): Promise<void> {
  let restarted = false;
  for (const [i, node] of nats.nodes.entries()) {
    if (node.proc === undefined || node.proc.exitCode !== null) {
      await nats.start(i);
      restarted = true;
    }
  }
  if (restarted) await nats.ready();
  if (ingest === undefined || ingest.exitCode !== null || ingest.signalCode !== null) ingest = startIngest();
}

async function stop(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('close', r));
  child.kill(signal);
  await done;
}

function ship(h: FleetHost, extra: string[] = []) {
  return runRtev(['ship', h.dir, '--nats', nats.urls, '--nats-creds', h.creds, ...extra], { timeoutMs: 120_000 });
}

function indexedChunks(h: FleetHost): number {
  return Number(psql(`SELECT count(*) FROM chunks WHERE host_id = '${h.machineId}'`));
}

async function queryHost(h: FleetHost): Promise<string[]> {
  const r = await runRtev(['query', '--db', pg.url('rtev_reader'), '--host', h.name, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l !== '');
}

before(async () => {
  if (!root) return;
  base = tempDir('rtev-fleet-');
  for (const n of ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot']) hosts[n] = await makeHost(base, n);
  trust = path.join(base, 'trust');
  fs.mkdirSync(trust);
  for (const n of ['alpha', 'bravo', 'charlie', 'delta', 'echo']) fs.copyFileSync(hosts[n]!.key + '.pub', path.join(trust, `${n}.pub`));
  const ingestKp = createUser();
  ingestSeed = path.join(base, 'ingest.nk');
  fs.writeFileSync(ingestSeed, new TextDecoder().decode(ingestKp.getSeed()) + '\n', { mode: 0o600 });
  const accounts = renderAccounts({ ingestNkey: ingestKp.getPublicKey(), hosts: Object.values(hosts).map((h) => ({ hostId: h.machineId, nkey: h.nkeyPublic })) });
  [nats, pg] = await Promise.all([startNatsCluster(3, accounts), startPostgres()]);
  const init = await runRtev(['fleet', 'init', '--db', pg.url()]);
  assert.equal(init.code, 0, init.stderr);
  metricsPort = await freePort();
  ingest = startIngest();
});

after(async () => {
  if (!root) return;
  await stop(ingest);
  await nats?.stopAll();
  pg?.stop();
});

test('three hosts collect and ship, one ingest indexes: fleet queries return exactly each host\'s chunk lines', { timeout: 240_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const three = [hosts['alpha']!, hosts['bravo']!, hosts['charlie']!];
  const collectors = three.map((h) => collectOn(h, WORKLOAD, ['--chunk-age', '1s']));
  assert.deepEqual(await Promise.all(collectors.map((c) => c.done)), [0, 0, 0]);
  for (const h of three) assert.ok(sealedCount(h.dir) >= 2, `${h.name} sealed ${sealedCount(h.dir)} chunk(s)`);
  const shipped = await Promise.all(three.map((h) => ship(h)));
  for (const r of shipped) assert.equal(r.code, 0, r.stderr);
  // shipping again: nothing left to ship; without the cursor, JetStream drops the repeats
  const again = await ship(three[0]!);
  assert.match(again.stderr, /ship: 0 chunk\(s\) shipped, 0 already there/);
  fs.rmSync(path.join(three[1]!.dir, '.rtev-ship.json'));
  const repeat = await ship(three[1]!);
  assert.match(repeat.stderr, new RegExp(`ship: 0 chunk\\(s\\) shipped, ${sealedCount(three[1]!.dir)} already there`), repeat.stderr);
  await until('all chunks indexed', () => three.every((h) => indexedChunks(h) === sealedCount(h.dir)));
  for (const h of three) {
    const lines = await queryHost(h);
    assert.deepEqual(lines, byTs(hostLines(h.dir)), `${h.name}: the fleet index returns exactly its chunk lines`);
    // the same bytes as the local index over the host's own directory
    const local = await runRtev(['query', h.dir, '--pubkey', h.key + '.pub', '--format', 'ndjson', '--index', path.join(base, `${h.name}.duckdb`)]);
    assert.equal(local.code, 0, local.stderr);
    const fleet = await runRtev(['query', '--db', pg.url('rtev_reader'), '--host', h.machineId, '--format', 'ndjson']);
    assert.equal(fleet.stdout, local.stdout, `${h.name}: ndjson from --db is byte-identical to the local query`);
    assert.ok(lines.length > 0);
    assert.equal(Number(psql(`SELECT count(*) FROM records r JOIN chunks k USING (chunk_id) WHERE k.host_id = '${h.machineId}'`)), lines.length, 'no duplicates');
    assert.equal(psql(`SELECT hostname FROM hosts WHERE host_id = '${h.machineId}'`), h.name);
  }
  // the accounting identity, per chunk window and per host, in the fleet index
  assert.equal(psql('SELECT count(*) FROM chunk_ledger WHERE submitted <> in_chunk + u_filtered + rejected + shed + in_flight_end - in_flight_start OR lost <> ring_full + rejected + shed'), '0');
  for (const h of three) {
    const [inChunk, records, hostRecords] = psql(`SELECT (SELECT sum(in_chunk) FROM chunk_ledger WHERE host_id = '${h.machineId}'), (SELECT count(*) FROM records r JOIN chunks k USING (chunk_id) WHERE k.host_id = '${h.machineId}'), (SELECT records FROM hosts WHERE host_id = '${h.machineId}')`).split('|');
    assert.equal(inChunk, records);
    assert.equal(hostRecords, records);
  }
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const indexed = Number(/rtev_ingest_chunks_total\{result="indexed"\} (\d+)/.exec(metrics)?.[1]);
  assert.equal(indexed, three.reduce((n, h) => n + sealedCount(h.dir), 0));
  assert.match(metrics, /rtev_ingest_records_total \d+/);
  // the collectors' chunks take the binary COPY path, none falls back to text rows
  assert.equal(Number(/rtev_ingest_row_builds_total\{by="binary"\} (\d+)/.exec(metrics)?.[1]), indexed);
  assert.doesNotMatch(metrics, /rtev_ingest_row_builds_total\{by="text"\} [1-9]/);
  assert.match(metrics, /\nrtev_ingest_lines_parsed_total 0\n/, 'every line the collectors wrote is read by the canonical-line scanner');
});

function osv(id: string, name: string, fixed: string): object {
  return { id, summary: `synthetic advisory ${id} (test data)`, affected: [{ package: { ecosystem: 'Debian:12', name }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed }] }] }] };
}

test('report --db gives the verdicts of report on the host\'s directory', { timeout: 180_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const b = hosts['bravo']!;
  const sbom = path.join(base, 'host.cdx.json');
  const made = await runRtev(['sbom', '--host', '--out', sbom], { timeoutMs: 120_000 });
  assert.equal(made.code, 0, made.stderr);
  const vulns = path.join(base, 'vulns.json');
  // coreutils ran (/usr/bin/true), libc6 is fixed by version, nats-server is installed and never ran on a host
  fs.writeFileSync(vulns, JSON.stringify([osv('SYN-COREUTILS', 'coreutils', '99.0-1'), osv('SYN-LIBC-FIXED', 'libc6', '2.0-1'), osv('SYN-NATS', 'nats-server', '99.0-1')]));
  const args = ['--sbom', sbom, '--vulns', vulns, '--host', '--format', 'json'];
  const [local, fleet] = await Promise.all([
    runRtev(['report', b.dir, '--pubkey', b.key + '.pub', '--index', path.join(base, 'bravo-report.duckdb'), ...args], { timeoutMs: 120_000 }),
    runRtev(['report', '--db', pg.url('rtev_reader'), '--db-host', b.name, ...args], { timeoutMs: 120_000 }),
  ]);
  assert.equal(local.code, 0, local.stderr);
  assert.equal(fleet.code, 0, fleet.stderr);
  const [l, f] = [JSON.parse(local.stdout), JSON.parse(fleet.stdout)] as { timestamp: string; coverage: unknown; products: { verdicts: { id: string; status: string }[] }[] }[];
  const statuses = (r: typeof l) => r.products.flatMap((p) => p.verdicts.map((v) => `${v.id}:${v.status}`)).sort();
  assert.deepEqual(statuses(f!), statuses(l!));
  assert.ok(statuses(l!).some((x) => x.endsWith(':affected')) && statuses(l!).some((x) => x.endsWith(':fixed')), statuses(l!).join(' '));
  assert.deepEqual(f!.products, l!.products, 'the same verdicts, evidence references, activity and counts');
  assert.deepEqual(f!.coverage, l!.coverage);
  assert.equal(f!.timestamp, l!.timestamp);
});

test('a host cannot publish on another host\'s subject', { timeout: 60_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const a = hosts['alpha']!;
  const b = hosts['bravo']!;
  const seed = fs.readFileSync(a.creds, 'utf8').trim();
  const nc = await connect({ servers: nats.urls.split(','), authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)) });
  try {
    const js = jetstream(nc, { timeout: 3000 });
    await assert.rejects(js.publish(envelopeSubject(b.machineId), Buffer.from('{}'), { msgID: 'forged-by-alpha' }), /permission|timeout|no responders/i);
    await assert.rejects(js.publish('rtev.other', Buffer.from('{}')), /permission|timeout|no responders/i);
  } finally {
    await nc.close();
  }
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(psql(`SELECT count(*) FROM rejections WHERE host_id = '${b.machineId}'`), '0', 'nothing reached ingest');
});

test('NATS faults: one node of three killed mid-stream, then the whole cluster down for 30 s; ship catches up, nothing lost or doubled', { timeout: 420_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const d = hosts['delta']!;
  // the workload runs until the test has seen the outage through (the stop file), not for a
  // fixed number of iterations: on a loaded machine a fixed loop can end before NATS is back
  const stopFile = path.join(base, 'delta-stop');
  const collector = collectOn(d, `i=0; while [ ! -e '${stopFile}' ] && [ $i -lt 2400 ]; do /bin/true; sleep 0.1; i=$((i+1)); done`, ['--chunk-age', '1s']);
  const shipLog: string[] = [];
  let shipper: ChildProcess | undefined;
  t.after(async () => {
    fs.writeFileSync(stopFile, '');
    await stop(shipper);
    await Promise.race([collector.done, new Promise((r) => setTimeout(r, 30_000))]);
    if (collector.exitCode === null) collector.kill('SIGKILL');
    await serversUp();
    if (shipLog.length > 0) t.diagnostic(`ship log:\n${shipLog.join('').slice(-4000)}`);
  });
  await until('the first chunk', () => fs.existsSync(d.dir) && sealedCount(d.dir) >= 1);
  shipper = spawn(process.execPath, [RTEV, 'ship', d.dir, '--follow', '--nats', nats.urls, '--nats-creds', d.creds, '--metrics', `127.0.0.1:${await freePort()}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  shipper.stderr!.on('data', (b: Buffer) => shipLog.push(b.toString()));
  await until('shipping', () => indexedChunks(d) >= 1);
  await nats.kill(1);
  await new Promise((r) => setTimeout(r, 3000));
  const duringKill = indexedChunks(d);
  await until('progress with one node down', () => indexedChunks(d) > duringKill, 90_000);
  await nats.start(1);
  await nats.ready();
  await new Promise((r) => setTimeout(r, 2000));
  // a clean stop of every node (SIGTERM): nats-server flushes its stores. (A simultaneous
  // crash of every node can lose the newest acknowledged messages: docs/fleet.md)
  await nats.stopAll('SIGTERM');
  const sealedAtOutage = sealedCount(d.dir);
  await new Promise((r) => setTimeout(r, 30_000));
  // at least 30 s down, and longer until the collector sealed 10 chunks without NATS (at
  // --chunk-age 1s that takes 10 s on an idle machine): a collector that waits for the
  // network never gets there
  await until('the collector kept sealing while NATS was down', () => sealedCount(d.dir) > sealedAtOutage + 10, 90_000);
  assert.ok(shipper.exitCode === null, 'ship --follow keeps running while NATS is down');
  for (let i = 0; i < 3; i++) await nats.start(i);
  await nats.ready();
  fs.writeFileSync(stopFile, '');
  assert.equal(await collector.done, 0);
  const total = sealedCount(d.dir);
  await until('ship caught up', () => JSON.parse(fs.readFileSync(path.join(d.dir, '.rtev-ship.json'), 'utf8')).acked_seq === total, 180_000);
  await stop(shipper);
  await until('ingest caught up', () => indexedChunks(d) === total, 180_000);
  const lines = await queryHost(d);
  assert.deepEqual(lines, byTs(hostLines(d.dir)));
  assert.equal(psql(`SELECT count(*) FROM gaps WHERE host_id = '${d.machineId}' AND filled_at IS NULL`), '0');
  assert.equal(psql(`SELECT count(*) FROM rejections WHERE host_id = '${d.machineId}'`), '0', 'no honest repeat is taken for a replay');
});

test('ingest killed inside a chunk\'s transaction: the chunk is redelivered and indexed once', { timeout: 240_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  await serversUp();
  const a = hosts['alpha']!;
  const before = indexedChunks(a);
  // hold ingest inside its transaction by real means: a lock that its insert of the chunk's key
  // row waits for, after the records and the chunk row went in; seen in pg_stat_activity (the key row
  // is a statement of the chunk's batch that ends with the COMMIT, src/fleet/chunk-rows.ts)
  const holder = new Client({ connectionString: pg.url() });
  await holder.connect();
  try {
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE host_keys IN SHARE MODE');
    assert.equal(await collectOn(a, 'for i in $(seq 1 20); do /bin/true; done', ['--chunk-age', '1s']).done, 0);
    assert.equal((await ship(a)).code, 0);
    await until('ingest waiting inside a chunk\'s transaction', () => psql(`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rtev-ingest' AND wait_event_type = 'Lock' AND (query LIKE 'INSERT INTO host_keys%' OR query LIKE 'INSERT INTO chunks%')`) !== '0');
    assert.notEqual(psql(`SELECT count(*) FROM pg_locks l JOIN pg_stat_activity s USING (pid) WHERE s.application_name = 'rtev-ingest' AND l.relation = 'records'::regclass AND l.mode = 'RowExclusiveLock'`), '0', 'its records are inserted, not committed');
    await stop(ingest, 'SIGKILL');
  } finally {
    await holder.query('ROLLBACK').catch(() => undefined);
    await holder.end();
  }
  await until('the killed sessions are gone', () => psql(`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rtev-ingest'`) === '0');
  assert.equal(indexedChunks(a), before, 'nothing of the killed transaction is committed');
  ingest = startIngest();
  await until('redelivered and indexed', () => indexedChunks(a) === sealedCount(a.dir), 90_000);
  assert.deepEqual(await queryHost(a), byTs(hostLines(a.dir)), 'exactly once');
});

test('rejected, each with its reason in fleet status: flipped byte, untrusted key, replayed chunk, deleted and rewritten chain; the operator accepts the new chain', { timeout: 300_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  await serversUp();
  const [a, e, f] = [hosts['alpha']!, hosts['echo']!, hosts['foxtrot']!];
  const threeWindows = 'for i in $(seq 1 10); do /bin/true; done; sleep 1.6; for i in $(seq 1 10); do /bin/true; done; sleep 1.6; /bin/true';
  assert.deepEqual(await Promise.all([collectOn(e, threeWindows, ['--chunk-age', '1s']).done, collectOn(f, WORKLOAD, ['--chunk-age', '1s']).done]), [0, 0]);
  assert.ok(sealedCount(e.dir) >= 2, `echo sealed ${sealedCount(e.dir)} chunk(s): the flipped one needs a successor`);
  // a flipped byte in echo's first chunk, on the host before shipping
  const first = path.join(e.dir, 'chunk-000000000001.ndjson');
  const bytes = fs.readFileSync(first);
  bytes[20] ^= 0x01;
  fs.writeFileSync(first, bytes);
  assert.equal((await ship(e)).code, 0);
  assert.equal((await ship(f)).code, 0);
  // a replay: alpha's first chunk published again under a new message id
  const envBytes = fs.readFileSync(path.join(a.dir, 'chunk-000000000001.dsse.json'));
  const chainId = JSON.parse(Buffer.from(JSON.parse(envBytes.toString()).payload, 'base64').toString()).predicate.chain.chain_id as string;
  const nc = await connect({ servers: nats.urls.split(','), authenticator: nkeyAuthenticator(new TextEncoder().encode(fs.readFileSync(a.creds, 'utf8').trim())) });
  try {
    const js = jetstream(nc);
    const bucket = await new Objm(js).open(CHUNK_BUCKET);
    const name = objectName(a.machineId, chainId, 1);
    await bucket.putBlob({ name }, fs.readFileSync(path.join(a.dir, 'chunk-000000000001.ndjson')));
    const h = headers();
    h.set(HDR_KIND, 'chunk');
    h.set(HDR_OBJECT, name);
    await js.publish(envelopeSubject(a.machineId), envBytes, { msgID: 'replayed-by-test', headers: h });
  } finally {
    await nc.close();
  }
  // alpha deletes its evidence and starts a new chain
  const alphaBefore = indexedChunks(a);
  fs.rmSync(a.dir, { recursive: true });
  assert.equal(await collectOn(a, 'for i in $(seq 1 10); do /bin/true; done').done, 0);
  assert.equal((await ship(a)).code, 0);
  const status = async (): Promise<string> => (await runRtev(['fleet', 'status', '--db', pg.url('rtev_reader')])).stdout;
  let last = '';
  await until('every rejection recorded', async () => {
    const s = (last = await status());
    return /digest-mismatch/.test(s) && /untrusted-key/.test(s) && /replay/.test(s) && /chain-replaced/.test(s) && /gap open \(missing\) seq 1\.\.1/.test(s);
  }, 90_000).catch((err: Error) => {
    throw new Error(`${err.message}\nfleet status:\n${last}`);
  });
  const s = await status();
  const section = (name: string): string => s.split(/\n(?=\S)/).find((x) => x.startsWith(name)) ?? '';
  assert.match(section('echo'), /rejected 1 x digest-mismatch \(last: seq 1\)/);
  assert.match(section('echo'), /gap open \(missing\) seq 1\.\.1/, 'the next chunk indexes with the gap recorded');
  assert.match(section('alpha'), /rejected 1 x replay/);
  assert.match(section('alpha'), /x chain-replaced/);
  assert.match(s, new RegExp(`\\(never indexed\\) \\[${f.machineId}\\]\\n  gaps: none\\n  rejected \\d+ x untrusted-key`));
  assert.equal(indexedChunks(f), 0, 'an untrusted host is never indexed');
  assert.equal(indexedChunks(a), alphaBefore, 'the rewritten chain is not indexed');
  const json = JSON.parse((await runRtev(['fleet', 'status', '--db', pg.url('rtev_reader'), '--json'])).stdout) as { hostId: string; keys: { keyid: string }[] }[];
  assert.ok(json.find((x) => x.hostId === a.machineId)!.keys.length === 1, 'key fingerprints are listed');

  // the operator accepts alpha's new chain (recorded), the host ships it again, it is indexed
  const newChain = JSON.parse(Buffer.from(JSON.parse(fs.readFileSync(path.join(a.dir, 'chunk-000000000001.dsse.json'), 'utf8')).payload, 'base64').toString()).predicate.chain.chain_id as string;
  const denied = await runRtev(['fleet', 'accept-chain', '--db', pg.url('rtev_ingest'), '--host', a.name, '--chain', newChain, '--reason', 'by ingest']);
  assert.notEqual(denied.code, 0, 'the ingest role cannot accept a chain');
  assert.match(denied.stderr, /permission denied/);
  assert.notEqual((await runRtev(['fleet', 'accept-chain', '--db', pg.url(), '--host', a.name, '--chain', 'f'.repeat(36), '--reason', 'typo'])).code, 0, 'only a chain that was rejected as chain-replaced');
  const acc = await runRtev(['fleet', 'accept-chain', '--db', pg.url(), '--host', a.name, '--chain', newChain, '--reason', 'reinstalled (test)']);
  assert.equal(acc.code, 0, acc.stderr);
  assert.match(acc.stdout, new RegExp(`accepted chain ${newChain} for alpha`));
  const resent = await ship(a, ['--resend-from', '1']);
  assert.equal(resent.code, 0, resent.stderr);
  await until('the accepted chain indexed', () => indexedChunks(a) === alphaBefore + sealedCount(a.dir), 90_000);
  assert.equal(psql(`SELECT chain_id FROM hosts WHERE host_id = '${a.machineId}'`), newChain);
  assert.equal(psql(`SELECT count(*) FROM records r JOIN chunks k USING (chunk_id) WHERE k.host_id = '${a.machineId}' AND k.chain_id = '${newChain}'`), String(hostLines(a.dir).length));
  const after = await status();
  assert.match(after, new RegExp(`chain accepted: ${newChain} replaces \\S+ \\(at seq \\d+\\), by postgres at \\S+: reinstalled \\(test\\)`));
  assert.equal(psql(`SELECT count(*) FROM rejections WHERE host_id = '${a.machineId}' AND code = 'replay' AND chain_id = '${newChain}'`), '0', 'the resent chunks are no replays');
});
