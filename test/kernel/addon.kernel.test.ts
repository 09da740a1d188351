/**
 * The addon against programs the kernel refuses, and (under `make test`'s sanitizer run,
 * scripts/run-tests.sh) the AddressSanitizer/UBSan build of the addon itself.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { isNativeError, lastVerifierLines, loadBinding } from '../../src/ingest/native';
import { addonPath } from '../../src/platform/paths';
import { REPO, rootOrSkip, tempDir } from '../helpers/collector';

/** buildRefused compiles test/progs/bpf/refused.bpf.c: a program with a verifier log of a few hundred KiB. */
function buildRefused(): string {
  const out = path.join(tempDir('rtev-bpf-'), 'refused.bpf.o');
  const multiarch = execFileSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).trim();
  execFileSync('clang', ['-target', 'bpf', '-O2', '-g', `-I/usr/include/${multiarch}`, '-c',
    path.join(REPO, 'test', 'progs', 'bpf', 'refused.bpf.c'), '-o', out]);
  return out;
}

test('a refused program with a verifier log longer than the log buffer: an error with the log tail, no overflow', (t) => {
  if (!rootOrSkip(t)) return;
  const native = loadBinding();
  const object = buildRefused();
  for (let round = 0; round < 3; round++) {
    const handle = native.openObject(object);
    let error: unknown;
    try {
      native.load(handle, false);
    } catch (err) {
      error = err;
    }
    assert.ok(isNativeError(error), `load must throw the addon's error, got ${String(error)}`);
    assert.equal(error.code, 'BPF_LOAD');
    assert.equal(error.errno, 13, 'EACCES: the verifier refused it');
    // the addon keeps at most 64 KiB of libbpf's log, and the tail: the verdict is there
    assert.ok(error.libbpfLog.length > 32 * 1024 && error.libbpfLog.length < 64 * 1024, `log length ${error.libbpfLog.length}`);
    assert.match(error.libbpfLog, /R1 invalid mem access 'scalar'\nprocessed 9003 insns/);
    assert.match(error.libbpfLog, /-- END PROG LOAD LOG --\n/);
    assert.ok(lastVerifierLines(error.libbpfLog, 5).some((l) => l === "R1 invalid mem access 'scalar'"),
      lastVerifierLines(error.libbpfLog, 5).join('\n'));
  }
});

test('the addon mapped is the one addonPath() names; the sanitizer build brings ASan and UBSan', (t) => {
  if (!rootOrSkip(t)) return;
  loadBinding();
  const maps = fs.readFileSync('/proc/self/maps', 'utf8');
  const file = fs.realpathSync(addonPath());
  assert.ok(maps.includes(file), `${file} is mapped`);
  // scripts/run-tests.sh's sanitizer run sets RTEV_EXPECT_ASAN=1 with RTEV_NATIVE_ADDON=native/build-asan/...
  const asan = process.env['RTEV_EXPECT_ASAN'] === '1';
  assert.equal(file.includes('/native/build-asan/'), asan);
  assert.equal(/libasan\.so/.test(maps), asan);
  assert.equal(/libubsan\.so/.test(maps), asan);
});
