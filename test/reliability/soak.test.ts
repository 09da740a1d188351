import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { rootOrSkip } from '../helpers/collector';
import { RSS_FLAT_BOUND_KB, runSoak } from '../../bench/soak';

/**
 * Soak (docs/reliability.md): RTEV_SOAK_SECONDS (default 60; the 10-minute run is
 * bench/soak.bench.ts) of mixed load — file opens and loopback TCP connects (python), fork+exec,
 * TLS requests (curl -> openssl s_server) — under `rtev collect --out` with five probes. The
 * collector exits 0, the chain verifies (0 or 10, never 11), the ledger identities hold, every
 * record counted in the ledger is in a chunk, and memory is flat: the median VmRSS of the last
 * quarter exceeds that of the second quarter by less than RSS_FLAT_BOUND_KB.
 */
const SECONDS = Number(process.env['RTEV_SOAK_SECONDS'] ?? 60);

test(`soak: ${SECONDS} s of mixed load, ledger holds, memory flat`, { timeout: (SECONDS + 300) * 1000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const r = await runSoak(SECONDS);
  assert.equal(r.code, 0, `collector exit ${r.code}: ${r.stderr}\nload: ${r.loadSummary}`);
  assert.ok(r.verifyCode === 0 || r.verifyCode === 10, `verify exit ${r.verifyCode}: ${r.verifyOut.slice(0, 2000)}`);
  assert.deepEqual(r.ledgerProblems, []);
  const ledger = r.ledger!;
  const inChunk = Object.values(ledger.probes).reduce((a, l) => a + l.in_chunk, 0);
  assert.equal(r.records, inChunk, 'records in the chunk files != sum of in_chunk');
  const written = Object.values(ledger.probes).reduce((a, l) => a + l.user.written, 0);
  assert.equal(r.records, written, 'records in the chunk files != sum of written');
  for (const probe of ['file_open', 'process_exec', 'tcp_state', 'net_connect', 'ssl_op']) {
    assert.ok((ledger.probes[probe]?.user.written ?? 0) > 0, `no ${probe} record: the load did not exercise every probe`);
  }
  assert.ok(r.samples.length >= 8, `only ${r.samples.length} samples`);
  const growth = r.rss.q4MedianKb - r.rss.q2MedianKb;
  const rates = Object.entries(ledger.probes).map(([p, l]) => `${p} ${(l.user.written / r.wallS).toFixed(0)}/s (ring_full ${l.kernel.ring_full}, shed ${l.user.shed})`).join(', ');
  console.log(`soak ${SECONDS} s: load ${r.loadSummary}; VmRSS start ${r.rss.startKb} kB, end ${r.rss.endKb} kB, max ${r.rss.maxKb} kB, q2 median ${r.rss.q2MedianKb}, q4 median ${r.rss.q4MedianKb}; CPU ${r.cpuPercent.toFixed(1)}%; ${rates}; verify exit ${r.verifyCode}`);
  assert.ok(growth < RSS_FLAT_BOUND_KB, `VmRSS grew by ${growth} kB between the 2nd and the last quarter (bound ${RSS_FLAT_BOUND_KB} kB)`);
});
