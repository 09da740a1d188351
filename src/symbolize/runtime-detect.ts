import * as path from 'node:path/posix';
import type { Runtime } from '../model/record';

/** RuntimeDecision is the detected runtime plus the rule that fired (for `--explain` and tests). */
export interface RuntimeDecision {
  runtime: Runtime;
  evidence: string;
}

// Rules of docs/format.md "Runtime detection" (reference §3.1), exe level first, then libraries.
const EXE_RULES: Array<[Runtime, RegExp]> = [
  ['node', /^node(\d+)?$/],
  ['python', /^python(\d)(\.\d+)?(d|m|dm)?$/],
  ['ruby', /^ruby(\d+(\.\d+)*)?$/],
  ['jvm', /^java$/],
  ['dotnet', /^dotnet$/],
];
const LIB_RULES: Array<[Runtime, RegExp]> = [
  ['jvm', /\/libjvm\.so$/],
  ['dotnet', /\/libcoreclr\.so$/],
  ['node', /\/libnode\.so(\.\d+)*$/],
  ['python', /\/libpython(\d)\.(\d+)[a-z]*\.so/],
  ['ruby', /\/libruby(-\d+(\.\d+)*)?\.so(\.\d+)*$/],
];

/**
 * detectRuntime applies the detection table: a Go exe (ELF markers, checked by the caller and
 * passed as `exeIsGo`) wins, then the exe basename, then mapped runtime libraries, else native.
 */
export function detectRuntime(exePath: string, exeIsGo: boolean, mappedPaths: Iterable<string>): RuntimeDecision {
  if (exeIsGo) return { runtime: 'go', evidence: `exe ${exePath} has Go build info / pclntab / Go build id` };
  const base = path.basename(exePath.replace(/ \(deleted\)$/, ''));
  for (const [rt, re] of EXE_RULES) if (re.test(base)) return { runtime: rt, evidence: `exe basename ${base}` };
  const paths = [...new Set(mappedPaths)];
  for (const [rt, re] of LIB_RULES) {
    const hit = paths.find((p) => re.test(p));
    if (hit !== undefined) return { runtime: rt, evidence: `mapping ${hit}` };
  }
  return { runtime: 'native', evidence: 'no runtime marker' };
}
