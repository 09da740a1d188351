/**
 * Where the index build's time goes (issue 15): builds the index of the first K chunks of the
 * report benchmark's evidence (copied) and times each phase of EvidenceIndex's per-chunk
 * ingest by wrapping its methods: ingest (all), load (read_json + raw lines into records),
 * checkLoaded (parsed rows against the bytes and the signed summary), loadAttribution,
 * aggregateChunk (per-chunk aggregates), insertChunk; the rest of ingest is the envelope
 * check, reading the chunk and its sha256. Plus the final CHECKPOINT (refresh minus ingests).
 *
 *   nice -n 10 node dist/bench/report-ingest-phases.js [--chunks 8] [--evidence /var/tmp/rtev-bench-report/ev-10000000]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EvidenceIndex, openEvidenceIndex } from '../src/index/index';
import { loadVerifyKeyFile } from '../src/sign/key-files';

async function main(): Promise<void> {
  const v = process.argv.slice(2);
  let chunks = 8;
  let evidence = '/var/tmp/rtev-bench-report/ev-10000000';
  for (let i = 0; i < v.length; i++) {
    if (v[i] === '--chunks') chunks = Number(v[++i]);
    else if (v[i] === '--evidence') evidence = v[++i]!;
  }
  const work = fs.mkdtempSync(path.join('/var/tmp', 'rtev-phases-'));
  try {
    fs.mkdirSync(path.join(work, 'ev'));
    for (let s = 1; s <= chunks; s++) {
      for (const ext of ['ndjson', 'dsse.json']) {
        const f = `chunk-${String(s).padStart(12, '0')}.${ext}`;
        // a copy: a hard link would change the chunk's ctime, and every index of the evidence would re-ingest it
        fs.copyFileSync(path.join(evidence, f), path.join(work, 'ev', f));
      }
    }
    const spent = new Map<string, number>();
    const proto = EvidenceIndex.prototype as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    for (const name of ['ingest', 'load', 'checkLoaded', 'loadAttribution', 'aggregateChunk', 'insertChunk', 'refresh']) {
      const orig = proto[name];
      if (orig === undefined) continue;
      proto[name] = async function (this: unknown, ...a: unknown[]) {
        const t = process.hrtime.bigint();
        try {
          return await orig.apply(this, a);
        } finally {
          spent.set(name, (spent.get(name) ?? 0) + Number(process.hrtime.bigint() - t) / 1e6);
        }
      };
    }
    const load = (): string => os.loadavg().map((x) => x.toFixed(1)).join(' ');
    console.log(`index phases: ${chunks} chunks of ${evidence}; load ${load()}`);
    const t = process.hrtime.bigint();
    const idx = await openEvidenceIndex({ source: path.join(work, 'ev'), indexPath: path.join(work, 'idx.duckdb'), keys: [loadVerifyKeyFile(path.join(path.dirname(evidence), 'keys', 'signing.key.pub'))] });
    const total = Number(process.hrtime.bigint() - t) / 1e6;
    const records = idx.sync.records;
    await idx.close();
    const g = (k: string): number => spent.get(k) ?? 0;
    const inner = g('load') + g('checkLoaded') + g('loadAttribution') + g('aggregateChunk') + g('insertChunk');
    const parts = [['load', g('load')], ['checkLoaded', g('checkLoaded')], ['loadAttribution', g('loadAttribution')], ['aggregateChunk', g('aggregateChunk')],
      ['insertChunk', g('insertChunk')], ['envelope+read+sha256', g('ingest') - inner], ['checkpoints+discovery', g('refresh') - g('ingest')], ['open', total - g('refresh')]] as const;
    console.log(`total ${(total / 1000).toFixed(2)} s, ${records} records, ${(Number(records) / (total / 1000)).toFixed(0)} records/s; load ${load()}`);
    for (const [k, ms] of parts) console.log(`  ${k.padEnd(34)} ${(ms / 1000).toFixed(2)} s  ${((100 * ms) / total).toFixed(0)}%`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
