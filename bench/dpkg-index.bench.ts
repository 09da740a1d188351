/**
 * bench/dpkg-index.bench.ts: what loading the host's dpkg database costs the collector (CPU and
 * memory), the fixed cost of package attribution in a signed run (docs/benchmarks.md, "Session 3").
 * One load per process, so each figure is a cold load:
 *   node --expose-gc dist/bench/dpkg-index.bench.js [DIST_ROOT] [ROUNDS]
 * DIST_ROOT is another build's dist/ (e.g. main's, for a before/after in one run); default: this one.
 * Builds with src/packages/dpkg-cache.ts run twice more per round: "cache-hit" (the host's index
 * from a cache file a first, unmeasured load wrote into a fresh directory) and "cache-miss"
 * (an empty directory: the database read, then the file written).
 * Prints per round: CPU ms (user+sys of the load), heap and arrayBuffers MB retained after a GC,
 * RSS MB growth, owned paths, and the answers for a few paths (both builds must agree).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const PROBE_PATHS = ['/usr/bin/ls', '/bin/ls', '/usr/lib/x86_64-linux-gnu/libc.so.6', '/lib/x86_64-linux-gnu/libc.so.6', '/etc/passwd', '/usr/bin/node', '/nonexistent/x', '/usr/share/doc'];

interface Row { cpuMs: number; heapMB: number; arrayBuffersMB: number; rssMB: number; ownedPaths: number; lookupUs: number; answers: (string | null)[] }

async function child(dist: string, cacheMode: string | undefined): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { PackageResolver } = require(path.join(dist, 'src/packages/resolver.js')) as typeof import('../src/packages/resolver');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { hostRoot } = require(path.join(dist, 'src/packages/host/root.js')) as typeof import('../src/packages/host/root');
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
  let cache: unknown;
  if (cacheMode !== undefined) {
    const { DpkgCache } = require(path.join(dist, 'src/packages/dpkg-cache.js')) as typeof import('../src/packages/dpkg-cache');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-dpkg-bench-'));
    if (cacheMode === 'hit') {
      // in another process: this one's load must be cold (JIT, module code) like a collector start
      execFileSync(process.execPath, [__filename, '--write-cache', dist, dir]);
    }
    cache = new DpkgCache(dir);
  }
  gc();
  const m0 = process.memoryUsage();
  const c0 = process.cpuUsage();
  // (an older build's resolver takes no cache and ignores the argument)
  const r = new PackageResolver(hostRoot(), undefined, cache as import('../src/packages/dpkg-cache').DpkgCache | undefined);
  await r.attribute('/usr/bin/ls', 'exec');
  const c1 = process.cpuUsage(c0);
  gc();
  const m1 = process.memoryUsage();
  const answers: (string | null)[] = [];
  for (const p of PROBE_PATHS) answers.push((await r.attribute(p)).purl);
  const t0 = process.hrtime.bigint();
  const M = 20000;
  for (let i = 0; i < M; i++) await r.attribute(PROBE_PATHS[i % PROBE_PATHS.length]!);
  const lookupUs = Number(process.hrtime.bigint() - t0) / 1000 / M;
  const row: Row = {
    cpuMs: (c1.user + c1.system) / 1000,
    heapMB: (m1.heapUsed - m0.heapUsed) / 2 ** 20,
    arrayBuffersMB: (m1.arrayBuffers - m0.arrayBuffers) / 2 ** 20,
    rssMB: (m1.rss - m0.rss) / 2 ** 20,
    ownedPaths: r.c.dpkg.ownedPaths,
    lookupUs,
    answers,
  };
  process.stdout.write(JSON.stringify(row) + '\n');
}

async function writeCache(dist: string, dir: string): Promise<void> {
  const { PackageResolver } = require(path.join(dist, 'src/packages/resolver.js')) as typeof import('../src/packages/resolver');
  const { hostRoot } = require(path.join(dist, 'src/packages/host/root.js')) as typeof import('../src/packages/host/root');
  const { DpkgCache } = require(path.join(dist, 'src/packages/dpkg-cache.js')) as typeof import('../src/packages/dpkg-cache');
  await new PackageResolver(hostRoot(), undefined, new DpkgCache(dir)).attribute('/usr/bin/ls', 'exec');
}

function main(): void {
  if (process.argv[2] === '--child') {
    void child(process.argv[3]!, process.argv[4]);
    return;
  }
  if (process.argv[2] === '--write-cache') {
    void writeCache(process.argv[3]!, process.argv[4]!);
    return;
  }
  const dists = [path.resolve(__dirname, '..'), ...(process.argv[2] !== undefined ? [path.resolve(process.argv[2])] : [])];
  const rounds = Number(process.argv[3] ?? 3);
  console.log('round\tbuild\tcpu_ms\theap_mb\tarray_buffers_mb\trss_growth_mb\towned_paths\tattribute_us');
  const answers = new Map<string, string>();
  for (let i = 1; i <= rounds; i++) {
    for (const d of i % 2 === 1 ? dists : [...dists].reverse()) {
      const modes = fs.existsSync(path.join(d, 'src/packages/dpkg-cache.js')) ? [undefined, 'miss', 'hit'] : [undefined];
      for (const mode of modes) {
        const out = execFileSync(process.execPath, ['--expose-gc', __filename, '--child', d, ...(mode !== undefined ? [mode] : [])], { encoding: 'utf8' });
        const row = JSON.parse(out) as Row;
        answers.set(`${d} ${mode ?? ''}`, JSON.stringify(row.answers));
        console.log([i, mode !== undefined ? `${d} cache-${mode}` : d, row.cpuMs.toFixed(0), row.heapMB.toFixed(1), row.arrayBuffersMB.toFixed(1), row.rssMB.toFixed(1), row.ownedPaths, row.lookupUs.toFixed(2)].join('\t'));
      }
    }
  }
  const distinct = new Set(answers.values());
  console.log(distinct.size === 1 ? `answers agree: ${[...distinct][0]}` : `ANSWERS DIFFER: ${[...answers].map(([d, a]) => `${d}: ${a}`).join(' | ')}`);
}

main();
