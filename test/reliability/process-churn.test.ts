import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { RTEV, rootOrSkip, tempDir } from '../helpers/collector';
import { chunkRecords, finalLedger, ledgerProblems, sleep, vmRssKb } from './helpers';

/**
 * Process churn: EXECS fork+exec of /bin/true in the observed command (5,000; 100,000 with
 * RTEV_HEAVY=1). Every exec is a process_exec record or a counted drop, and the collector's
 * RSS at the end stays within RSS_GROWTH_BOUND_KB of its RSS once collection started.
 */
const EXECS = process.env['RTEV_HEAVY'] === '1' ? 100_000 : 5_000;
export const RSS_GROWTH_BOUND_KB = 64 * 1024;

test(`process churn: ${EXECS} execs all accounted, collector RSS bounded`, { timeout: process.env['RTEV_HEAVY'] === '1' ? 1_800_000 : 300_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const work = tempDir('rtev-rel-churn-');
  const dir = path.join(work, 'evidence');
  const env = { ...process.env, RTEV_KEY_DIR: path.join(work, 'keys') };
  // a little pause first so the start RSS is sampled with probes attached, before the churn
  const script = `sleep 1; i=0; while [ $i -lt ${EXECS} ]; do /bin/true; i=$((i+1)); done`;
  const child = spawn(process.execPath, [RTEV, 'collect', '--out', dir, '--chunk-size', '1M', '--', 'sh', '-c', script], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<number>((r) => child.on('close', (code, sig) => r(code ?? (sig ? 128 : 1))));
  let done = false;
  void exit.then(() => (done = true));
  await sleep(800);
  const start = vmRssKb(child.pid!);
  let last = start;
  let peak = start ?? 0;
  while (!done) {
    const v = vmRssKb(child.pid!);
    if (v !== undefined) { last = v; peak = Math.max(peak, v); }
    await sleep(100);
  }
  const code = await exit;
  assert.equal(code, 0, stderr);
  assert.ok(start !== undefined && last !== undefined);
  console.log(`collector VmRSS: start ${start} kB, end ${last} kB, peak ${peak} kB (bound: end - start <= ${RSS_GROWTH_BOUND_KB} kB)`);
  assert.ok(last! - start! <= RSS_GROWTH_BOUND_KB, `RSS grew by ${last! - start!} kB`);

  const ledger = finalLedger(dir);
  assert.deepEqual(ledgerProblems(ledger), []);
  const pe = ledger.probes['process_exec']!;
  const trues = chunkRecords(dir).filter((x) => x.event.type === 'process_exec' && /\/true$/.test(x.event.filename)).length;
  console.log(`execs ${EXECS}: ${trues} recorded, process_exec ring_full ${pe.kernel.ring_full}, shed ${pe.user.shed}, rejected ${pe.user.rejected}`);
  // sh and sleep are execs too: every /bin/true is recorded or among the counted drops
  assert.ok(trues <= EXECS);
  assert.ok(EXECS - trues <= pe.kernel.ring_full + pe.user.shed + pe.user.rejected, `${EXECS - trues} execs unaccounted`);
});
