import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';

/**
 * bin/rtev runs the CLI from the esbuild bundle dist/bundle/main.js (docs/architecture.md, "The CLI
 * bundle"): one file instead of dist/src's modules; RTEV_BUNDLE=0 runs dist/src. The other CLI tests
 * (cli-*.test.ts, collector.test.ts, the kernel and e2e tiers) spawn bin/rtev, so they test the bundle.
 */
const REPO = path.resolve(__dirname, '..', '..', '..');
const BIN = path.join(REPO, 'bin', 'rtev');

/** the files node loaded for `rtev ARGS` (a --require preload lists require.cache and the source map switch at exit) */
function loaded(args: string[], env: NodeJS.ProcessEnv = {}): { files: string[]; sourceMaps: boolean; status: number | null; stdout: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-bundle-'));
  try {
    const preload = path.join(dir, 'preload.js');
    const out = path.join(dir, 'loaded.json');
    fs.writeFileSync(preload, `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify({ files: Object.keys(require.cache), sourceMaps: process.sourceMapsEnabled === true })));\n`);
    const run = spawnSync(process.execPath, ['--require', preload, BIN, ...args], { encoding: 'utf8', cwd: '/', env: { ...process.env, RTEV_CACHE_DIR: 'off', ...env } });
    const seen = JSON.parse(fs.readFileSync(out, 'utf8')) as { files: string[]; sourceMaps: boolean };
    return { ...seen, status: run.status, stdout: run.stdout };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const rtevFiles = (files: string[]): string[] => files.filter((f) => f.startsWith(path.join(REPO, 'dist') + path.sep)).map((f) => path.relative(REPO, f)).sort();

test('bin/rtev loads the CLI from the bundle, `rtev collect` from the bundle of that command alone: no module of dist/src', () => {
  const r = loaded(['collect', '--help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /^usage: rtev collect/);
  assert.deepEqual(rtevFiles(r.files), ['dist/bundle/collect-main.js', 'dist/bundle/compile-cache.js']);
  assert.equal(r.sourceMaps, false, 'no source map is read without RTEV_DEBUG');
  const all = loaded(['help', 'collect']);
  assert.equal(all.status, 0);
  assert.equal(all.stdout, r.stdout, 'the same usage from either bundle');
  assert.deepEqual(rtevFiles(all.files), ['dist/bundle/compile-cache.js', 'dist/bundle/main.js']);
  const collectBundle = fs.readFileSync(path.join(REPO, 'dist', 'bundle', 'collect-main.js'), 'utf8');
  assert.ok(!collectBundle.includes('src/cli/commands/query.ts') && collectBundle.includes('src/cli/commands/collect.ts'), 'collect-main.js holds collect only');
});

test('RTEV_BUNDLE=0 runs the CLI from dist/src, the same commands', () => {
  const bundled = loaded(['collect', '--help']);
  const r = loaded(['collect', '--help'], { RTEV_BUNDLE: '0' });
  assert.equal(r.status, 0);
  assert.equal(r.stdout, bundled.stdout);
  const files = rtevFiles(r.files);
  assert.ok(files.includes('dist/src/cli/main.js') && files.includes('dist/src/cli/commands/collect.js'), files.join(' '));
  assert.ok(!files.some((f) => f.startsWith('dist/bundle/')), files.join(' '));
});

test('RTEV_DEBUG=1 turns source maps on before the bundle loads (stacks name src/*.ts lines)', () => {
  const r = loaded(['--version'], { RTEV_DEBUG: '1' });
  assert.equal(r.status, 0);
  assert.equal(r.sourceMaps, true);
  const map = JSON.parse(fs.readFileSync(path.join(REPO, 'dist', 'bundle', 'main.js.map'), 'utf8')) as { sources: string[] };
  assert.ok(map.sources.some((s) => s.endsWith('src/cli/main.ts')), 'the map points at the TypeScript sources');
});

test('the seal worker is bundled beside the CLI (chunk-writer starts it from its own directory)', () => {
  const worker = fs.readFileSync(path.join(REPO, 'dist', 'bundle', 'seal-worker.js'), 'utf8');
  assert.match(worker, /parentPort/);
  for (const b of ['main.js', 'collect-main.js']) assert.match(fs.readFileSync(path.join(REPO, 'dist', 'bundle', b), 'utf8'), /"seal-worker\.js"/);
});
