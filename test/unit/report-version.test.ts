import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import fc from 'fast-check';
import { comparatorFor, compareDpkg, parseDpkgVersion, VersionError } from '../../src/report/version';
import { requireTools } from '../helpers/tools';

/*
 * Tool: dpkg (`dpkg --compare-versions`, `dpkg-query -W`) as the oracle for Debian version order.
 * Why not recorded answers: the property test compares on versions fast-check generates, and the
 * last check orders the versions installed on this machine. A missing dpkg fails the test.
 */

function dpkgSays(a: string, op: 'lt' | 'eq' | 'gt', b: string): boolean {
  return spawnSync('dpkg', ['--compare-versions', a, op, b]).status === 0;
}

test('dpkg order: known cases (tilde, epochs, +debNuM, revisions)', () => {
  const lt: Array<[string, string]> = [
    ['3.0.14-1~deb12u2', '3.0.15-1~deb12u1'],
    ['3.0.15-1~deb12u1', '3.0.15-1'],
    ['1.0~rc1', '1.0'],
    ['1.0~~', '1.0~'],
    ['1.2.13.dfsg-1', '1:1.2.11.dfsg-4.1'],
    ['2.36-9+deb12u4', '2.36-9+deb12u10'],
    ['1.0', '1.0-0.1'],
    ['1.0a', '1.0+'],
    ['0:1.0', '1:0.1'],
    ['1.01', '1.1a'],
  ];
  for (const [a, b] of lt) {
    assert.equal(compareDpkg(a, b), -1, `${a} < ${b}`);
    assert.equal(compareDpkg(b, a), 1, `${b} > ${a}`);
  }
  assert.equal(compareDpkg('1.01', '1.1'), 0);
  assert.equal(compareDpkg('0:1.0', '1.0'), 0);
  assert.throws(() => parseDpkgVersion('x1.0'), VersionError);
  assert.throws(() => parseDpkgVersion('a:1.0'), VersionError);
  assert.throws(() => parseDpkgVersion(''), VersionError);
});

test('dpkg order equals `dpkg --compare-versions` on generated versions (property)', () => {
  requireTools('dpkg', 'dpkg-query');
  const part = fc.stringMatching(/^[0-9]{1,3}([.+~][0-9a-z]{1,3}){0,3}$/);
  const version = fc.tuple(fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }), part, fc.option(fc.stringMatching(/^[0-9a-z]{1,2}([.+~][0-9a-z]{1,3}){0,2}$/), { nil: undefined }))
    .map(([e, u, r]) => `${e === undefined ? '' : `${e}:`}${u}${r === undefined ? '' : `-${r}`}`);
  let checked = 0;
  fc.assert(fc.property(version, version, (a, b) => {
    const ours = compareDpkg(a, b);
    const op = ours < 0 ? 'lt' : ours === 0 ? 'eq' : 'gt';
    checked++;
    return dpkgSays(a, op, b);
  }), { numRuns: 250, seed: 15 });
  assert.equal(checked >= 250, true);
  // and the installed packages' real versions against each other, in order
  const versions = execFileSync('dpkg-query', ['-W', '-f', '${Version}\n'], { encoding: 'utf8' }).split('\n').filter((v) => v !== '').slice(0, 40);
  for (let i = 1; i < versions.length; i++) {
    const a = versions[i - 1]!;
    const b = versions[i]!;
    const ours = compareDpkg(a, b);
    assert.ok(dpkgSays(a, ours < 0 ? 'lt' : ours === 0 ? 'eq' : 'gt', b), `${a} vs ${b}: ours ${ours}`);
  }
});

test('semver (npm), Go module versions and PEP 440 (PyPI)', () => {
  const npm = comparatorFor('npm');
  assert.equal(npm('1.2.3', '1.10.0'), -1);
  assert.equal(npm('1.0.0-rc.1', '1.0.0'), -1);
  assert.throws(() => npm('1.2', '1.2.0'), VersionError);
  const go = comparatorFor('Go');
  assert.equal(go('v0.0.0-20230101000000-abcdefabcdef', 'v0.1.0'), -1, 'a pseudo-version is a prerelease');
  assert.equal(go('v1.19.8', '1.19.10'), -1, 'with or without v');
  assert.equal(go('v2.0.0+incompatible', '2.0.0'), 0);
  const py = comparatorFor('PyPI');
  assert.equal(py('1.0a1', '1.0'), -1);
  assert.equal(py('1.0.post1', '1.0'), 1);
  assert.equal(py('1!0.5', '2.0'), 1, 'epoch');
  assert.equal(py('2.0', '2.0.0'), 0);
  assert.throws(() => py('not a version', '1.0'), VersionError);
});
