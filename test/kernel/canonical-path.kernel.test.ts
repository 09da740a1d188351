import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { rootOrSkip, runRtev, tempDir } from '../helpers/collector';

/**
 * A file_open record names the file the kernel opened, canonically (docs/probes.md, "Which
 * path"): `..`, `.`, `//`, symlinked directories and a symlink as the last component are
 * resolved from the opened file itself, so path filters see the truth. A failed open has no
 * file: its path stays as passed.
 */

test('--include-path /etc/hostname catches cat /tmp/../etc/hostname', async (t) => {
  if (!rootOrSkip(t)) return;
  const run = await runRtev(['collect', '--stdout', '--quiet', '--probes', 'file_open', '--include-path', '/etc/hostname', '--', 'sh', '-c', 'cat /tmp/../etc/hostname >/dev/null']);
  assert.equal(run.code, 0, run.stderr);
  const cats = run.records.filter((r) => r.comm === 'cat');
  assert.deepEqual(cats.map((r) => r.event.path), ['/etc/hostname']);
});

test('hostile paths: .., ., //, symlinked directories and symlinks resolve to the opened file', async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = fs.realpathSync(tempDir());
  fs.mkdirSync(path.join(dir, 'real/sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'real/sub/f'), 'x');
  fs.symlinkSync('real', path.join(dir, 'link'));
  fs.symlinkSync(path.join(dir, 'real/sub'), path.join(dir, 'abs-link'));
  fs.symlinkSync('real/sub/f', path.join(dir, 'file-link'));
  const target = path.join(dir, 'real/sub/f');
  const opens = [
    `${dir}/link/sub/f`,
    `${dir}//real/./sub//f`,
    `${dir}/real/sub/../sub/f`,
    `${dir}/abs-link/f`,
    `${dir}/file-link`,
    `${dir}/link/sub/../../link/sub/f`,
    'link/sub/../sub/f', // relative, resolved against the cwd
  ];
  const script = `cd ${dir} && for p in ${opens.join(' ')}; do cat "$p" >/dev/null; done; cat ${dir}/nope/../real/sub/missing 2>/dev/null; true`;
  const run = await runRtev(['collect', '--stdout', '--quiet', '--probes', 'file_open', '--include-failed-opens', '--', 'sh', '-c', script]);
  assert.equal(run.code, 0, run.stderr);
  const cats = run.records.filter((r) => r.comm === 'cat' && (r.event.path as string).startsWith(dir + '/') && !(r.src as string).includes(':failed:'));
  assert.deepEqual(cats.map((r) => r.event.path), opens.map(() => target), JSON.stringify(cats.map((r) => r.event.path)));
  // the failed open keeps the path as passed: nothing was opened to resolve it from
  const failed = run.records.filter((r) => r.comm === 'cat' && (r.src as string).includes(':failed:'));
  assert.ok(failed.some((r) => r.event.path === `${dir}/nope/../real/sub/missing`), JSON.stringify(failed.map((r) => r.event.path)));
});
