/**
 * processRoot: a process that shares the collector's mount namespace and root is read through
 * the collector's own root (its package database then outlives it); any other process, or one
 * already gone, through /proc/PID/root. The proc root is a temp dir with the same links /proc has.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { nodeHost } from '../../src/symbolize/host';
import { processRoot } from '../../src/symbolize/symbolizer';

function procDir(): { proc: string; add: (pid: string, ns: string, root: string) => void } {
  const proc = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-proc-'));
  const files = path.join(proc, 'targets');
  fs.mkdirSync(files);
  for (const n of ['mnt-a', 'mnt-b']) fs.writeFileSync(path.join(files, n), n);
  for (const r of ['root-a', 'root-b']) fs.mkdirSync(path.join(files, r));
  const add = (pid: string, ns: string, root: string) => {
    fs.mkdirSync(path.join(proc, pid, 'ns'), { recursive: true });
    fs.symlinkSync(path.join(files, ns), path.join(proc, pid, 'ns', 'mnt'));
    fs.symlinkSync(path.join(files, root), path.join(proc, pid, 'root'));
  };
  return { proc, add };
}

test('same mount namespace and root as the collector: read through our root', () => {
  const { proc, add } = procDir();
  add('self', 'mnt-a', 'root-a');
  add('10', 'mnt-a', 'root-a');
  assert.equal(processRoot(nodeHost, proc, 10), '');
});

test('another mount namespace, or another root (chroot, container): its own root', () => {
  const { proc, add } = procDir();
  add('self', 'mnt-a', 'root-a');
  add('11', 'mnt-b', 'root-a');
  add('12', 'mnt-a', 'root-b');
  assert.equal(processRoot(nodeHost, proc, 11), `${proc}/11/root`);
  assert.equal(processRoot(nodeHost, proc, 12), `${proc}/12/root`);
});

test('a process already gone: its own root (the lookups through it fail as before)', () => {
  const { proc, add } = procDir();
  add('self', 'mnt-a', 'root-a');
  assert.equal(processRoot(nodeHost, proc, 13), `${proc}/13/root`);
});

test('the real /proc: this process shares its own namespace and root', { skip: process.platform !== 'linux' ? 'needs /proc (Linux)' : false }, () => {
  assert.equal(processRoot(nodeHost, '/proc', process.pid), '');
});
