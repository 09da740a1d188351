import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { compileC, rootOrSkip, runRtev, tempDir } from '../helpers/collector';

/**
 * file_open covers openat, openat2, open and creat with one exit program attached to the four
 * sys_exit tracepoints (bpf/file_open.h, src/ingest/probes.ts `explicit`): each syscall gives
 * its record with its own `src`, flags and path, a failed one none by default.
 * The program is test/progs/open_syscalls.c.
 */

test('openat, openat2, open and creat: one record each, from one shared exit program', async (t) => {
  if (!rootOrSkip(t)) return;
  const bin = compileC('open_syscalls.c');
  const dir = fs.realpathSync(tempDir());
  fs.writeFileSync(path.join(dir, 'f0'), 'x');
  fs.writeFileSync(path.join(dir, 'f2'), 'x');
  const run = await runRtev(['collect', '--stdout', '--quiet', '--probes', 'file_open', '--', bin, dir]);
  assert.equal(run.code, 0, run.stderr);
  const mine = run.records.filter((r) => typeof r.event.path === 'string' && (r.event.path as string).startsWith(`${dir}/`));
  const bySrc = Object.fromEntries(mine.map((r) => [r.src, r.event.path]));
  assert.deepEqual(bySrc, {
    sys_enter_openat: `${dir}/f0`,
    sys_enter_openat2: `${dir}/f1`,
    sys_enter_open: `${dir}/f2`,
    sys_enter_creat: `${dir}/f3`,
  });
  const creat = mine.find((r) => r.src === 'sys_enter_creat')!;
  assert.equal(creat.event.access, 'write');
  assert.ok(!run.records.some((r) => r.event.path === '/nonexistent-rtev-file'), 'a failed open is not recorded by default');
});
