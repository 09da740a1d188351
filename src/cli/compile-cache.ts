import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * enableCompileCache: on Node >= 22.1, V8's code cache for rtev's own modules is kept between runs
 * (module.enableCompileCache), so a run does not compile them again (docs/benchmarks.md,
 * "Session 5 (h28)"). The cache lives in RTEV_CACHE_DIR/compile (default /var/cache/rtev, the
 * directory of the dpkg cache): a root collector must not load code caches that another user
 * could have written, so it is used only when the directory and its parent are the process's own
 * and closed to others (created 0700 when missing). RTEV_CACHE_DIR=off turns it off; Node 20 has
 * no such API and runs without it.
 * Returns the directory in use, or undefined.
 */
export function enableCompileCache(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const mod = require('node:module') as { enableCompileCache?: (dir: string) => { status: number; directory?: string } };
  if (typeof mod.enableCompileCache !== 'function') return undefined;
  const base = env['RTEV_CACHE_DIR'] ?? DEFAULT_CACHE_DIR;
  if (base === '' || base === 'off') return undefined;
  const root = path.resolve(base);
  const dir = path.join(root, 'compile');
  if (!ownDir(root) || !ownDir(dir)) return undefined;
  try {
    const r = mod.enableCompileCache(dir);
    // (status: ENABLED 1, ALREADY_ENABLED 2; FAILED 0, DISABLED 3 by NODE_DISABLE_COMPILE_CACHE)
    return r.status === 1 || r.status === 2 ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** the same default as the dpkg cache (src/packages/dpkg-cache.ts) */
const DEFAULT_CACHE_DIR = '/var/cache/rtev';

/** dir exists (or was created 0700) as a real directory of ours that others cannot write to */
function ownDir(dir: string): boolean {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return false;
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
      st = fs.lstatSync(dir);
    } catch {
      return false;
    }
  }
  const euid = typeof process.geteuid === 'function' ? process.geteuid() : 0;
  return st.isDirectory() && st.uid === euid && (st.mode & 0o022) === 0;
}
