import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { rootOrSkip, runRtev } from '../helpers/collector';

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
