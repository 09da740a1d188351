import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { computeNodeHash } from '../../src/symbolize';
import { REPO, rootOrSkip, runRtev, tempDir } from '../helpers/collector';
import { buildId } from '../progs/func/build';

const CALLS = 7;
const SRC = path.join(REPO, 'test', 'progs', 'func', 'calls.c');

interface Built {
  binary: string;
  /** size of caller_b, from nm -S */
  callerSize: bigint;
  buildId: string;
}

let built: Built | undefined;
function build(): Built {
  if (built !== undefined) return built;
  const dir = tempDir('rtev-fc-');
  const binary = path.join(dir, 'calls');
  execFileSync('gcc', ['-O1', '-g', '-fno-omit-frame-pointer', '-Wl,--build-id', '-fPIE', '-pie', '-o', binary, SRC]);
  const nm = execFileSync('nm', ['-S', binary], { encoding: 'utf8' });
  const m = /^[0-9a-f]+ ([0-9a-f]+) T caller_b$/m.exec(nm);
  assert.ok(m, nm);
  built = { binary, callerSize: BigInt('0x' + m[1]), buildId: buildId(binary) };
  return built;
}

/** progLine reads the `pid=P vuln=0x… caller_b=0x…` line the test program printed (into rtev's stderr, under --stdout). */
function progLine(stdout: string): { pid: number; vuln: bigint; callerB: bigint } {
  const m = /pid=(\d+) vuln=(0x[0-9a-f]+) caller_b=(0x[0-9a-f]+)/.exec(stdout);
  assert.ok(m, `no pid line in:\n${stdout.slice(0, 2000)}`);
  return { pid: Number(m[1]), vuln: BigInt(m[2]!), callerB: BigInt(m[3]!) };
}

function calls(records: Record<string, any>[], pid: number): Record<string, any>[] {
  return records.filter((r) => r.pid === pid && r.event?.type === 'function_call');
}

test('function_call --function-mode all: one record per call, symbolized, with the caller as frame 1', async (t) => {
  if (!rootOrSkip(t)) return;
  const b = build();
  const res = await runRtev(['collect', '--stdout', '--quiet', '--function', `${b.binary}:vuln_func`, '--function-mode', 'all',
    '--', b.binary, String(CALLS)], { timeoutMs: 90_000 });
  assert.equal(res.code, 0, res.stderr);
  const prog = progLine(res.stderr);
  const recs = calls(res.records, prog.pid);
  assert.equal(recs.length, CALLS, JSON.stringify(res.records.filter((r) => r.event?.type === 'function_call')));
  const nodeHash = computeNodeHash('native', `gnu-build-id:${b.buildId}`, 'vuln_func');
  for (const r of recs) {
    assert.equal(r.src, 'uprobe:function_entry');
    assert.equal(r.comm, 'calls');
    assert.equal(r.event.symbol, 'vuln_func');
    assert.equal(r.event.library, b.binary);
    assert.equal(r.event.runtime, 'native');
    assert.equal(BigInt(r.event.addr), prog.vuln, `addr ${r.event.addr} vs &vuln_func 0x${prog.vuln.toString(16)}`);
    assert.equal(r.event.node_hash, nodeHash);
    const stack: string[] = r.event.stack;
    assert.equal(BigInt(stack[0]!), prog.vuln, 'frame 0 is the function');
    const ret = BigInt(stack[1]!);
    assert.ok(ret > prog.callerB && ret <= prog.callerB + b.callerSize, `frame 1 ${stack[1]} is not inside caller_b`);
    // caller_a and main follow (the binary keeps frame pointers); the caller is not duplicated
    assert.ok(stack.length >= 4, JSON.stringify(stack));
    assert.notEqual(stack[2], stack[1]);
    for (const f of stack) assert.match(f, /^0x[0-9a-f]+$/);
  }
  // every call of the loop has the same stack
  assert.equal(new Set(recs.map((r) => r.event.stack.join(','))).size, 1);
});

test('function_call first-seen (the default): one record for identical calls, exact count in the summary', async (t) => {
  if (!rootOrSkip(t)) return;
  const b = build();
  const res = await runRtev(['collect', '--stdout', '--probes', 'process_exec', '--function', `${b.binary}:vuln_*`,
    '--', b.binary, String(CALLS)], { timeoutMs: 90_000 });
  assert.equal(res.code, 0, res.stderr);
  const prog = progLine(res.stderr);
  const recs = calls(res.records, prog.pid);
  assert.equal(recs.length, 1, JSON.stringify(recs));
  assert.equal(recs[0]!.event.symbol, 'vuln_func');
  assert.match(res.stderr, new RegExp(`function_call \\(first-seen\\): ${b.binary.replace(/[.]/g, '\\.')}:vuln_func calls=${CALLS} emitted=1`), res.stderr);
});

test('function_call: --probes function_call without targets and an unknown target are usage errors', async (t) => {
  const noTargets = await runRtev(['collect', '--stdout', '--probes', 'function_call', '--', 'true']);
  assert.equal(noTargets.code, 2);
  assert.match(noTargets.stderr, /^rtev: probe function_call needs targets$/m);
  assert.equal(noTargets.records.length, 0);
  const badMode = await runRtev(['collect', '--stdout', '--function', '/bin/true:main', '--function-mode', 'some', '--', 'true']);
  assert.equal(badMode.code, 2);
  assert.match(badMode.stderr, /--function-mode: unknown mode 'some'/);
  if (!rootOrSkip(t)) return;
  const b = build();
  const unknown = await runRtev(['collect', '--stdout', '--quiet', '--function', `${b.binary}:no_such_function`, '--', b.binary, '1']);
  assert.equal(unknown.code, 2, unknown.stderr);
  const lines = unknown.stderr.split('\n').filter((l) => l.startsWith('rtev: '));
  assert.equal(lines.length, 1, unknown.stderr);
  assert.match(lines[0]!, /no_such_function' matched no function/);
});

function osId(): string {
  const m = /^ID="?([^"\n]+)"?$/m.exec(fs.readFileSync('/etc/os-release', 'utf8'));
  return m ? m[1]! : 'debian';
}

test('function_call on libssl SSL_read while curl fetches over TLS: component is the dpkg purl', async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = tempDir('rtev-fc-tls-');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'k.pem'),
    '-out', path.join(dir, 'c.pem'), '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  fs.writeFileSync(path.join(dir, 'f.txt'), Buffer.alloc(50000, 'f'));
  const port = 20000 + Math.floor(Math.random() * 12000); // below the ephemeral range
  const res = await runRtev(['collect', '--stdout', '--quiet', '--probes', 'process_exec', '--function', 'libssl.so.3:SSL_read', '--function-mode', 'all',
    '--', 'bash', path.join(REPO, 'test', 'progs', 'net', 'https-www.sh'), dir, String(port), 'f.txt'], { timeoutMs: 90_000 });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(fs.statSync(path.join(dir, 'curlout')).size, 50000);
  const curl = Number(fs.readFileSync(path.join(dir, 'client.pid'), 'utf8'));
  const recs = calls(res.records, curl);
  assert.ok(recs.length >= 1, JSON.stringify(res.records.filter((r) => r.event?.type === 'function_call')));
  const version = execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'libssl3'], { encoding: 'utf8' }).trim();
  const purl = `pkg:deb/${osId()}/libssl3@${encodeURIComponent(version).replace(/%2B/g, '+').replace(/%3A/g, ':').replace(/%7E/g, '~')}`;
  const nodeHash = computeNodeHash('native', purl, 'SSL_read');
  for (const r of recs) {
    assert.equal(r.src, 'uprobe:function_entry');
    assert.equal(r.comm, 'curl');
    assert.equal(r.event.symbol, 'SSL_read');
    assert.match(r.event.library, /\/libssl\.so\.3$/);
    assert.equal(r.event.runtime, 'native');
    assert.equal(r.event.node_hash, nodeHash, `expected the hash of ${purl}`);
    assert.ok(r.event.stack.length >= 2 && r.event.stack[0] === r.event.addr);
  }
});

test('function_call after an exec in the same pid: symbolized against the new program, not the old maps', async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = tempDir('rtev-fc-exec-');
  const src = path.join(REPO, 'test', 'progs', 'func', 'exec-pair.c');
  const [one, two] = [1, 2].map((stage) => {
    const out = path.join(dir, `stage${stage}`);
    execFileSync('gcc', ['-O1', '-g', '-fno-pie', '-no-pie', `-DSTAGE=${stage}`, '-o', out, src]);
    return out;
  }) as [string, string];
  const res = await runRtev(['collect', '--stdout', '--quiet', '--probes', 'process_exec', '--function-mode', 'all',
    '--function', `${one}:stage_one`, '--function', `${two}:stage_two`, '--', one, two], { timeoutMs: 90_000 });
  assert.equal(res.code, 0, res.stderr);
  const m = /stage=2 pid=(\d+) target=(0x[0-9a-f]+)/.exec(res.stderr);
  assert.ok(m, res.stderr.slice(0, 2000));
  const pid = Number(m[1]);
  const recs = calls(res.records, pid);
  const first = recs.find((r) => r.event.library === one);
  assert.ok(first, JSON.stringify(recs));
  assert.equal(first.event.symbol, 'stage_one');
  const second = recs.filter((r) => BigInt(r.event.addr) === BigInt(m[2]!));
  assert.equal(second.length, 1, JSON.stringify(recs));
  // both programs are non-PIE at the same base: the old maps would put this address in stage1
  assert.equal(second[0]!.event.library, two);
  assert.equal(second[0]!.event.symbol, 'stage_two');
  const exec = res.records.findIndex((r) => r.pid === pid && r.event.type === 'process_exec' && r.event.filename === two);
  assert.ok(exec >= 0 && exec < res.records.indexOf(second[0]!), 'the exec record comes first');
});

test('function_call after an exec of the same program: the exec record drops the old maps (frames in the new library)', async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = tempDir('rtev-fc-exec-lib-');
  const prog = path.join(dir, 'exec-lib');
  execFileSync('gcc', ['-O1', '-g', '-fno-omit-frame-pointer', '-o', prog, path.join(REPO, 'test', 'progs', 'func', 'exec-lib.c'), '-ldl']);
  const [one, two] = ['one', 'two'].map((n) => {
    const out = path.join(dir, `lib${n}.so`);
    execFileSync('gcc', ['-O1', '-g', '-fno-omit-frame-pointer', '-shared', '-fPIC', '-o', out, path.join(REPO, 'test', 'progs', 'func', 'exec-lib-so.c')]);
    return out;
  }) as [string, string];
  const frames = path.join(dir, 'frames.ndjson');
  // setarch -R: no address randomization, so both images map their library at the same address
  const res = await runRtev(['collect', '--stdout', '--quiet', '--probes', 'process_exec', '--function-mode', 'all',
    '--function', `${prog}:target_cb`, '--frames', frames, '--', 'setarch', '-R', prog, one, frames, two], { timeoutMs: 90_000 });
  assert.equal(res.code, 0, res.stderr);
  const lines = [...res.stderr.matchAll(/pid=(\d+) lib=(\S+) target_cb=(0x[0-9a-f]+) run=(0x[0-9a-f]+)/g)];
  assert.equal(lines.length, 2, res.stderr.slice(0, 2000));
  assert.deepEqual(lines.map((m) => m[2]), [one, two]);
  assert.equal(lines[0]![1], lines[1]![1], 'one pid');
  assert.equal(lines[0]![4], lines[1]![4], 'both libraries at the same address');
  const pid = Number(lines[0]![1]);
  const described = fs.readFileSync(frames, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as {
    pid: number; frames: { symbol?: string; library?: string }[];
  }).filter((d) => d.pid === pid);
  assert.equal(described.length, 2, JSON.stringify(described));
  assert.deepEqual(described.map((d) => [d.frames[0]!.symbol, d.frames[0]!.library]), [['target_cb', prog], ['target_cb', prog]]);
  // frame 1 is the return address inside run(): the second call's is in libtwo.so
  assert.deepEqual(described.map((d) => [d.frames[1]!.symbol, d.frames[1]!.library]), [['run', one], ['run', two]]);
});
