import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { rootOrSkip, runRtev } from '../helpers/collector';

const V1_MEMORY = '/sys/fs/cgroup/memory';

test('hybrid host: a container only in the v1 hierarchy (Docker cgroupfs layout) is attributed, tcp_state included', async (t) => {
  if (!rootOrSkip(t)) return;
  if (!fs.existsSync(`${V1_MEMORY}/cgroup.procs`)) {
    // a pure cgroup v2 host has no v1 hierarchy: nothing to attribute there
    console.log(`skipped: ${V1_MEMORY} is not a cgroup v1 hierarchy on this host`);
    t.skip('no cgroup v1 memory hierarchy');
    return;
  }
  const id = randomBytes(32).toString('hex');
  const dir = `${V1_MEMORY}/docker/${id}`;
  fs.mkdirSync(dir, { recursive: true });
  try {
    // cat opens a file; python3 makes a loopback TCP connection and accepts it (tcp_state records,
    // attributed to their socket owner in BPF, carry the owner's v1 id too)
    const tcp = 'import socket\ns=socket.create_server(("127.0.0.1",0))\nc=socket.create_connection(s.getsockname())\n' +
      'a,_=s.accept()\na.close()\nc.close()\ns.close()';
    const run = await runRtev(['collect', '--stdout', '--quiet', '--probes', 'file_open,process_exec,tcp_state', '--',
      '/bin/sh', '-c', `echo $$ > ${dir}/cgroup.procs && /bin/cat /etc/hostname && exec python3 -c '${tcp}'`]);
    assert.equal(run.code, 0, run.stderr);
    const cat = run.records.filter((r) => r.comm === 'cat');
    assert.ok(cat.some((r) => r.event.type === 'process_exec'), 'exec of cat recorded');
    assert.ok(cat.some((r) => r.event.type === 'file_open' && r.event.path === '/etc/hostname'), 'open recorded');
    for (const r of cat) {
      assert.equal(r.cgroup_id, 1, 'the v2 id is the root: v2 alone cannot tell this container apart');
      assert.equal(r.container_id, `docker://${id}`);
    }
    const tcpRecords = run.records.filter((r) => r.event.type === 'tcp_state' && r.comm === 'python3');
    assert.ok(tcpRecords.some((r) => r.event.newstate === 'LISTEN'), JSON.stringify(run.records.filter((r) => r.event.type === 'tcp_state')));
    assert.ok(tcpRecords.some((r) => r.event.newstate === 'ESTABLISHED'));
    for (const r of tcpRecords) assert.equal(r.container_id, `docker://${id}`, JSON.stringify(r));
    const before = run.records.filter((r) => r.comm === 'sh' && r.event.type === 'process_exec');
    for (const r of before) assert.equal(r.container_id, undefined, 'the shell before it joined the cgroup is a host process');
  } finally {
    fs.rmdirSync(dir);
  }
});
