import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { matchRecord } from '../../src/index/filter';
import { PathFilter } from '../../src/ingest/path-filter';
import { globToRegExp, globToRegex, isGlob } from '../../src/util/glob';

/**
 * One glob for every user (src/util/glob.ts): `collect --path/--exclude` (PathFilter) and the
 * `query`/`summary` filters (matchRecord; compileFilter hands the same regex to DuckDB) must give
 * the same answer, and that answer must be the one a plain backtracking matcher written here,
 * from the documented rules alone, gives.
 */

/** reference: `*` any run without '/', `**` any run, `?` one char other than '/' (flat: '/' too). */
function reference(glob: string, text: string, flat = false): boolean {
  const go = (g: number, t: number): boolean => {
    if (g === glob.length) return t === text.length;
    if (glob[g] === '*') {
      const across = flat || glob[g + 1] === '*';
      const next = glob[g + 1] === '*' ? g + 2 : g + 1;
      for (let end = t; ; end++) {
        if (go(next, end)) return true;
        if (end === text.length || (!across && text[end] === '/')) return false;
      }
    }
    if (t === text.length) return false;
    if (glob[g] === '?') return (flat || text[t] !== '/') && go(g + 1, t + 1);
    return glob[g] === text[t] && go(g + 1, t + 1);
  };
  return go(0, 0);
}

const fileOpen = (path: string) => ({ ts_ns: 1n, pid: 1, comm: 'x', event: { type: 'file_open', path } });
const call = (symbol: string) => ({ ts_ns: 1n, pid: 1, comm: 'x', event: { type: 'function_call', symbol } });

test('glob: the documented cases, the same in PathFilter and in query filters', () => {
  const cases: Array<[string, string, boolean]> = [
    ['/etc/*.conf', '/etc/a.conf', true],
    ['/etc/*.conf', '/etc/x/a.conf', false],
    ['/proc/**', '/proc/1/status', true],
    ['/usr/**/libz?.so.1', '/usr/lib/x86_64-linux-gnu/libz1.so.1', true],
    ['/tmp/?.txt', '/tmp/a.txt', true],
    ['/tmp/?.txt', '/tmp/ab.txt', false],
    ['/tmp/a+b', '/tmp/aab', false],
    ['/tmp/a+b', '/tmp/a+b', true],
    ['/x/[ab]', '/x/a', false], // no classes: brackets are literal
    ['/x/[ab]', '/x/[ab]', true],
    ['/x/{a,b}', '/x/{a,b}', true],
    ['/a/*', '/a/b\nc', true], // a newline is an ordinary character of a path
  ];
  for (const [glob, path, want] of cases) {
    assert.equal(globToRegExp(glob).test(path), want, `${glob} ~ ${path}`);
    assert.equal(new PathFilter([glob], []).passes(path), want, `PathFilter ${glob} ~ ${path}`);
    assert.equal(matchRecord({ paths: [glob] }, fileOpen(path)), want, `matchRecord ${glob} ~ ${path}`);
    assert.equal(reference(glob, path), want, `reference ${glob} ~ ${path}`);
  }
  // symbols have no components: * and ? cross '/' (and '::', '.')
  assert.ok(matchRecord({ symbols: ['std::*'] }, call('std::vector<a/b>::push')));
  assert.ok(!matchRecord({ symbols: ['std::?'] }, call('std::ab')));
  assert.equal(globToRegex('a*?', { flat: true }), '^a.*.$');
  assert.ok(isGlob('a*') && isGlob('a?') && !isGlob('a[b]'));
});

test('glob: PathFilter, matchRecord and globToRegExp agree with the reference matcher (property)', () => {
  const alphabet = fc.constantFrom('a', 'b', '/', '.', '*', '?', '+', '[', '\n');
  const globArb = fc.array(alphabet, { maxLength: 8 }).map((cs) => cs.join(''));
  const textArb = fc.array(fc.constantFrom('a', 'b', '/', '.', '+', '[', '\n'), { maxLength: 10 }).map((cs) => cs.join(''));
  fc.assert(fc.property(globArb, textArb, (glob, text) => {
    const want = reference(glob, text);
    return globToRegExp(glob).test(text) === want
      && new PathFilter([glob], []).passes(text) === want
      && new PathFilter([], [glob]).passes(text) === !want
      && matchRecord({ paths: [glob] }, fileOpen(text)) === want
      && globToRegExp(glob, { flat: true }).test(text) === reference(glob, text, true);
  }), { numRuns: 2000, seed: 11 });
});
