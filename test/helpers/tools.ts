import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Host tools that some unit tests run, as builders (gcc, go) or as independent oracles
 * (readelf, openssl, dpkg). The Makefile installs every one of them (APT_PACKAGES, `make deps`),
 * so a missing tool is a broken machine, not a reason to skip: requireTools fails the test with
 * the tool, the Debian package that has it and the command that installs it. Each test file
 * that uses one says at its top why a recorded fixture would not do.
 */

/** Debian package of each tool the tests run (all of them are in the Makefile's APT_PACKAGES). */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  gcc: 'gcc',
  objcopy: 'binutils',
  strip: 'binutils',
  nm: 'binutils',
  readelf: 'binutils',
  xz: 'xz-utils',
  go: 'golang-go',
  openssl: 'openssl',
  curl: 'curl',
  dpkg: 'dpkg',
  'dpkg-query': 'dpkg',
  'systemd-analyze': 'systemd',
  bpftool: 'bpftool',
  containerd: 'containerd',
  ctr: 'containerd',
};

/** which finds an executable on PATH (no shell), or undefined. */
export function which(tool: string, pathVar = process.env['PATH'] ?? ''): string | undefined {
  for (const dir of pathVar.split(':')) {
    if (dir === '') continue;
    const file = path.join(dir, tool);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** missingTools names the tools of `tools` that are not on PATH, with their packages. */
export function missingTools(tools: readonly string[], pathVar?: string): string[] {
  return tools.filter((t) => which(t, pathVar) === undefined).map((t) => `${t} (Debian package ${TOOL_PACKAGES[t] ?? 'unknown'})`);
}

/** requireTools throws (failing the calling test) unless every tool is on PATH. */
export function requireTools(...tools: string[]): void {
  const missing = missingTools(tools);
  if (missing.length > 0) {
    throw new Error(`this test needs ${missing.join(', ')}, which is not on PATH: \`make deps\` installs it (Makefile APT_PACKAGES)`);
  }
}
