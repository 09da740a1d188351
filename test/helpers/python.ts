import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO } from './collector';

/**
 * The CPython with the perf trampoline (`-X perf`, Python >= 3.12) that the Python case of
 * test/unit/symbolize-runtimes.test.ts runs. `make python-perf` (a prerequisite of `make test`
 * and `make test-unit`) puts it at .cache/python3/bin/python3 (scripts/install-python-perf.sh:
 * Debian 13's python3.13 from the Debian archive; Debian 12's own python3 is 3.11).
 * RTEV_PYTHON_PERF names another one.
 */
export const PYTHON_PERF = path.join(REPO, '.cache', 'python3', 'bin', 'python3');

const PROBE = 'import sys, sysconfig; print(sys.version_info >= (3, 12) and sysconfig.get_config_var("PY_HAVE_PERF_TRAMPOLINE") == 1)';

/** perfPython: the interpreter to use, or why there is none (the reason names the fix). */
export function perfPython(env: NodeJS.ProcessEnv = process.env): { python: string } | { missing: string } {
  const explicit = env['RTEV_PYTHON_PERF'];
  const cand = explicit !== undefined && explicit !== '' ? explicit : PYTHON_PERF;
  if (!fs.existsSync(cand)) {
    return {
      missing: cand === PYTHON_PERF
        ? `no ${cand}: \`make python-perf\` installs a CPython >= 3.12 with the perf trampoline there (Debian 12's python3 is 3.11, which has none)`
        : `RTEV_PYTHON_PERF names ${cand}, which does not exist`,
    };
  }
  const r = spawnSync(cand, ['-c', PROBE], { encoding: 'utf8' });
  if (r.status !== 0 || r.stdout.trim() !== 'True') {
    const why = r.error?.message ?? (r.status !== 0 ? `exit ${r.status}: ${r.stderr.trim().slice(0, 300)}` : 'it is older than 3.12 or built without the perf trampoline');
    return { missing: `${cand} does not run as a Python >= 3.12 with the perf trampoline (${why}): run \`make python-perf\` again` };
  }
  return { python: cand };
}
