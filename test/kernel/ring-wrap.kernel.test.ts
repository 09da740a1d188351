import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { rootOrSkip, runRtev, tempDir } from '../helpers/collector';

/**
 * The addon maps a kernel ring's data area once (native/ring.c, `struct kring`; libbpf maps it
 * twice so a record crossing the end reads as one piece) and joins the records that cross its end.
 * A 16 KiB ring and 3000 opens of files whose names have every length from 1 to 240 bytes: the
 * records (about 100 to 350 bytes) go round the ring about 50 times, and nearly every lap ends in
 * a record cut in two by the end of the data area. Every record delivered must name one of the
 * files, each at most once, on the fast path (the C encoder reads the joined record) and on the
 * reference path (JS decodes it); delivered + lost = opened.
 */

const OPENS = 3000;

function names(dir: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < OPENS; i++) out.push(path.join(dir, `f${i}-${'abcdefghij'.repeat(24).slice(0, i % 240)}`));
  return out;
}

for (const fast of ['1', '0']) {
  test(`records that cross the end of a 16 KiB ring arrive whole (RTEV_FAST_PATH=${fast})`, { timeout: 120_000 }, async (t) => {
    if (!rootOrSkip(t)) return;
    const dir = fs.realpathSync(tempDir('rtev-wrap-'));
    const files = names(dir);
    for (const f of files) fs.writeFileSync(f, 'x');
    const list = path.join(dir, 'list');
    fs.writeFileSync(list, files.join('\n') + '\n');
    // 50 opens (at most 17 KiB of records) between pauses, so the consumer keeps up with a 16 KiB ring
    const script = `n=0; while read -r f; do : < "$f"; n=$((n+1)); [ $((n % 50)) -eq 0 ] && sleep 0.01; done < ${list}; true`;
    const run = await runRtev(['collect', '--stdout', '--probes', 'file_open', '--ring-size', '16K', '--', 'sh', '-c', script],
      { env: { ...process.env, RTEV_FAST_PATH: fast }, timeoutMs: 110_000 });
    assert.equal(run.code, 0, run.stderr);
    const wanted = new Set(files);
    const seen = new Set<string>();
    for (const r of run.records) {
      const p = r.event?.path;
      if (typeof p !== 'string' || !p.startsWith(`${dir}/f`)) continue;
      assert.ok(wanted.has(p), `a path that was never opened: ${JSON.stringify(p)}`);
      assert.ok(!seen.has(p), `delivered twice: ${p}`);
      seen.add(p);
    }
    const summary = /(\d+) lost/.exec(run.stderr);
    assert.ok(summary, run.stderr);
    const lost = Number(summary[1]);
    // every loss is a file_open of ours or of the shell (the list, sleep's libraries): at most that many of ours
    assert.ok(seen.size + lost >= OPENS, `${seen.size} delivered + ${lost} lost < ${OPENS} opened: ${run.stderr}`);
    assert.ok(seen.size >= OPENS / 2, `most records arrive (${seen.size} of ${OPENS}; ${run.stderr})`);
  });
}
