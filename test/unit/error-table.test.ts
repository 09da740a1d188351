import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { reportError } from '../../src/cli/main';
import { addonError, ERRORS, ExitCode, RtevError, type ErrorCode } from '../../src/errors';
import { BpfSession, type KernelConfig } from '../../src/ingest/session';
import { REPO } from '../helpers/collector';
import { FakeBinding } from '../helpers/fake-binding';

function capture(): { io: Parameters<typeof reportError>[1]; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let text = '';
  stderr.on('data', (c: Buffer) => (text += c.toString()));
  return { io: { stdout, stderr, stdin: new PassThrough() }, err: () => text };
}

/** An Error shaped like the ones native/log.c throw_error builds. */
function nativeError(code: string, message: string, errno: number): Error {
  return Object.assign(new Error(message), { code, errno, libbpfLog: '' });
}

test('every error code has a documented exit code, and docs/cli.md lists every code with its exit code', () => {
  const exits = new Set<number>(Object.values(ExitCode));
  const doc = fs.readFileSync(path.join(REPO, 'docs', 'cli.md'), 'utf8');
  for (const [code, spec] of Object.entries(ERRORS)) {
    assert.ok(exits.has(spec.exit), `${code}: exit ${spec.exit}`);
    const row = new RegExp(`^\\| \`${code}\` \\| ${spec.exit} \\|`, 'm');
    assert.match(doc, row, `docs/cli.md "Error codes" has no row for ${code} with exit ${spec.exit}`);
  }
  const documented = [...doc.matchAll(/^\| `([A-Z_]+)` \| \d+ \|/gm)].map((m) => m[1]);
  assert.deepEqual(documented.filter((c) => !(c! in ERRORS)), [], 'codes in docs/cli.md that the table does not have');
});

test('reportError prints one line and the fix from the table, and exits with the table\'s code', () => {
  const { io, err } = capture();
  const code = reportError(new RtevError('DISK_FULL', 'cannot write chunk-1'), io);
  assert.equal(code, ExitCode.OUTPUT);
  assert.equal(err(), `rtev: cannot write chunk-1\n  fix: ${ERRORS.DISK_FULL.fix}\n`);
  const own = capture();
  assert.equal(reportError(new RtevError('SELECT_INVALID', '--image x: expected sha256:<64 hex>', { hint: 'use the digest' }), own.io), ExitCode.USAGE);
  assert.equal(own.err(), 'rtev: --image x: expected sha256:<64 hex>\n  fix: use the digest\n');
});

test('addon errors are wrapped into the table (not "internal error")', () => {
  const cases: Array<[string, ErrorCode, number]> = [
    ['BPF_MAP', 'BPF_MAP', ExitCode.ENVIRONMENT], ['RTEV_LAYOUT', 'ADDON_LAYOUT', ExitCode.ENVIRONMENT],
    ['RTEV_ARG', 'ADDON_BUG', ExitCode.FAILURE], ['SOMETHING_NEW', 'ADDON_BUG', ExitCode.FAILURE],
  ];
  for (const [native, code, exit] of cases) {
    const wrapped = addonError(nativeError(native, 'no such map', 2), 'reading stats failed');
    assert.ok(wrapped instanceof RtevError);
    assert.equal(wrapped.code, code);
    const { io, err } = capture();
    assert.equal(reportError(nativeError(native, 'no such map', 2), io), exit);
    assert.doesNotMatch(err(), /internal error/);
    assert.match(err(), /no such map/);
  }
  const plain = new Error('x');
  assert.equal(addonError(plain, 'y'), plain, 'other errors pass through');
});

test('the session boundary wraps what the addon throws while loading', () => {
  class Refusing extends FakeBinding {
    override setMapMaxEntries(): void {
      throw nativeError('BPF_MAP', 'cannot resize events_bulk', 22);
    }
  }
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-errors-')), 'fake.bpf.o');
  fs.writeFileSync(file, 'fake\n');
  const config: KernelConfig = { selfTgid: 1, filterPids: false, cgroupFilter: 'off', recordFailedOpens: false, bulkRingBytes: 1 << 24, rareRingBytes: 1 << 22 };
  assert.throws(() => BpfSession.open(file, config, ['file_open'], { binding: new Refusing(), env: {}, tracepointExists: () => true }),
    (err: unknown) => err instanceof RtevError && err.code === 'BPF_MAP' && /fake\.bpf\.o failed \(errno 22\)/.test(err.message));
});
