/**
 * bench/symbolize.bench.ts — frames/s of Symbolizer.describeCall against a live test
 * process (cold and warm address cache) and the cache hit rate. Run:
 *   npx tsc -p tsconfig.json && node dist/bench/symbolize.bench.js [events]
 */
import * as os from 'node:os';
import { Symbolizer } from '../src/symbolize';
import { buildC, start, tempDir } from '../test/progs/func/build';

async function run(): Promise<void> {
  const events = Number(process.argv[2] ?? 200_000);
  const v = buildC(tempDir('rtev-bench-'));
  const p = await start(v.pie);
  try {
    const vuln = p.values['vuln']!;
    const ret = p.values['ret']!;
    // Fake but realistic stacks: the probed function, its caller, plus libc frames.
    const stacks: bigint[][] = [];
    for (let i = 0; i < 64; i++) stacks.push([vuln, ret, ret + BigInt(i % 8), vuln + BigInt(i)]);
    const header = `date=${new Date().toISOString()} node=${process.version} cpu="${os.cpus()[0]?.model}" kernel=${os.release()} arch=${process.arch}`;
    console.log(header);
    const s = new Symbolizer();
    let t0 = process.hrtime.bigint();
    s.describeCall(p.pid, undefined, vuln, stacks[0]!);
    const coldNs = Number(process.hrtime.bigint() - t0);
    t0 = process.hrtime.bigint();
    let frames = 0;
    for (let i = 0; i < events; i++) {
      const st = stacks[i % stacks.length]!;
      frames += s.describeCall(p.pid, undefined, vuln, st).frames.length;
    }
    const ns = Number(process.hrtime.bigint() - t0);
    const c = s.cacheStats();
    console.log(`cold first call (load ELF, maps, component): ${(coldNs / 1e6).toFixed(2)} ms`);
    console.log(`warm: ${events} events, ${frames} frames in ${(ns / 1e6).toFixed(1)} ms`);
    console.log(`  ${((frames / ns) * 1e9).toFixed(0)} frames/s, ${((events / ns) * 1e9).toFixed(0)} events/s, ${(ns / events).toFixed(0)} ns/event`);
    console.log(`  addr cache hit rate ${((100 * c.hits) / (c.hits + c.misses)).toFixed(2)}% (${c.hits} hits, ${c.misses} misses, ${c.size} entries), objects ${c.objects}`);
  } finally {
    await p.stop();
  }
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
