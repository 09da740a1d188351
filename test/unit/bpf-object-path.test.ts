import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { bpfObjectPath, hasRdonlyCast, packagePath } from '../../src/platform/paths';

/**
 * Two builds of the BPF object (Makefile `bpf`): build/rtev.bpf.o walks the current task through
 * an untrusted pointer cast with the bpf_rdonly_cast kfunc (Linux >= 6.2; the verifier then skips
 * its by-name BTF lookups, docs/benchmarks.md "Session 5 (h26)"), build/rtev-compat.bpf.o through
 * bpf_get_current_task_btf()'s trusted pointer, for older kernels (bpf/common.h `walk_task`).
 */

test('the kernel release picks the object: 6.2 and newer the main one, older the compat one', () => {
  for (const r of ['6.2.0', '6.18.0-1-amd64', '7.0.1', '6.10.3-arch1', 'weird']) assert.equal(hasRdonlyCast(r), true, r);
  for (const r of ['6.1.0-27-amd64', '5.15.0-105-generic', '5.11.0', '4.19.0']) assert.equal(hasRdonlyCast(r), false, r);
  assert.equal(bpfObjectPath({}, '6.18.0'), packagePath('build', 'rtev.bpf.o'));
  assert.equal(bpfObjectPath({}, '6.1.0'), packagePath('build', 'rtev-compat.bpf.o'));
  assert.equal(bpfObjectPath({ RTEV_BPF_OBJECT: '/x.o' }, '5.15.0'), '/x.o');
});

test('make build builds both objects; only the main one calls bpf_rdonly_cast', () => {
  const main = fs.readFileSync(path.join(packagePath('build'), 'rtev.bpf.o'));
  const compat = fs.readFileSync(path.join(packagePath('build'), 'rtev-compat.bpf.o'));
  assert.ok(main.includes('bpf_rdonly_cast'), 'the main object names the kfunc');
  assert.ok(!compat.includes('bpf_rdonly_cast'), 'the compat object does not');
  // the same programs in both
  const progs = (o: Buffer): string[] => [...o.toString('latin1').matchAll(/handle_[a-z0-9_]+/g)].map((m) => m[0]).sort();
  assert.deepEqual([...new Set(progs(compat))], [...new Set(progs(main))]);
});
