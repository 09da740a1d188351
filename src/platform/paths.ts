/**
 * The package root and the files rtev finds relative to it, computed in one place.
 * Compiled code lives in dist/src/..., tests in dist/test/..., sources in src/...: the root
 * is the nearest directory above this module whose package.json names the package "rtev",
 * so the answer does not depend on how deep the calling module sits.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

let root: string | undefined;

/** packageRoot is the directory holding rtev's package.json. */
export function packageRoot(): string {
  if (root !== undefined) return root;
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    try {
      if ((JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: unknown }).name === 'rtev') return (root = dir);
    } catch {
      // no package.json here (or not ours): go up
    }
    if (path.dirname(dir) === dir) throw new Error(`rtev's package.json not found above ${__dirname}`);
  }
}

/** packagePath joins parts onto the package root. */
export function packagePath(...parts: string[]): string {
  return path.join(packageRoot(), ...parts);
}

/** packageVersion is the version in package.json. */
export function packageVersion(): string {
  return (JSON.parse(fs.readFileSync(packagePath('package.json'), 'utf8')) as { version: string }).version;
}

/**
 * bpfObjectPath: build/rtev.bpf.o, or on a kernel older than 6.2 build/rtev-compat.bpf.o (the same
 * programs walking the task through its trusted pointer: the main object casts it with the
 * bpf_rdonly_cast kfunc, which such kernels lack; bpf/common.h `walk_task`), or RTEV_BPF_OBJECT
 * (another build, for A/B benchmarks).
 */
export function bpfObjectPath(env: NodeJS.ProcessEnv = process.env, release: string = os.release()): string {
  return env['RTEV_BPF_OBJECT'] || packagePath('build', hasRdonlyCast(release) ? 'rtev.bpf.o' : 'rtev-compat.bpf.o');
}

/** hasRdonlyCast: the kernel release (uname -r) is 6.2 or newer; an unparsable one counts as new. */
export function hasRdonlyCast(release: string): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (m === null) return true;
  const major = Number(m[1]), minor = Number(m[2]);
  return major > 6 || (major === 6 && minor >= 2);
}

/**
 * addonPath: the N-API addon, or RTEV_NATIVE_ADDON (the sanitizer build in native/build-asan,
 * `make native-asan`, which needs libasan preloaded: scripts/run-tests.sh).
 */
export function addonPath(env: NodeJS.ProcessEnv = process.env): string {
  return env['RTEV_NATIVE_ADDON'] || packagePath('native', 'build', 'Release', 'rtev_native.node');
}

/** schemaPath: the Runtime Evidence Record schema. */
export function schemaPath(): string {
  return packagePath('schema', 'runtime-evidence.v1.json');
}
