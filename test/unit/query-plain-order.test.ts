/**
 * `rtev query FILE` on plain NDJSON (rtev collect --stdout) gives its records in ts_ns order
 * within a bounded window (PLAIN_ORDER_WINDOW), every record once, and --limit the oldest ones.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { runRtev, tempDir } from '../helpers/collector';

function line(ts: bigint, i: number): string {
  return `{"comm":"c","event":{"access":"read","path":"/f/${i}","type":"file_open"},"pid":${100 + i},"src":"sys_enter_openat","tid":${100 + i},"ts_ns":${ts}}`;
}

test('query FILE: plain NDJSON out of order (two rings merged by arrival) comes out in ts_ns order', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'out.ndjson');
  // opens 0..299 with an exec-like record every 10 written 25 records late; ts beyond 2^53 stay exact
  const base = (1n << 60n) + 7n;
  const rows: { ts: bigint; i: number }[] = [];
  for (let i = 0; i < 300; i++) rows.push({ ts: base + BigInt(i) * 1000n, i });
  const late = rows.filter((r) => r.i % 10 === 5);
  const order = rows.filter((r) => r.i % 10 !== 5);
  for (const r of late) order.splice(Math.min(order.length, order.findIndex((o) => o.i > r.i) + 25), 0, r);
  fs.writeFileSync(file, order.map((r) => line(r.ts, r.i)).join('\n') + '\n');
  const r = await runRtev(['query', file, '--format', 'ndjson']);
  assert.equal(r.code, 0, r.stderr);
  const ts = r.lines.map((l) => BigInt(/"ts_ns":(\d+)/.exec(l)![1]!));
  assert.equal(ts.length, 300);
  assert.deepEqual(ts, rows.map((x) => x.ts), 'every record once, in ts_ns order, exact');
  const limited = await runRtev(['query', file, '--format', 'ndjson', '--limit', '7']);
  assert.deepEqual(limited.lines, rows.slice(0, 7).map((x) => line(x.ts, x.i)), 'the oldest 7');
  fs.rmSync(dir, { recursive: true, force: true });
});
