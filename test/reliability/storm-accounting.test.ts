import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { rootOrSkip, runRtev, tempDir } from '../helpers/collector';
import { buildStorm, chunkRecords, finalLedger, ledgerProblems, predicates } from './helpers';

/**
 * Exact accounting under an open() storm that overflows a 64 KiB file_open ring, with execs
 * and TCP connects running at the same time in the observed command. The rare events use
 * their own ring and must all be there; every lost open must be counted (docs/reliability.md).
 */
const STORM_N = Number(process.env['RTEV_STORM_N'] ?? 300_000);
const EXECS = 20;
const CONNECTS = 20;

test('storm on a 64K ring: ledger identities hold, storm losses are counted, every exec and connect is recorded', { timeout: 240_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const storm = buildStorm();
  const work = tempDir('rtev-rel-acct-');
  const target = path.join(work, 'storm-target');
  fs.writeFileSync(target, 'x');
  const dir = path.join(work, 'evidence');
  const env = { ...process.env, RTEV_KEY_DIR: path.join(work, 'keys') };
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const script = [
    `${storm} ${STORM_N} ${target} > ${work}/storm.out &`,
    `i=0; while [ $i -lt ${EXECS} ]; do /bin/true; i=$((i+1)); done`,
    `i=0; while [ $i -lt ${CONNECTS} ]; do bash -c 'exec 3<>/dev/tcp/127.0.0.1/${port}' 2>/dev/null; i=$((i+1)); done`,
    'wait',
  ].join('\n');
  try {
    const r = await runRtev(['collect', '--out', dir, '--ring-size', '64K', '--chunk-size', '4M', '--', 'sh', '-c', script], { env, timeoutMs: 220_000 });
    assert.equal(r.code, 0, r.stderr);
    const ledger = finalLedger(dir);
    console.log(`ledger: ${JSON.stringify(ledger.probes)}`);
    assert.deepEqual(ledgerProblems(ledger), []);

    const records = chunkRecords(dir);
    const fo = ledger.probes['file_open']!;
    // what the chunks hold is exactly what the ledger says was written
    for (const probe of Object.keys(ledger.probes)) {
      const inFiles = records.filter((x) => x.event.type === probe).length;
      assert.equal(inFiles, ledger.probes[probe]!.user.written, `${probe}: records in chunks vs ledger written`);
      const inChunks = predicates(dir).reduce((s, p) => s + p.ledger.probes[probe].in_chunk, 0);
      assert.equal(inChunks, inFiles, `${probe}: sum of in_chunk`);
    }
    // the storm overflowed the ring, and each storm open is either recorded or among the counted ring-full drops
    const stormOpens = records.filter((x) => x.event.type === 'file_open' && x.event.path === target).length;
    assert.ok(fo.kernel.ring_full > 0, 'the 64K ring never overflowed: raise RTEV_STORM_N');
    assert.ok(stormOpens <= STORM_N, `${stormOpens} storm records for ${STORM_N} opens`);
    assert.ok(STORM_N - stormOpens <= fo.kernel.ring_full, `${STORM_N - stormOpens} storm opens missing but only ${fo.kernel.ring_full} counted as ring-full`);
    assert.equal(ledger.complete, false, 'a run with ring-full drops must not claim completeness');
    assert.ok(ledger.lost >= STORM_N - stormOpens);
    // rare events: separate ring, nothing lost
    assert.equal(ledger.probes['process_exec']!.kernel.ring_full, 0);
    assert.equal(ledger.probes['tcp_state']!.kernel.ring_full, 0);
    const trues = records.filter((x) => x.event.type === 'process_exec' && /\/true$/.test(x.event.filename)).length;
    assert.equal(trues, EXECS, 'exec records of /bin/true');
    const bashes = records.filter((x) => x.event.type === 'process_exec' && /\/bash$/.test(x.event.filename)).length;
    assert.equal(bashes, CONNECTS, 'exec records of bash');
    const synSent = records.filter((x) => x.event.type === 'tcp_state' && x.event.dport === port && x.event.newstate === 'SYN_SENT').length;
    assert.equal(synSent, CONNECTS, 'tcp_state SYN_SENT records to the test port');
    console.log(`storm ${STORM_N} opens: ${stormOpens} recorded, ring_full ${fo.kernel.ring_full}; execs ${trues + bashes}; connects ${synSent}`);
  } finally {
    server.close();
  }
});
