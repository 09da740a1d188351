import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { checkCommand, MAX_VALUE_CHARS, parseArgs, parseDuration, MAX_TIMER_MS } from '../../src/cli/args';
import { main, reportError } from '../../src/cli/main';
import { ensureTracefs } from '../../src/ingest/preflight';
import { loadSigningKeyFile, writeKeyPair } from '../../src/sign/key-files';
import { generateSigningKey } from '../../src/sign/keys';
import { boundedLines } from '../../src/platform/lines';

/**
 * Issue 13 items 12 and 13: each misleading error and each bad value is one true line with its
 * fix and its documented exit code. run() drives the CLI as a user would (main with captured
 * streams); thrown errors are rendered by reportError as the CLI does.
 */
async function run(argv: string[]): Promise<{ code: number; err: string; out: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await main(argv, { stdout, stderr, stdin: new PassThrough() });
  return { code, err, out };
}

function render(fn: () => unknown): { code: number; err: string } {
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  try {
    fn();
  } catch (e) {
    return { code: reportError(e, { stdout: new PassThrough(), stderr, stdin: new PassThrough() }), err };
  }
  throw new Error('expected an error');
}

/** oneLineWithFix: `rtev: <what>` then `  fix: <what to do>`, nothing else. */
function oneLineWithFix(err: string, what: RegExp, fix?: RegExp): void {
  const lines = err.trimEnd().split('\n');
  assert.equal(lines.length, 2, err);
  assert.match(lines[0]!, /^rtev: /);
  assert.match(lines[0]!, what);
  assert.match(lines[1]!, /^ {2}fix: \S/);
  if (fix) assert.match(lines[1]!, fix);
}

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-errors-'));

test('verify of a missing path is a usage error (exit 2), not tampering', async () => {
  const r = await run(['verify', '/nonexistent-rtev-dir', '--pubkey', '/dev/null']);
  assert.equal(r.code, 2);
  assert.equal(r.out, '');
  oneLineWithFix(r.err, /\/nonexistent-rtev-dir does not exist/, /rtev collect --out DIR/);
});

test('verify of a directory that is not evidence (/tmp) is one usage error line, not hundreds of notes and exit 11', async () => {
  const dir = tmp();
  for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(dir, `other-${i}.txt`), 'x');
  const r = await run(['verify', dir, '--pubkey', '/dev/null']);
  assert.equal(r.code, 2);
  assert.equal(r.out, '');
  oneLineWithFix(r.err, /holds no rtev evidence/);
});

test('keygen --out /proc/x.pem is an output error with a fix about the path, not "fix the config file"', async () => {
  const r = await run(['keygen', '--out', '/proc/rtev-x.pem']);
  assert.equal(r.code, 4);
  oneLineWithFix(r.err, /cannot create \/proc\/rtev-x\.pem/, /directory you can write/);
  assert.doesNotMatch(r.err, /config/);
});

test('keygen without --out says how to call it', async () => {
  const r = await run(['keygen']);
  assert.equal(r.code, 2);
  oneLineWithFix(r.err, /keygen needs --out FILE/, /rtev keygen --out key\.pem/);
});

test('--key k.pem.pub is told it is the public key, with the private key to pass, not "chmod 600"', () => {
  const dir = tmp();
  const file = path.join(dir, 'k.pem');
  writeKeyPair(file, generateSigningKey());
  const r = render(() => loadSigningKeyFile(`${file}.pub`));
  assert.equal(r.code, 2);
  oneLineWithFix(r.err, /k\.pem\.pub is a public key/, new RegExp(`pass --key ${file.replace(/[.]/g, '\\.')}`));
  assert.doesNotMatch(r.err, /chmod/);
});

test('a missing command after -- is one rtev line with exit 127 (not the gate shell\'s message); a non-executable one 126', () => {
  const r = render(() => checkCommand(['rtev-no-such-command', 'x'], { PATH: '/usr/bin:/bin' }));
  assert.equal(r.code, 127);
  oneLineWithFix(r.err, /command not found: rtev-no-such-command/);
  const dir = tmp();
  const script = path.join(dir, 'script.sh');
  fs.writeFileSync(script, 'echo hi\n', { mode: 0o644 });
  const n = render(() => checkCommand([script]));
  assert.equal(n.code, 126);
  oneLineWithFix(n.err, /is not executable/, /chmod \+x/);
  checkCommand(['sh', '-c', 'true']); // found in PATH: no error
});

test('tracefs mounted with mode 0700, read by a non-root user with the capabilities: a privilege error, not "not mounted"', () => {
  const denied = (): void => {
    throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
  };
  const r = render(() => ensureTracefs('/sys/kernel/tracing', denied));
  assert.equal(r.code, 3);
  oneLineWithFix(r.err, /tracefs is mounted at \/sys\/kernel\/tracing but this user cannot read it/, /sudo|mode=0755/);
  assert.doesNotMatch(r.err, /not mounted/);
});

test('bad values are usage errors (exit 2) that give the limit or the fix', async () => {
  // a 120 KB --include-path: the limit, not "internal error: Regular expression too large"
  const huge = '/x'.repeat(60_000);
  let r = render(() => parseArgs(['--include-path', huge], [{ name: 'include-path', kind: 'list', help: '' }]));
  assert.equal(r.code, 2);
  oneLineWithFix(r.err, new RegExp(`--include-path: the value is 120000 characters; the limit is ${MAX_VALUE_CHARS}`));
  assert.ok(r.err.length < 400, 'the value is not echoed');
  // --duration 99999999999999h: the timer limit, not an immediate stop with a Node warning
  r = render(() => parseDuration('99999999999999h', 'duration', MAX_TIMER_MS));
  assert.equal(r.code, 2);
  oneLineWithFix(r.err, /--duration: '99999999999999h' is longer than the limit of 596h/, /SIGINT\/SIGTERM/);
  assert.equal(parseDuration('596h', 'duration', MAX_TIMER_MS), 596 * 3_600_000);
  // validate --max-errors abc
  let c = await run(['validate', '--max-errors', 'abc', '/dev/null']);
  assert.equal(c.code, 2);
  oneLineWithFix(c.err, /--max-errors: 'abc' must be an integer/);
  // node-hash --component notapurl
  c = await run(['node-hash', '--kind', 'native', '--component', 'notapurl', '--symbol', 'f']);
  assert.equal(c.code, 2);
  assert.equal(c.out, '', 'no hash is printed');
  oneLineWithFix(c.err, /--component 'notapurl' is not a canonical purl/, /pkg:deb\/debian\/libssl3@/);
  c = await run(['node-hash', '--kind', 'native', '--component', 'pkg:deb/debian/libssl3@3.0.11-1~deb12u2', '--symbol', 'SSL_read']);
  assert.equal(c.code, 0);
  assert.match(c.out, /^sha256:[0-9a-f]{64}\n$/);
  // query /etc/passwd: not records, a usage error instead of "0 records"
  c = await run(['query', '/etc/passwd']);
  assert.equal(c.code, 2);
  assert.match(c.err, /holds no records/);
  // query /dev/zero: refused at once instead of reading without bound
  c = await run(['query', '/dev/zero']);
  assert.equal(c.code, 2);
  assert.match(c.err, /\/dev\/zero is not a regular file or a pipe/);
  c = await run(['validate', '/dev/zero']);
  assert.equal(c.code, 2);
});

test('every reader bounds its lines: a stream without newlines is refused after the bound, not buffered', async () => {
  async function* zeros(): AsyncGenerator<Buffer> {
    for (let i = 0; i < 1_000_000; i++) yield Buffer.alloc(64 * 1024);
  }
  let yielded = 0;
  await assert.rejects(async () => {
    for await (const _ of boundedLines(zeros(), '/dev/zero', 1 << 20)) yielded++;
  }, /line 1 is longer than 1048576 bytes/);
  assert.equal(yielded, 0);
  const lines: string[] = [];
  async function* two(): AsyncGenerator<Buffer> {
    yield Buffer.from('a\nb');
    yield Buffer.from('c\n\nd');
  }
  for await (const l of boundedLines(two(), 'x')) lines.push(l);
  assert.deepEqual(lines, ['a', 'bc', '', 'd']);
});

test('collect: every option error has its fix line, and options --stdout would ignore are refused', async () => {
  const cases: Array<[string[], RegExp, RegExp?]> = [
    [['--pid', 'abc'], /--pid: 'abc' must be an integer from 1 to 4194304/],
    [['--ring-size', '1000'], /--ring-size: 1000 must be a power of two/, /--ring-size 16M/],
    [['--out', 'x', '--stdout'], /--out and --stdout exclude each other/, /--out DIR for signed evidence/],
    [['--image', 'nope'], /--image nope: expected sha256:<64 hex>/, /podman image inspect/],
    [['--stdout', '--key', 'k.pem'], /--key has no effect with --stdout: records on standard output are neither signed nor chunked/, /--out DIR/],
    [['--stdout', '--chunk-size', '1M', '--retain-size', '1G'], /--chunk-size, --retain-size have no effect with --stdout/],
    [['--duration', '99999999999999h'], /longer than the limit/],
    [['--stdout', '--', 'rtev-no-such-command'], /command not found: rtev-no-such-command/],
  ];
  for (const [args, what, fix] of cases) {
    const r = await run(['collect', ...args]);
    assert.equal(r.code, args.includes('rtev-no-such-command') ? 127 : 2, `${args.join(' ')}: ${r.err}`);
    oneLineWithFix(r.err, what, fix);
  }
});

test('files read whole are bounded: --functions /dev/zero and --frames /dev/zero are usage errors', async () => {
  let r = await run(['collect', '--stdout', '--functions', '/dev/zero']);
  assert.equal(r.code, 2);
  oneLineWithFix(r.err, /--functions file \/dev\/zero is not a regular file or a pipe/, /give a regular file/);
  r = await run(['query', '/etc/hostname', '--frames', '/dev/zero']);
  assert.equal(r.code, 2);
  assert.match(r.err, /cannot read --frames file \/dev\/zero/);
});
