import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { test } from 'node:test';
import * as fs from 'node:fs';
import { RTEV, rootOrSkip, runRtev } from '../helpers/collector';

const SERVER = `
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(5)
print(s.getsockname()[1], flush=True)
s.settimeout(30)
c, _ = s.accept(); c.recv(1); c.close(); time.sleep(0.3)
`;

test('a socket listening before the collector started: accepted connections are attributed to its owner', async (t) => {
  if (!rootOrSkip(t)) return;
  const server = spawn('python3', ['-c', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => server.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  // the client runs under the collector; the server does not (it is not in the observed subtree
  // either, so observe system-wide, restricted to tcp_state, and filter by port)
  const collecting = runRtev(['collect', '--stdout', '--quiet', '--probes', 'tcp_state', '--duration', '4s']);
  await new Promise((r) => setTimeout(r, 2000));
  const client = spawn('python3', ['-c', `import socket; c = socket.create_connection(("127.0.0.1", ${port})); c.send(b"x"); c.close()`]);
  await new Promise((r) => client.on('exit', r));
  const run = await collecting;
  server.kill();
  assert.equal(run.code, 0, run.stderr);
  const serverSide = run.records.filter((r) => r.event.type === 'tcp_state' && r.event.sport === port && r.event.oldstate !== 'LISTEN' && r.event.newstate !== 'LISTEN');
  const accepted = serverSide.find((r) => r.event.oldstate === 'SYN_RECV' && r.event.newstate === 'ESTABLISHED');
  assert.ok(accepted, `accepted connection recorded: ${JSON.stringify(serverSide)}`);
  assert.equal(accepted.pid, server.pid, 'attributed to the process holding the listening socket');
  assert.equal(accepted.comm, 'python3');
});

const PAIR = `
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
c = socket.create_connection(s.getsockname())
a, _ = s.accept()
print(c.getsockname()[1], flush=True)
sys.stdin.readline()
a.close()  # the client's socket goes ESTABLISHED -> CLOSE_WAIT in softirq, not in a system call on it
time.sleep(0.3)
c.close()
time.sleep(0.3)
`;

/** seededOwnerPids: the pids in the sock_owners map (bpf/tcp_state.h) of collector process `collector` */
function seededOwnerPids(collector: number): number[] {
  const held = new Set<number>();
  for (const fd of fs.readdirSync(`/proc/${collector}/fd`)) {
    try {
      if (fs.readlinkSync(`/proc/${collector}/fd/${fd}`) !== 'anon_inode:bpf-map') continue;
      const id = /map_id:\s*(\d+)/.exec(fs.readFileSync(`/proc/${collector}/fdinfo/${fd}`, 'utf8'))?.[1];
      if (id !== undefined) held.add(Number(id));
    } catch {
      // closed meanwhile
    }
  }
  const maps = JSON.parse(execFileSync('bpftool', ['map', 'show', '-j'], { encoding: 'utf8', maxBuffer: 64 << 20 })) as { id: number; name: string }[];
  const owners = maps.find((m) => m.name === 'sock_owners' && held.has(m.id));
  if (owners === undefined) return [];
  const entries = JSON.parse(execFileSync('bpftool', ['map', 'dump', 'id', String(owners.id), '-j'], { encoding: 'utf8', maxBuffer: 64 << 20 })) as
    { formatted?: { value?: { pid?: number } } }[];
  return entries.flatMap((e) => (e.formatted?.value?.pid === undefined ? [] : [e.formatted.value.pid]));
}

test('a TCP connection open before the collector started: its softirq transitions are attributed to its holder', async (t) => {
  if (!rootOrSkip(t)) return;
  const pair = spawn('python3', ['-c', PAIR], { stdio: ['pipe', 'pipe', 'inherit'] });
  const clientPort = await new Promise<number>((resolve) => pair.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  const collector = spawn(process.execPath, [RTEV, 'collect', '--stdout', '--quiet', '--probes', 'tcp_state', '--duration', '20s']);
  let out = '';
  collector.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((r) => collector.on('exit', (code) => r(code)));
  // ready once the start-up iterator has seeded, in this collector's map, the owner of the connection
  const seeded = (): boolean => { try { return seededOwnerPids(collector.pid!).includes(pair.pid!); } catch { return false; } };
  const deadline = Date.now() + 15_000;
  while (!seeded() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const wasSeeded = seeded();
  pair.stdin.write('go\n');
  await new Promise((r) => pair.on('exit', r));
  collector.kill('SIGINT');
  assert.equal(await exited, 0);
  assert.ok(wasSeeded, 'the iterator seeded the owner of the existing connection');
  const records = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  const clientSide = records.filter((r) => r.event.type === 'tcp_state' && r.event.sport === clientPort);
  const closeWait = clientSide.find((r) => r.event.oldstate === 'ESTABLISHED' && r.event.newstate === 'CLOSE_WAIT');
  assert.ok(closeWait, `the peer's close is recorded: ${JSON.stringify(clientSide)}`);
  assert.equal(closeWait.pid, pair.pid, 'attributed to the process holding the socket');
  assert.equal(closeWait.comm, 'python3');
});
