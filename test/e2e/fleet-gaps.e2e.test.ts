import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RTEV, rootOrSkip, runRtev, tempDir } from '../helpers/collector';
import { byTs, collectOn, hostLines, makeHost, sealedCount, type FleetHost } from '../helpers/fleet-hosts';
import { freePort, startNatsCluster, startPostgres, type NatsCluster, type Postgres } from '../helpers/fleet-servers';
import type { HostStatus } from '../../src/fleet/status';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/nats-core';
import { jetstream } from '@nats-io/jetstream';
import { envelopeSubject, ENVELOPE_STREAM, HDR_KIND, INGEST_CONSUMER } from '../../src/fleet/names';
import { serializeEnvelope, signEnvelope } from '../../src/sign/envelope';
import { loadSigningKeyFile } from '../../src/sign/key-files';
import { generateSigningKey, type SigningKey } from '../../src/sign/keys';
import { CHECKPOINT_PREDICATE_TYPE, IN_TOTO_PAYLOAD_TYPE, statementBytes } from '../../src/sign/statement';

/**
 * Gaps and retention checkpoints end to end, against a real NATS JetStream and PostgreSQL
 * started here, with real collectors (own UTS+mount namespace, machine id and key): a gap is
 * open, filled (the late chunk arrived) or deleted by retention (a signed checkpoint names it),
 * and `rtev fleet status` tells them apart; the chain adds up (indexed + checkpointed + open =
 * head) and the accounting identity holds in the index.
 */

const root = process.getuid?.() === 0;
let base: string;
let nats: NatsCluster;
let pg: Postgres;
let trust: string;
let ingest: (ChildProcess & { log: string[] }) | undefined;
let metricsPort = 0;
const hosts: Record<string, FleetHost> = {};

const TWO_WINDOWS = 'for i in $(seq 1 10); do /bin/true; done; sleep 1.3; for i in $(seq 1 10); do /bin/true; done';
const BURSTS = (n: number) => `for i in $(seq 1 ${n}); do for j in $(seq 1 5); do /bin/true; done; sleep 1.3; done`;

function startIngest(): ChildProcess & { log: string[] } {
  const child = spawn(process.execPath, [RTEV, 'ingest', '--nats', nats.urls, '--db', pg.url('rtev_ingest'), '--trust', trust, '--ack-wait', '3s', '--gap-wait', '2s', '--metrics', `127.0.0.1:${metricsPort}`],
    { stdio: ['ignore', 'ignore', 'pipe'] }) as ChildProcess & { log: string[] };
  child.log = [];
  child.stderr!.on('data', (d: Buffer) => child.log.push(d.toString()));
  return child;
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000, show?: () => Promise<string>): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) {
      throw new Error(`timed out after ${timeoutMs} ms: ${what}${show !== undefined ? `\n${await show()}` : ''}${ingest !== undefined ? `\ningest log:\n${ingest.log.slice(-15).join('')}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** whether ingest's consumer has nothing left: no message pending, none delivered and not acknowledged */
async function drained(): Promise<boolean> {
  const nc = await connect({ servers: nats.urls.split(','), timeout: 5000 });
  try {
    const info = await (await jetstreamManager(nc, { timeout: 5000 })).consumers.info(ENVELOPE_STREAM, INGEST_CONSUMER);
    return info.num_pending === 0 && info.num_ack_pending === 0;
  } finally {
    await nc.close();
  }
}

const ship = (dir: string, extra: string[] = []) => runRtev(['ship', dir, '--nats', nats.urls, ...extra], { timeoutMs: 120_000 });
const indexed = (h: FleetHost): number => Number(pg.psql(`SELECT count(*) FROM chunks WHERE host_id = '${h.machineId}'`));
const headSeq = (h: FleetHost): number => Number(pg.psql(`SELECT coalesce(max(head_seq), 0) FROM hosts WHERE host_id = '${h.machineId}'`));
const seqs = (dir: string): number[] => fs.readdirSync(dir).map((n) => /^chunk-(\d{12})\.dsse\.json$/.exec(n)?.[1]).filter((x): x is string => x !== undefined).map(Number).sort((a, b) => a - b);
const E = (seq: number) => `chunk-${String(seq).padStart(12, '0')}.dsse.json`;
const C = (seq: number) => `chunk-${String(seq).padStart(12, '0')}.ndjson`;

async function statusText(): Promise<string> {
  const r = await runRtev(['fleet', 'status', '--db', pg.url('rtev_reader')]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

async function statusOf(h: FleetHost): Promise<HostStatus> {
  const r = await runRtev(['fleet', 'status', '--db', pg.url('rtev_reader'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const s = (JSON.parse(r.stdout) as HostStatus[]).find((x) => x.hostId === h.machineId);
  assert.ok(s !== undefined, `${h.name} is in fleet status`);
  return s;
}

function section(text: string, h: FleetHost): string {
  return text.split(/\n(?=\S)/).find((x) => x.startsWith(`${h.name} [`)) ?? '';
}

function checkpointOf(dir: string): { first_seq: number; unshipped?: { from_seq: number; through_seq: number } } {
  return JSON.parse(Buffer.from(JSON.parse(fs.readFileSync(path.join(dir, 'checkpoint.dsse.json'), 'utf8')).payload, 'base64').toString()).predicate;
}

/** copyChunks copies the given sealed chunks (data + envelope) of a directory into a new one, and the ship cursor if asked */
function copyChunks(from: string, to: string, which: number[], cursor = false): string {
  fs.mkdirSync(to, { recursive: true, mode: 0o700 });
  for (const s of which) for (const n of [C(s), E(s)]) fs.copyFileSync(path.join(from, n), path.join(to, n));
  if (cursor) fs.copyFileSync(path.join(from, '.rtev-ship.json'), path.join(to, '.rtev-ship.json'));
  return to;
}

/** the accounting identity in the fleet index: per ledger window, and records = sum(in_chunk) per host */
function assertIdentity(h: FleetHost): void {
  assert.equal(pg.psql(`SELECT count(*) FROM chunk_ledger WHERE host_id = '${h.machineId}' AND (submitted <> in_chunk + u_filtered + rejected + shed + in_flight_end - in_flight_start OR lost <> ring_full + rejected + shed)`), '0');
  const [inChunk, records, hostRecords] = pg.psql(`SELECT (SELECT sum(in_chunk) FROM chunk_ledger WHERE host_id = '${h.machineId}'), (SELECT count(*) FROM records r JOIN chunks k USING (chunk_id) WHERE k.host_id = '${h.machineId}'), (SELECT records FROM hosts WHERE host_id = '${h.machineId}')`).split('|');
  assert.equal(inChunk, records, `${h.name}: sum(in_chunk) = count(records)`);
  assert.equal(hostRecords, records);
}

/** the chain adds up: every seq up to the head is indexed, checkpointed or an open gap */
function assertAccount(s: HostStatus, want: { checkpointed: number; open: number }): void {
  assert.ok(s.account !== null);
  assert.equal(s.account.unaccounted, 0, JSON.stringify(s.account));
  assert.equal(s.account.indexed + s.account.checkpointed + s.account.open, s.account.throughSeq);
  assert.equal(s.account.checkpointed, want.checkpointed, JSON.stringify(s.account));
  assert.equal(s.account.open, want.open, JSON.stringify(s.account));
}

before(async () => {
  if (!root) return;
  base = tempDir('rtev-fleet-gaps-');
  for (const n of ['golf', 'hotel', 'india', 'juliet']) hosts[n] = await makeHost(base, n);
  trust = path.join(base, 'trust');
  fs.mkdirSync(trust);
  for (const h of Object.values(hosts)) fs.copyFileSync(h.key + '.pub', path.join(trust, `${h.name}.pub`));
  [nats, pg] = await Promise.all([startNatsCluster(1), startPostgres()]);
  const init = await runRtev(['fleet', 'init', '--db', pg.url(), '--nats', nats.urls]);
  assert.equal(init.code, 0, init.stderr);
  metricsPort = await freePort();
  ingest = startIngest();
});

after(async () => {
  if (!root) return;
  for (const node of nats?.nodes ?? []) node.proc?.kill('SIGCONT');
  if (ingest !== undefined && ingest.exitCode === null) {
    const done = new Promise((r) => ingest!.once('close', r));
    ingest.kill('SIGTERM');
    await done;
  }
  await nats?.stopAll();
  pg?.stop();
});

test('retention removes unshipped chunks: the checkpoint is shipped first, the range is deleted by retention (checkpointed), the chain adds up', { timeout: 240_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const g = hosts['golf']!;
  assert.equal(await collectOn(g, TWO_WINDOWS, ['--chunk-age', '1s']).done, 0);
  assert.equal((await ship(g.dir)).code, 0);
  const before = sealedCount(g.dir);
  await until('golf shipped and indexed', () => indexed(g) === before);
  // the collector goes on with the chain while ship does not run, and retention may remove what was never shipped
  assert.equal(await collectOn(g, BURSTS(5), ['--chunk-age', '1s', '--retain-size', '1', '--retain-unshipped']).done, 0);
  const cp = checkpointOf(g.dir);
  assert.ok(cp.unshipped !== undefined, 'the checkpoint names removed unshipped chunks');
  assert.equal(cp.unshipped.from_seq, before + 1, 'everything after the last shipped chunk');
  assert.equal(cp.unshipped.through_seq, cp.first_seq - 1);
  const left = seqs(g.dir);
  const shipped = await ship(g.dir);
  assert.equal(shipped.code, 0, shipped.stderr);
  await until('the chunks after the checkpoint indexed', () => headSeq(g) === left[left.length - 1], 60_000, statusText);
  const s = await statusOf(g);
  assert.deepEqual(s.gaps.map((x) => [x.state, x.fromSeq, x.throughSeq]), [['checkpointed', cp.unshipped.from_seq, cp.unshipped.through_seq]]);
  assert.deepEqual(s.gapSeqs, { open: 0, filled: 0, checkpointed: cp.unshipped.through_seq - cp.unshipped.from_seq + 1 });
  assertAccount(s, { checkpointed: cp.unshipped.through_seq - cp.unshipped.from_seq + 1, open: 0 });
  assert.equal(s.checkpoints.length, 1);
  assert.equal(s.checkpoints[0]!.firstSeq, cp.first_seq);
  assert.equal(s.checkpoints[0]!.firstChunk, 'verified', 'the indexed first chunk is the one the checkpoint vouches for');
  const text = section(await statusText(), g);
  assert.match(text, new RegExp(`gap deleted by retention \\(checkpointed\\) \\(missing\\) seq ${cp.unshipped.from_seq}\\.\\.${cp.unshipped.through_seq}: removed on the host before they were shipped, as its signed retention checkpoint sha256:[0-9a-f]{16}\\.\\.\\. records`), text);
  assert.match(text, new RegExp(`chain seq 1\\.\\.${left[left.length - 1]}: ${before + left.length} indexed, ${cp.unshipped.through_seq - cp.unshipped.from_seq + 1} deleted by retention \\(checkpointed\\), 0 open gap\\(s\\)`), text);
  assert.doesNotMatch(text, /gap (open|filled)/);
  assert.equal(pg.psql(`SELECT count(*) FROM rejections WHERE host_id = '${g.machineId}'`), '0');
  assertIdentity(g);
});

test('summary and report, with --db and on the directory, show the seqs retention removed as deleted by retention (checkpointed), not missing', { timeout: 240_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const g = hosts['golf']!;
  const cp = checkpointOf(g.dir);
  assert.ok(cp.unshipped !== undefined, 'the retention test ran before this one');
  const left = seqs(g.dir);
  const last = left[left.length - 1]!;
  const shipped = cp.unshipped.from_seq - 1;
  const unshipped = cp.unshipped.through_seq - cp.unshipped.from_seq + 1;
  const cpSha = (await statusOf(g)).checkpoints[0]!.envelopeSha256;
  const runText = (from: number, through: number, sha: string) => `seq ${from}..${through} deleted by retention (checkpointed): recorded in the signed retention checkpoint sha256:${sha.slice(0, 16)}... (first seq ${cp.first_seq})`;
  type Chain = { chainId: string; firstSeq: number; lastSeq: number; gaps: string[]; account: { throughSeq: number; indexed: number; checkpointed: number; missing: number }; checkpointed: { fromSeq: number; throughSeq: number; checkpointSha256: string }[] };
  // the fleet index: shipped 1..S, the unshipped S+1..K-1 checkpointed, K..N indexed
  const fleetJson = await runRtev(['summary', '--db', pg.url('rtev_reader'), '--host', g.name, '--format', 'json'], { timeoutMs: 120_000 });
  assert.equal(fleetJson.code, 0, fleetJson.stderr);
  const fc = (JSON.parse(fleetJson.stdout) as { coverage: { chains: Chain[]; complete: boolean } }).coverage;
  assert.equal(fc.chains.length, 1);
  const f = fc.chains[0]!;
  assert.deepEqual(f.account, { throughSeq: last, indexed: shipped + left.length, checkpointed: unshipped, missing: 0 });
  assert.deepEqual(f.checkpointed.map((r) => [r.fromSeq, r.throughSeq, r.checkpointSha256]), [[cp.unshipped.from_seq, cp.unshipped.through_seq, cpSha]]);
  assert.deepEqual(f.gaps.filter((x) => !/ is not final: /.test(x)), [runText(cp.unshipped.from_seq, cp.unshipped.through_seq, cpSha)]);
  assert.equal(fc.complete, false, 'the records of the removed chunks are not in the window');
  // the directory: everything before its checkpoint's first chunk was removed by retention
  const dirJson = await runRtev(['summary', g.dir, '--pubkey', g.key + '.pub', '--index', path.join(base, 'golf-summary.duckdb'), '--format', 'json'], { timeoutMs: 120_000 });
  assert.equal(dirJson.code, 0, dirJson.stderr);
  const d = (JSON.parse(dirJson.stdout) as { coverage: { chains: Chain[] } }).coverage.chains[0]!;
  const dirSha = (await import('node:crypto')).createHash('sha256').update(fs.readFileSync(path.join(g.dir, 'checkpoint.dsse.json'))).digest('hex');
  assert.equal(d.firstSeq, cp.first_seq);
  assert.deepEqual(d.account, { throughSeq: last, indexed: left.length, checkpointed: cp.first_seq - 1, missing: 0 });
  assert.deepEqual(d.checkpointed.map((r) => [r.fromSeq, r.throughSeq, r.checkpointSha256]), [[1, cp.first_seq - 1, dirSha]]);
  assert.equal(dirSha, cpSha, 'the checkpoint ingest accepted is the directory\'s');
  // the tables say so, and nothing is "missing"
  const account = (indexedN: number, checkpointed: number) => `chain seq 1..${last}: ${indexedN} indexed, ${checkpointed} deleted by retention (checkpointed), 0 missing`;
  for (const [args, want] of [
    [['summary', '--db', pg.url('rtev_reader'), '--host', g.name], [account(shipped + left.length, unshipped), `gap: ${runText(cp.unshipped.from_seq, cp.unshipped.through_seq, cpSha)}`]],
    [['summary', g.dir, '--pubkey', g.key + '.pub', '--index', path.join(base, 'golf-summary.duckdb')], [account(left.length, cp.first_seq - 1), runText(1, cp.first_seq - 1, dirSha)]],
  ] as [string[], string[]][]) {
    const r = await runRtev(args, { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    for (const w of want) assert.ok(r.stdout.includes(w), `${args[0]} ${args[1]}: ${w}\n${r.stdout}`);
    assert.doesNotMatch(r.stdout, /is missing/, r.stdout);
  }
  // rtev report (no advisories: only its coverage matters here)
  const sbom = path.join(base, 'empty.cdx.json');
  fs.writeFileSync(sbom, JSON.stringify({ bomFormat: 'CycloneDX', specVersion: '1.5', version: 1, metadata: { component: { type: 'operating-system', name: 'golf', 'bom-ref': 'host' } }, components: [] }));
  const vulns = path.join(base, 'no-vulns.json');
  fs.writeFileSync(vulns, '[]');
  for (const [args, want] of [
    [['report', '--db', pg.url('rtev_reader'), '--db-host', g.name], [account(shipped + left.length, unshipped), runText(cp.unshipped.from_seq, cp.unshipped.through_seq, cpSha)]],
    [['report', g.dir, '--pubkey', g.key + '.pub', '--index', path.join(base, 'golf-report.duckdb')], [account(left.length, cp.first_seq - 1), runText(1, cp.first_seq - 1, dirSha)]],
  ] as [string[], string[]][]) {
    const r = await runRtev([...args, '--sbom', sbom, '--vulns', vulns, '--host'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    for (const w of want) assert.ok(r.stdout.includes(w), `${args[0]} ${args[1]}: ${w}\n${r.stdout}`);
    assert.doesNotMatch(r.stdout, /is missing/, r.stdout);
  }
});

test('a late chunk fills its gap, a chunk that never arrives stays an open gap', { timeout: 240_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const h = hosts['hotel']!;
  assert.equal(await collectOn(h, BURSTS(7), ['--chunk-age', '1s']).done, 0);
  const all = seqs(h.dir);
  assert.ok(all.length >= 5, `hotel sealed ${all.length} chunk(s)`);
  // seq 2 is held back and arrives later; seq 4 never arrives
  const first = copyChunks(h.dir, path.join(base, 'hotel-first'), all.filter((s) => s !== 2 && s !== 4));
  assert.equal((await ship(first)).code, 0);
  await until('hotel indexed past its gaps', () => headSeq(h) === all[all.length - 1], 90_000, statusText);
  let s = await statusOf(h);
  assert.deepEqual(s.gaps.map((x) => [x.state, x.fromSeq]), [['open', 2], ['open', 4]]);
  assertAccount(s, { checkpointed: 0, open: 2 });
  const late = copyChunks(h.dir, path.join(base, 'hotel-late'), [2]);
  assert.equal((await ship(late)).code, 0);
  await until('the late chunk indexed', () => indexed(h) === all.length - 1, 60_000, statusText);
  s = await statusOf(h);
  assert.deepEqual(s.gaps.map((x) => [x.state, x.fromSeq, x.throughSeq]), [['filled', 2, 2], ['open', 4, 4]]);
  assert.deepEqual(s.gapSeqs, { open: 1, filled: 1, checkpointed: 0 });
  assertAccount(s, { checkpointed: 0, open: 1 });
  const text = section(await statusText(), h);
  assert.match(text, /gap filled \(missing\) seq 2\.\.2: arrived late, linked its neighbours and was indexed/);
  assert.match(text, /gap open \(missing\) seq 4\.\.4: never arrived before seq 5 was indexed/);
  assert.doesNotMatch(text, /checkpointed\) \(/);
  // the index holds exactly the lines of the chunks that arrived
  const q = await runRtev(['query', '--db', pg.url('rtev_reader'), '--host', h.name, '--json']);
  assert.equal(q.code, 0, q.stderr);
  const want = byTs(all.filter((x) => x !== 4).flatMap((x) => fs.readFileSync(path.join(h.dir, C(x)), 'utf8').split('\n').filter((l) => l !== '')));
  assert.deepEqual(q.stdout.split('\n').filter((l) => l !== ''), want);
  assert.equal(pg.psql(`SELECT count(*) FROM rejections WHERE host_id = '${h.machineId}'`), '0');
  assertIdentity(h);
});

test('the checkpoint arrives after the gap was recorded: the open gap becomes deleted by retention (checkpointed), not filled', { timeout: 240_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const j = hosts['juliet']!;
  assert.equal(await collectOn(j, TWO_WINDOWS, ['--chunk-age', '1s']).done, 0);
  assert.equal((await ship(j.dir)).code, 0);
  const before = sealedCount(j.dir);
  assert.equal(await collectOn(j, BURSTS(5), ['--chunk-age', '1s', '--retain-size', '1', '--retain-unshipped']).done, 0);
  const cp = checkpointOf(j.dir);
  assert.ok(cp.unshipped !== undefined);
  const left = seqs(j.dir);
  // what is left travels first without the checkpoint: after --gap-wait, open gaps
  const noCheckpoint = copyChunks(j.dir, path.join(base, 'juliet-no-checkpoint'), left, true);
  assert.equal((await ship(noCheckpoint)).code, 0);
  await until('juliet indexed past the removed chunks', () => headSeq(j) === left[left.length - 1], 90_000, statusText);
  let s = await statusOf(j);
  const removed = cp.unshipped.through_seq - cp.unshipped.from_seq + 1;
  assert.deepEqual(s.gaps.map((x) => [x.state, x.fromSeq, x.throughSeq]), [['open', cp.unshipped.from_seq, cp.unshipped.through_seq]]);
  assertAccount(s, { checkpointed: 0, open: removed });
  // then the directory itself: its checkpoint, and its chunks again (duplicates the server drops)
  const r = await ship(j.dir);
  assert.equal(r.code, 0, r.stderr);
  await until('the checkpoint recorded', () => pg.psql(`SELECT count(*) FROM checkpoints WHERE host_id = '${j.machineId}'`) === '1', 60_000, statusText);
  s = await statusOf(j);
  assert.deepEqual(s.gaps.map((x) => [x.state, x.fromSeq, x.throughSeq]), [['checkpointed', cp.unshipped.from_seq, cp.unshipped.through_seq]]);
  assert.deepEqual(s.gapSeqs, { open: 0, filled: 0, checkpointed: removed });
  assertAccount(s, { checkpointed: removed, open: 0 });
  assert.equal(pg.psql(`SELECT count(*) FROM gaps WHERE host_id = '${j.machineId}' AND closed_by = 'chunk'`), '0', 'not marked filled');
  assert.equal(indexed(j), before + left.length, 'nothing indexed twice');
  assert.equal(pg.psql(`SELECT count(*) FROM rejections WHERE host_id = '${j.machineId}'`), '0');
  assertIdentity(j);
});

test('ship --follow while NATS stalls and retention removes unshipped chunks under it: the newest checkpoint goes before the chunks after a removal', { timeout: 300_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const h = hosts['india']!;
  const stopFile = path.join(base, 'india-stop');
  const collector = collectOn(h, `i=0; while [ ! -e '${stopFile}' ] && [ $i -lt 1200 ]; do /bin/true; sleep 0.1; i=$((i+1)); done`, ['--chunk-age', '1s', '--retain-size', '20000', '--retain-unshipped']);
  const shipLog: string[] = [];
  let shipper: ChildProcess | undefined;
  let stalling = false;
  const node = nats.nodes[0]!;
  t.after(async () => {
    stalling = false;
    node.proc?.kill('SIGCONT');
    fs.writeFileSync(stopFile, '');
    if (shipper !== undefined && shipper.exitCode === null) {
      const done = new Promise((r) => shipper!.once('close', r));
      shipper.kill('SIGTERM');
      await done;
    }
    await Promise.race([collector.done, new Promise((r) => setTimeout(r, 30_000))]);
    if (collector.exitCode === null) collector.kill('SIGKILL');
    if (shipLog.length > 0) t.diagnostic(`ship log:\n${shipLog.join('').slice(-3000)}`);
  });
  await until('the first chunk', () => fs.existsSync(h.dir) && sealedCount(h.dir) >= 1);
  shipper = spawn(process.execPath, [RTEV, 'ship', h.dir, '--follow', '--nats', nats.urls], { stdio: ['ignore', 'ignore', 'pipe'] });
  shipper.stderr!.on('data', (b: Buffer) => shipLog.push(b.toString()));
  await until('india shipping', () => indexed(h) >= 2, 60_000, statusText);
  // NATS stalls: stopped (SIGSTOP) 2 s, running 0.25 s, over and over. Ship gets little through,
  // the collector seals on and retention removes the oldest chunks, unshipped ones among them,
  // while ship is in the middle of its list: each removal rewrites the checkpoint first
  const stalledAt = seqs(h.dir).at(-1)!;
  stalling = true;
  const stall = (async () => {
    while (stalling) {
      node.proc!.kill('SIGSTOP');
      await new Promise((r) => setTimeout(r, 2000));
      node.proc!.kill('SIGCONT');
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  await until('retention removed unshipped chunks while NATS stalled', () => {
    if (!fs.existsSync(path.join(h.dir, 'checkpoint.dsse.json'))) return false;
    const cp = checkpointOf(h.dir);
    return cp.unshipped !== undefined && cp.unshipped.through_seq >= stalledAt + 2 && cp.unshipped.through_seq - cp.unshipped.from_seq >= 2;
  }, 90_000).finally(async () => {
    stalling = false;
    await stall;
  });
  node.proc!.kill('SIGCONT');
  fs.writeFileSync(stopFile, '');
  assert.equal(await collector.done, 0);
  const last = seqs(h.dir).at(-1)!;
  await until('ship caught up', () => JSON.parse(fs.readFileSync(path.join(h.dir, '.rtev-ship.json'), 'utf8')).acked_seq === last, 120_000);
  await until('ingest caught up', () => headSeq(h) === last, 120_000, statusText);
  // chunks delivered while NATS stalled and not acknowledged come again after --ack-wait
  await until('ingest drained its consumer', drained, 60_000, statusText);
  const cp = checkpointOf(h.dir);
  const s = await statusOf(h);
  assert.equal(pg.psql(`SELECT count(*) FROM rejections WHERE host_id = '${h.machineId}'`), '0', `no chunk rejected (no body shipped missing, no fork):\n${await statusText()}`);
  // ship sent each rewritten checkpoint before the chunk after a removal: for every checkpointed
  // seq, a checkpoint naming it is earlier in the stream than the first indexed chunk after it
  // (else that chunk would have waited for it, or been indexed past an open gap)
  const misordered = pg.psql(`SELECT string_agg(g.from_seq::text, ',') FROM gaps g WHERE g.host_id = '${h.machineId}' AND g.closed_by = 'checkpoint' AND NOT EXISTS (
      SELECT 1 FROM checkpoints k WHERE k.host_id = g.host_id AND k.chain_id = g.chain_id AND k.unshipped_from <= g.from_seq AND k.unshipped_through >= g.through_seq
        AND k.stream_seq < (SELECT c.stream_seq FROM chunks c WHERE c.host_id = g.host_id AND c.chain_id = g.chain_id AND c.seq > g.through_seq ORDER BY c.seq LIMIT 1))`);
  assert.equal(misordered, '', `checkpointed seqs whose next chunk was shipped before a checkpoint named them: ${misordered}\n${ingest!.log.slice(-10).join('')}`);
  assert.equal(s.gapSeqs.open, 0, `every removed chunk is accounted for by the checkpoint:\n${section(await statusText(), h)}`);
  assert.ok(s.gapSeqs.checkpointed > 0, 'some chunks were removed unshipped');
  assertAccount(s, { checkpointed: s.gapSeqs.checkpointed, open: 0 });
  // a checkpointed seq is in the host's signed unshipped range; a filled one arrived after a
  // later chunk was indexed past it (redelivered after a stalled delivery, or a publish the
  // stopped server took after all while ship saw it time out and retention removed the chunk)
  for (const g of s.gaps) assert.ok(g.state === 'filled' || (g.state === 'checkpointed' && g.fromSeq >= cp.unshipped!.from_seq && g.throughSeq <= cp.unshipped!.through_seq), JSON.stringify(g));
  // the chunks still on the host are indexed, byte for byte
  const q = await runRtev(['query', '--db', pg.url('rtev_reader'), '--host', h.name, '--json']);
  const fleetLines = new Set(q.stdout.split('\n').filter((l) => l !== ''));
  for (const l of hostLines(h.dir)) assert.ok(fleetLines.has(l));
  assertIdentity(h);
});

/** a retention checkpoint as the store writes it (src/store/retention.ts), with the facts chosen by the test */
function forgedCheckpoint(key: SigningKey, chainId: string, firstSeq: number, firstEnvelopeSha256: string, unshipped?: [number, number]): Buffer {
  const payload = statementBytes({ name: E(firstSeq), digest: { sha256: firstEnvelopeSha256 } }, CHECKPOINT_PREDICATE_TYPE, {
    chain_id: chainId, first_seq: firstSeq, removed: { from_seq: 1, through_seq: firstSeq - 1, bytes: 1 }, created: { wall_ns: 1n, mono_ns: 1n, uncertainty_ns: 0n },
    ...(unshipped !== undefined ? { unshipped: { from_seq: unshipped[0], through_seq: unshipped[1] } } : {}),
  });
  return serializeEnvelope(signEnvelope(IN_TOTO_PAYLOAD_TYPE, payload, key));
}

test('checkpoints that do not fit the host\'s chain are rejected with their reason: untrusted key, another envelope for an indexed chunk, another chain', { timeout: 120_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const h = hosts['hotel']!;
  const chainId = pg.psql(`SELECT chain_id FROM hosts WHERE host_id = '${h.machineId}'`);
  const env5 = pg.psql(`SELECT envelope_sha256 FROM chunks WHERE host_id = '${h.machineId}' AND seq = 5`);
  assert.match(env5, /^[0-9a-f]{64}$/, 'hotel seq 5 is indexed, seq 4 an open gap (test 2)');
  const key = loadSigningKeyFile(h.key);
  const before = await statusOf(h);
  const nc = await connect({ servers: nats.urls.split(','), timeout: 5000 });
  try {
    const js = jetstream(nc, { timeout: 10_000 });
    const send = async (bytes: Buffer, id: string): Promise<void> => {
      const hd = headers();
      hd.set(HDR_KIND, 'checkpoint');
      await js.publish(envelopeSubject(h.machineId), bytes, { msgID: id, headers: hd });
    };
    // each names hotel's open gap seq 4 as removed unshipped: accepted, it would checkpoint that gap
    await send(forgedCheckpoint(generateSigningKey(), chainId, 5, env5, [4, 4]), 'cp-untrusted');
    await send(forgedCheckpoint(key, chainId, 5, 'ab'.repeat(32), [4, 4]), 'cp-fork');
    await send(forgedCheckpoint(key, '00000000-0000-4000-8000-000000000000', 5, env5, [4, 4]), 'cp-other-chain');
  } finally {
    await nc.close();
  }
  const rejected = (s: HostStatus, code: string) => s.rejected.find((r) => r.code === code)?.count ?? 0;
  await until('three checkpoint rejections', async () => {
    const s = await statusOf(h);
    return rejected(s, 'untrusted-key') > rejected(before, 'untrusted-key') && rejected(s, 'fork') > rejected(before, 'fork') && rejected(s, 'chain-replaced') > rejected(before, 'chain-replaced');
  }, 60_000, statusText);
  const s = await statusOf(h);
  assert.match(s.rejected.find((r) => r.code === 'fork')!.lastReason, /retention checkpoint vouches for envelope abababababababab\.\.\. of seq 5, the indexed seq 5 is/);
  assert.match(s.rejected.find((r) => r.code === 'chain-replaced')!.lastReason, /retention checkpoint of chain 00000000-0000-4000-8000-000000000000/);
  assert.deepEqual(s.gaps.map((g) => [g.state, g.fromSeq]), before.gaps.map((g) => [g.state, g.fromSeq]), 'no gap changed state');
  assert.ok(s.gaps.some((g) => g.state === 'open' && g.fromSeq === 4), 'seq 4 is still an open gap');
  assert.equal(pg.psql(`SELECT count(*) FROM checkpoints WHERE host_id = '${h.machineId}'`), '0', 'none recorded');
  assert.equal(indexed(h), before.chunks, 'nothing lost: the chunk bodies stay indexed');
});
