import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { packagePath, packageRoot } from '../../src/platform/paths';

const REPO = path.resolve(__dirname, '..', '..', '..');

test('rtev --version through bin/rtev prints package.json version', () => {
  const { version } = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
  const run = spawnSync(process.execPath, [path.join(REPO, 'bin', 'rtev'), '--version'], { encoding: 'utf8', cwd: '/' });
  assert.equal(run.stderr, '');
  assert.equal(run.status, 0);
  assert.equal(run.stdout, `${version}\n`);
});

test('the package root is the checkout, from any module depth', () => {
  assert.equal(packageRoot(), REPO);
  assert.ok(fs.existsSync(packagePath('schema', 'runtime-evidence.v1.json')));
  assert.ok(fs.existsSync(packagePath('bin', 'rtev')));
});
