import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Writable } from 'node:stream';
import { parseArgs, parseDuration, parseSize } from '../../src/cli/args';
import { main } from '../../src/cli/main';
import { globToRegExp } from '../../src/util/glob';

function capture(): { io: any; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  const sink = (append: (s: string) => void) => new Writable({ write(chunk, _e, cb) { append(String(chunk)); cb(); } });
  return { io: { stdout: sink((s) => { out += s; }), stderr: sink((s) => { err += s; }), stdin: process.stdin }, out: () => out, err: () => err };
}

test('unknown options name the closest valid one', () => {
  assert.throws(() => parseArgs(['--duraton', '5s'], [{ name: 'duration', kind: 'string', help: '' }]), /unknown option --duraton.*/);
  try {
    parseArgs(['--duraton', '5s'], [{ name: 'duration', kind: 'string', help: '' }]);
  } catch (err) {
    assert.match((err as { hint: string }).hint, /did you mean --duration/);
  }
});

test('values, lists and the command after --', () => {
  const p = parseArgs(['--pid', '1', '--pid=2', '--stdout', '--', 'make', '--pid', '3'], [
    { name: 'pid', kind: 'list', help: '' }, { name: 'stdout', kind: 'flag', help: '' }]);
  assert.deepEqual(p.lists.get('pid'), ['1', '2']);
  assert.ok(p.flags.has('stdout'));
  assert.deepEqual(p.command, ['make', '--pid', '3']);
});

test('durations and sizes', () => {
  assert.equal(parseDuration('500ms', 'd'), 500);
  assert.equal(parseDuration('10', 'd'), 10_000);
  assert.equal(parseDuration('2m', 'd'), 120_000);
  assert.throws(() => parseDuration('soon', 'duration'), /not a duration/);
  assert.equal(parseSize('16M', 's'), 16 << 20);
  assert.equal(parseSize('64KiB', 's'), 64 << 10);
  assert.throws(() => parseSize('-1', 'ring-size'), /not a size/);
});

test('path globs', () => {
  assert.ok(globToRegExp('/etc/*.conf').test('/etc/a.conf'));
  assert.ok(!globToRegExp('/etc/*.conf').test('/etc/x/a.conf'));
  assert.ok(globToRegExp('/proc/**').test('/proc/1/status'));
  assert.ok(globToRegExp('/tmp/?.txt').test('/tmp/a.txt'));
  assert.ok(!globToRegExp('/tmp/a+b').test('/tmp/aab'));
});

test('CLI usage errors exit 2 with one line and a fix, no stack', async () => {
  const c = capture();
  assert.equal(await main(['collect', '--probes', 'nope'], c.io), 2);
  assert.match(c.err(), /^rtev: unknown probe 'nope'\n  fix: valid probes: /);
  const d = capture();
  assert.equal(await main(['frobnicate'], d.io), 2);
  assert.match(d.err(), /unknown command 'frobnicate'/);
  const e = capture();
  assert.equal(await main(['collect', '--stdout', '--out', 'x'], e.io), 2);
  assert.match(e.err(), /exclude each other/);
  const f = capture();
  assert.equal(await main(['collect', '--ring-size', '1000'], f.io), 2);
  assert.match(f.err(), /power of two/);
  assert.doesNotMatch(c.err() + d.err() + e.err() + f.err(), /\n\s+at /);
});

test('validate reports failing line numbers and reasons', async () => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const file = `${os.tmpdir()}/rtev-validate-${process.pid}.ndjson`;
  fs.writeFileSync(file, [
    '{"comm":"a","event":{"path":"/x","type":"file_open"},"pid":1,"src":"s","ts_ns":1}',
    '{"comm":"a","event":{"path":"/x","type":"file_open"},"pid":0,"src":"s","ts_ns":1}',
    'not json',
    '{"comm":"a","event":{"daddr":"999.1.1.1","dport":1,"newstate":"CLOSE","oldstate":"CLOSE","type":"tcp_state"},"pid":1,"src":"s","ts_ns":1}',
  ].join('\n') + '\n');
  const c = capture();
  assert.equal(await main(['validate', file], c.io), 11);
  assert.match(c.out(), /^line 2: \/pid must be >= 1/m);
  assert.match(c.out(), /^line 3: not JSON/m);
  assert.match(c.out(), /^line 4: /m);
  assert.doesNotMatch(c.out(), /^line 1:/m);
  fs.rmSync(file);
});

test('the vendored schema is the contract, unchanged', async () => {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const { REPO } = await import('../helpers/collector');
  const shared = path.join(REPO, '..', 'shared', 'schema', 'runtime-evidence.v1.json');
  if (!fs.existsSync(shared)) {
    console.log(`not compared: ${shared} is not present in this checkout`);
    return;
  }
  assert.equal(fs.readFileSync(path.join(REPO, 'schema', 'runtime-evidence.v1.json'), 'utf8'), fs.readFileSync(shared, 'utf8'));
});
