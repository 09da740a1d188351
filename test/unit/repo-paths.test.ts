import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { globToRegExp } from '../../src/util/glob';
import { REPO } from '../helpers/collector';

/**
 * Every repository path named in the README, in docs/*.md and in the comments of src/ exists.
 *
 * What counts as a repository path: a token that starts with one of the top-level folders below
 * (`src/…`, `docs/…`, `test/…`, …) and is not part of a longer path or URL (`/usr/src/x`,
 * `dist/test/x`, `https://…/src/x` are not). A trailing `:LINE`, `:LINE–LINE` or sentence
 * punctuation is not part of the path. Patterns are allowed and must match at least one file:
 * `*`, `**` and `?` as in rtev's globs (src/util/glob.ts), `{a,b}` alternatives, and `<name>`
 * placeholders (one path component, like `*`). Build outputs that are not in git are listed
 * in GENERATED, each with the Makefile line that makes it, so that list cannot go stale either.
 */

const ROOTS = ['src', 'bpf', 'native', 'test', 'bench', 'docs', 'deploy', 'scripts', 'schema', 'bin', '.ci'];

/** paths that `make` creates (not in git): each must be named in the Makefile */
const GENERATED = ['native/build', 'native/build-asan'];

/** folders never searched for pattern matches: dependencies and build outputs */
const SKIP_DIRS = new Set(['.git', 'node_modules', 'dist', '.cache', 'build']);

const TOKEN = new RegExp(
  `(?<![\\w./@~$%-])((?:${ROOTS.map((r) => r.replace('.', '\\.')).join('|')})/(?:[\\w.\\-/*?]|<[\\w.-]+>|\\{[\\w.\\-/*?,]*\\})*)`,
  'g',
);

export interface NamedPath {
  /** where it is named, `file:line` */
  where: string;
  /** the path or pattern as written, without line numbers and trailing punctuation */
  path: string;
}

/** namedPaths finds the repository paths in a text (`comments`: only in // and /* comments). */
export function namedPaths(file: string, text: string, comments: boolean): NamedPath[] {
  const out: NamedPath[] = [];
  const lines = text.split('\n');
  let inBlock = false;
  lines.forEach((line, i) => {
    let scan = line;
    if (comments) {
      // the comment parts of the line: a /* … */ block (possibly spanning lines) or a // tail
      let part = '';
      let rest = line;
      while (rest !== '') {
        if (inBlock) {
          const end = rest.indexOf('*/');
          part += ' ' + (end < 0 ? rest : rest.slice(0, end));
          if (end < 0) rest = '';
          else {
            inBlock = false;
            rest = rest.slice(end + 2);
          }
          continue;
        }
        const start = commentStart(rest);
        if (start === undefined) rest = '';
        else if (start.kind === 'line') {
          part += ' ' + rest.slice(start.at + 2);
          rest = '';
        } else {
          inBlock = true;
          rest = rest.slice(start.at + 2);
        }
      }
      scan = part;
    }
    for (const m of scan.matchAll(TOKEN)) {
      const p = m[1]!.replace(/[.]+$/, ''); // a sentence's full stop
      out.push({ where: `${file}:${i + 1}`, path: p });
    }
  });
  return out;
}

/** commentStart finds where a comment starts in code, outside string literals (per line). */
function commentStart(code: string): { at: number; kind: 'line' | 'block' } | undefined {
  let quote = '';
  for (let i = 0; i < code.length; i++) {
    const c = code[i]!;
    if (quote !== '') {
      if (c === '\\') i++;
      else if (c === quote) quote = '';
    } else if (c === "'" || c === '"' || c === '`') quote = c;
    else if (c === '/' && code[i + 1] === '/') return { at: i, kind: 'line' };
    else if (c === '/' && code[i + 1] === '*') return { at: i, kind: 'block' };
  }
  return undefined;
}

/** expandBraces turns `a/{b,c}.ts` into `a/b.ts`, `a/c.ts`. */
function expandBraces(p: string): string[] {
  const m = /\{([^{}]*)\}/.exec(p);
  if (m === null) return [p];
  return m[1]!.split(',').flatMap((alt) => expandBraces(p.slice(0, m.index) + alt + p.slice(m.index + m[0].length)));
}

let fileList: string[] | undefined;
/** repoFiles lists the repository's files and folders (relative, '/'-separated), once. */
function repoFiles(): string[] {
  if (fileList !== undefined) return fileList;
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(REPO, rel), { withFileTypes: true })) {
      if (SKIP_DIRS.has(e.name) && rel === '') continue;
      if (e.name === 'node_modules' || (rel === 'native' && e.name.startsWith('build'))) continue;
      const p = rel === '' ? e.name : `${rel}/${e.name}`;
      out.push(p);
      if (e.isDirectory()) walk(p);
    }
  };
  walk('');
  fileList = out;
  return out;
}

/** exists: a path exists (a folder when it ends in '/'), or a pattern matches something. */
export function exists(named: string): boolean {
  return expandBraces(named).every((p) => {
    if (GENERATED.some((g) => p === g || p === `${g}/` || p.startsWith(`${g}/`))) return true;
    const pattern = p.replace(/<[\w.-]+>/g, '*');
    if (!/[*?]/.test(pattern)) {
      const full = path.join(REPO, pattern);
      return pattern.endsWith('/') ? fs.existsSync(full) && fs.statSync(full).isDirectory() : fs.existsSync(full);
    }
    const re = globToRegExp(pattern.replace(/\/$/, ''));
    return repoFiles().some((f) => re.test(f));
  });
}

/** sources: README.md, docs/*.md (whole text) and src/**\/*.ts (comments only). */
function sources(): Array<{ file: string; comments: boolean }> {
  const out = [{ file: 'README.md', comments: false }];
  for (const f of fs.readdirSync(path.join(REPO, 'docs')).sort()) if (f.endsWith('.md')) out.push({ file: `docs/${f}`, comments: false });
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(REPO, rel), { withFileTypes: true })) {
      const p = `${rel}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) out.push({ file: p, comments: true });
    }
  };
  walk('src');
  return out;
}

test('every repository path named in README.md, docs/*.md and src/ comments exists', () => {
  let checked = 0;
  const missing: string[] = [];
  for (const { file, comments } of sources()) {
    for (const n of namedPaths(file, fs.readFileSync(path.join(REPO, file), 'utf8'), comments)) {
      checked++;
      if (!exists(n.path)) missing.push(`${n.where}: ${n.path}`);
    }
  }
  assert.deepEqual(missing, [], `named paths that do not exist:\n${missing.join('\n')}`);
  assert.ok(checked > 200, `found ${checked} named paths: the pattern still finds them`);
});

test('repo paths: what counts as a named path, and what exists', () => {
  const text = [
    'see src/util/glob.ts:12, and docs/cli.md.',
    'not /usr/src/linux, dist/test/unit/x.js or https://example.com/src/x.ts',
    '`test/unit/*.test.ts` and src/ingest/{collector,pipeline}.ts and test/e2e/<name>.e2e.test.ts',
    'code(); // named in a comment: bench/run.sh',
    'const s = "src/not-a-comment.ts";',
    '/* a block',
    '   naming deploy/systemd/ */ x = 1;',
  ].join('\n');
  assert.deepEqual(namedPaths('f', text, false).map((n) => n.path), [
    'src/util/glob.ts', 'docs/cli.md', 'test/unit/*.test.ts', 'src/ingest/{collector,pipeline}.ts', 'test/e2e/<name>.e2e.test.ts',
    'bench/run.sh', 'src/not-a-comment.ts', 'deploy/systemd/',
  ]);
  assert.deepEqual(namedPaths('f', text, true).map((n) => n.path), ['bench/run.sh', 'deploy/systemd/']);
  assert.equal(namedPaths('f', text, true)[1]!.where, 'f:7');
  for (const p of ['src/util/glob.ts', 'test/unit/*.test.ts', 'src/ingest/{collector,pipeline}.ts', 'test/e2e/<name>.e2e.test.ts', 'deploy/systemd/', 'native/build-asan', 'src/']) {
    assert.ok(exists(p), p);
  }
  for (const p of ['src/util/no-such.ts', 'test/unit/*.no-such', 'src/ingest/{collector,no-such}.ts', 'src/util/glob.ts/', 'bench/no-such-bench']) {
    assert.ok(!exists(p), p);
  }
  // the generated paths are really made by the Makefile
  const makefile = fs.readFileSync(path.join(REPO, 'Makefile'), 'utf8');
  for (const g of GENERATED) assert.ok(makefile.includes(g), `${g} is made by the Makefile`);
});
