/**
 * Soak benchmark (GitHub issue 7): SECONDS (default 600) of mixed load (file opens, fork+exec,
 * loopback TCP connects, TLS requests) under `rtev collect --out DIR --probes
 * file_open,process_exec,tcp_state,net_connect,ssl_op -- load.sh`, with the collector's VmRSS and
 * CPU sampled every 5 s (bench/soak.ts). Prints the samples and a summary; results in
 * docs/benchmarks.md ("Soak"). Run as root after `make build`:
 *   node dist/bench/soak.bench.js [SECONDS]
 * Exits 1 when a soak assertion fails (exit code, verify, ledger, flat memory).
 */
import { RSS_FLAT_BOUND_KB, runSoak } from './soak';

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 600);
  const r = await runSoak(seconds, { log: (s) => console.log(s) });
  const dur = r.samples.length > 0 ? r.samples[r.samples.length - 1]!.t - r.samples[0]!.t : r.wallS;
  console.log(`\nload: ${r.loadSummary}`);
  console.log(`collector exit ${r.code}; verify exit ${r.verifyCode}; wall ${r.wallS.toFixed(1)} s; ${r.samples.length} samples; records in chunks ${r.records}`);
  console.log(`VmRSS kB: start ${r.rss.startKb}, end ${r.rss.endKb}, max ${r.rss.maxKb}, 2nd-quarter median ${r.rss.q2MedianKb}, last-quarter median ${r.rss.q4MedianKb} (growth ${r.rss.q4MedianKb - r.rss.q2MedianKb}, bound ${RSS_FLAT_BOUND_KB})`);
  console.log(`collector CPU (utime+stime over the sampled span): ${r.cpuPercent.toFixed(1)}% of one core`);
  console.log('probe\twritten\twritten/s\tring_full\tshed\trejected\tfiltered');
  for (const [probe, l] of Object.entries(r.ledger?.probes ?? {})) {
    console.log(`${probe}\t${l.user.written}\t${(l.user.written / r.wallS).toFixed(1)}\t${l.kernel.ring_full}\t${l.user.shed}\t${l.user.rejected}\t${l.user.filtered + l.kernel.filtered}`);
  }
  console.log(`ledger complete ${r.ledger?.complete}, lost ${r.ledger?.lost}; problems: ${JSON.stringify(r.ledgerProblems)}`);
  console.log(`samples (t s, rss kB, cpu ticks @${r.clkTck} Hz): ${JSON.stringify(r.samples.map((s) => [Number(s.t.toFixed(1)), s.rssKb, s.cpuTicks]))}`);
  console.log(`evidence: ${r.dir} (span ${dur.toFixed(1)} s)`);
  const ok = r.code === 0 && (r.verifyCode === 0 || r.verifyCode === 10) && r.ledgerProblems.length === 0
    && r.rss.q4MedianKb - r.rss.q2MedianKb < RSS_FLAT_BOUND_KB && r.records === Object.values(r.ledger?.probes ?? {}).reduce((a, l) => a + l.in_chunk, 0);
  if (!ok) {
    console.log(`FAIL\n${r.stderr}\n${r.verifyOut.slice(0, 2000)}`);
    process.exitCode = 1;
  }
}

void main();
