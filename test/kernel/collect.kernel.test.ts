import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { createRecordValidator } from '../../src/encode/validate';
import { compileC, rootOrSkip, runRtev, tempDir } from '../helpers/collector';

/** keyValues parses the trigger's "key value" stdout lines. */
function keyValues(stdout: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = /^(\w+) (.+)$/.exec(line);
    if (m && !line.startsWith('{')) map.set(m[1]!, m[2]!);
  }
  return map;
}

test('collect -- trigger: exact file_open, process_exec and tcp_state records', async (t) => {
  if (!rootOrSkip(t)) return;
  const trigger = compileC('trigger.c');
  const dir = fs.realpathSync(tempDir());
  const run = await runRtev(['collect', '--stdout', '--quiet', '--', trigger, dir]);
  assert.equal(run.code, 0, run.stderr);
  // the trigger's own output goes to rtev's stderr under --stdout
  const facts = keyValues(run.stderr);
  const pid = Number(facts.get('pid'));
  const child = Number(facts.get('child'));
  const validate = createRecordValidator();
  for (const [i, line] of run.lines.entries()) assert.equal(validate(line), undefined, `line ${i + 1}: ${line}`);

  const opens = run.records.filter((r) => r.event.type === 'file_open' && r.pid === pid);
  const byPath = (p: string) => opens.find((r) => r.event.path === p);
  const absolute = byPath(`${dir}/absolute.txt`);
  assert.ok(absolute, 'absolute open recorded');
  assert.deepEqual(absolute.event, { type: 'file_open', path: `${dir}/absolute.txt`, flags: 0o100, access: 'read', dfd: -100, mode: 0o644 });
  assert.equal(absolute.src, 'sys_enter_openat');
  assert.equal(absolute.comm, 'trigger');
  assert.equal(absolute.tid, pid);
  assert.ok(typeof absolute.cgroup_id === 'number' && absolute.cgroup_id >= 1);

  const relative = byPath(`${dir}/relative.txt`);
  assert.ok(relative, 'relative path made absolute against the cwd');
  assert.equal(relative.event.access, 'write');
  assert.equal(relative.event.mode, 0o600);

  const dfd = Number(facts.get('dfd'));
  const viaDfd = byPath(`${dir}/sub/dfd-relative.txt`);
  assert.ok(viaDfd, 'dfd-relative path made absolute against the directory fd');
  assert.equal(viaDfd.event.dfd, dfd);
  assert.equal(viaDfd.event.access, 'read_write');
  assert.equal(viaDfd.event.mode, 0o640);

  const hostile = byPath(`${dir}/new\nline"quote\\back\udcff.txt`);
  assert.ok(hostile, 'hostile name recorded, invalid byte as \\udcff');
  const hostileLine = run.lines.find((l) => l.includes('quote'))!;
  assert.ok(hostileLine.includes('new\\nline\\"quote\\\\back\\udcff.txt'), hostileLine);

  const deep = opens.find((r) => r.event.path.endsWith('/deep.txt'));
  assert.ok(deep, 'deep path recorded');
  assert.equal(deep.event.path, `${dir}/${Array(6).fill('d'.repeat(200)).join('/')}/deep.txt`);
  assert.ok(deep.event.path.length > 1024);

  assert.equal(opens.filter((r) => r.event.path.includes('nonexistent')).length, 0, 'failed opens are not recorded by default');

  const execs = run.records.filter((r) => r.event.type === 'process_exec');
  const trueExec = execs.find((r) => r.pid === child);
  assert.ok(trueExec, 'exec of /bin/true recorded');
  assert.equal(trueExec.event.filename, '/bin/true');
  assert.equal(trueExec.event.ppid, pid);
  assert.equal(trueExec.event.argv0, 'custom-argv0-' + 'a'.repeat(287));
  assert.equal(trueExec.comm, 'true');
  assert.ok(execs.some((r) => r.pid === pid && r.event.filename === trigger), 'exec of the trigger itself');

  for (const [family, host] of [['inet', '127.0.0.1'], ['inet6', '::1']] as const) {
    const port = Number(facts.get(family === 'inet' ? 'ipv4_port' : 'ipv6_port'));
    const tcp = run.records.filter((r) => r.event.type === 'tcp_state' && r.event.family === family &&
      (r.event.sport === port || r.event.dport === port));
    const states = (pred: (e: any) => boolean) => tcp.filter((r) => pred(r.event));
    assert.equal(states((e) => e.oldstate === 'CLOSE' && e.newstate === 'LISTEN').length, 1, `${family} listen`);
    const syn = states((e) => e.oldstate === 'CLOSE' && e.newstate === 'SYN_SENT');
    assert.equal(syn.length, 1, `${family} connect`);
    assert.equal(syn[0].event.daddr, host);
    assert.equal(syn[0].event.dport, port);
    assert.equal(states((e) => e.oldstate === 'SYN_SENT' && e.newstate === 'ESTABLISHED').length, 1, `${family} established`);
    assert.equal(states((e) => e.oldstate === 'SYN_RECV' && e.newstate === 'ESTABLISHED').length, 1, `${family} accepted`);
    for (const r of tcp) assert.equal(r.pid, pid, `tcp_state attributed to the socket owner: ${JSON.stringify(r)}`);
  }

  // only the command's subtree: every record belongs to a process that the run exec'd
  const subtree = new Set(execs.map((r) => r.pid));
  for (const r of run.records) assert.ok(subtree.has(r.pid), `record outside the subtree: ${JSON.stringify(r).slice(0, 200)}`);
});

test('collect -- CMD returns the command exit status', async (t) => {
  if (!rootOrSkip(t)) return;
  const run = await runRtev(['collect', '--stdout', '--quiet', '--', '/bin/sh', '-c', 'exit 7']);
  assert.equal(run.code, 7);
  const killed = await runRtev(['collect', '--stdout', '--quiet', '--', '/bin/sh', '-c', 'kill -TERM $$']);
  assert.equal(killed.code, 128 + 15);
});

test('collect --include-failed-opens records failures with the errno in src', async (t) => {
  if (!rootOrSkip(t)) return;
  const run = await runRtev(['collect', '--stdout', '--quiet', '--include-failed-opens', '--probes', 'file_open', '--',
    '/bin/cat', '/nonexistent/rtev-failed-open']);
  assert.equal(run.code, 1);
  const failed = run.records.find((r) => r.event.path === '/nonexistent/rtev-failed-open');
  assert.ok(failed, 'failed open recorded');
  assert.equal(failed.src, 'sys_enter_openat:failed:ENOENT');
  assert.ok(run.records.every((r) => r.event.type === 'file_open'), 'only the selected probe');
});

test('system-wide collection sees other processes and excludes the collector itself', async (t) => {
  if (!rootOrSkip(t)) return;
  const marker = `/tmp/rtev-systemwide-${process.pid}`;
  const collecting = runRtev(['collect', '--stdout', '--quiet', '--duration', '4s', '--probes', 'file_open,process_exec']);
  // the collector's start-up time varies (a loaded host, the sanitizer build): open the marker
  // every 200 ms until the run ends, so some opens surely fall inside the collection window
  let done = false;
  const opening = (async () => {
    while (!done) {
      fs.writeFileSync(marker, 'x');
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  const run = await collecting;
  done = true;
  await opening;
  assert.equal(run.code, 0, run.stderr);
  assert.ok(run.records.some((r) => r.event.type === 'file_open' && r.event.path === marker && r.pid === process.pid));
  // other rtev runs on a shared machine are other processes: only this collector's pid must be absent
  assert.ok(!run.records.some((r) => r.pid === run.pid), 'the collector does not trace itself');
  fs.rmSync(marker, { force: true });
});

test('user errors print one line with a fix and no stack trace', async (t) => {
  if (!rootOrSkip(t)) return;
  const badProbe = await runRtev(['collect', '--probes', 'file_open,bogus']);
  assert.equal(badProbe.code, 2);
  assert.match(badProbe.stderr, /unknown probe 'bogus'/);
  assert.match(badProbe.stderr, /valid probes: file_open, process_exec, tcp_state/);
  assert.doesNotMatch(badProbe.stderr, /at .*\.js:\d+/);
  const badOut = await runRtev(['collect', '--out', '/proc/rtev-cannot-write', '--duration', '1s']);
  assert.equal(badOut.code, 4, badOut.stderr);
  assert.match(badOut.stderr, /fix: /);
  const badConfig = tempDir();
  fs.writeFileSync(`${badConfig}/c.json`, '{"probes": 3, "nope": true}');
  const config = await runRtev(['collect', '--config', `${badConfig}/c.json`]);
  assert.equal(config.code, 2);
  assert.match(config.stderr, /config file/);
});
