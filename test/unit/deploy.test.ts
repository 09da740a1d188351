import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO, RTEV } from '../helpers/collector';
import { requireTools } from '../helpers/tools';

/**
 * deploy/: the systemd units pass `systemd-analyze verify` (with ExecStart pointing at this
 * checkout's bin/rtev, which must exist) without any warning, and the Kubernetes manifests
 * parse and carry what a cluster needs: selectors matching the pod labels, images, the
 * rtev command, least-privilege security contexts, volumes that exist, no secret in args.
 *
 * Tool: systemd-analyze (package systemd), the only complete checker of unit files; recorded
 * output would not check the units as they are now. A missing systemd-analyze fails the test.
 */

const UNITS = ['rtev-agent.service', 'rtev-ship.service', 'rtev-ingest.service'];

test('systemd units pass systemd-analyze verify without warnings', () => {
  requireTools('systemd-analyze');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-units-'));
  const files = UNITS.map((u) => {
    const text = fs.readFileSync(path.join(REPO, 'deploy', 'systemd', u), 'utf8');
    assert.match(text, /^ExecStart=\/usr\/bin\/rtev /m);
    const file = path.join(dir, u);
    fs.writeFileSync(file, text.replace(/\/usr\/bin\/rtev/g, RTEV));
    return file;
  });
  const r = spawnSync('systemd-analyze', ['verify', ...files], { encoding: 'utf8', cwd: dir });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.trim(), '', 'no warning (an unknown key is only a warning)');
  for (const f of files) {
    const text = fs.readFileSync(f, 'utf8');
    assert.doesNotMatch(text.split('\n').filter((l) => l.startsWith('ExecStart=')).join('\n'), /password|PGPASSWORD|:\/\/[^ ]*:[^ ]*@/i, 'no secret on a command line');
    if (f.endsWith('rtev-agent.service')) {
      assert.match(text, /^CapabilityBoundingSet=.*CAP_BPF.*CAP_PERFMON/m, 'the collector can still load BPF');
      assert.match(text, /^SystemCallFilter=.*\bbpf\b.*\bperf_event_open\b/m);
      assert.match(text, /^MemoryDenyWriteExecute=no/m, 'V8 needs W+X memory');
    } else {
      assert.match(text, /^CapabilityBoundingSet=$/m, 'ship and ingest need no capability');
      assert.match(text, /^LoadCredential=/m, 'credentials through systemd credentials');
    }
  }
});

function load(file: string): Record<string, any>[] {
  const docs = parseAllDocuments(fs.readFileSync(path.join(REPO, 'deploy', 'kubernetes', file), 'utf8'));
  for (const d of docs) assert.deepEqual(d.errors, [], `${file}: YAML errors`);
  return docs.map((d) => d.toJS() as Record<string, any>).filter((d) => d !== null);
}

function checkWorkload(w: Record<string, any>): void {
  assert.equal(w['apiVersion'], 'apps/v1');
  assert.ok(typeof w['metadata']?.name === 'string' && typeof w['metadata']?.namespace === 'string', 'name and namespace');
  const spec = w['spec'];
  const labels = spec.template.metadata.labels as Record<string, string>;
  for (const [k, v] of Object.entries(spec.selector.matchLabels as Record<string, string>)) assert.equal(labels[k], v, 'the selector matches the pod labels');
  const pod = spec.template.spec;
  assert.equal(pod.automountServiceAccountToken, false, 'no API token in the pod');
  const volumes = new Set((pod.volumes as { name: string }[]).map((v) => v.name));
  for (const c of pod.containers as Record<string, any>[]) {
    assert.ok(typeof c['image'] === 'string' && c['image'].includes(':'), `${c['name']}: an image with a tag`);
    assert.deepEqual(c['command'], ['rtev']);
    assert.ok(Array.isArray(c['args']) && c['args'].every((a: unknown) => typeof a === 'string'));
    assert.doesNotMatch(c['args'].join(' '), /password|:\/\/[^ ]*:[^ ]*@/i, `${c['name']}: no secret in args`);
    const sc = c['securityContext'];
    assert.notEqual(sc?.privileged, true, `${c['name']}: not privileged`);
    assert.equal(sc?.allowPrivilegeEscalation, false);
    assert.equal(sc?.readOnlyRootFilesystem, true);
    assert.deepEqual(sc?.capabilities?.drop, ['ALL'], `${c['name']}: drops every capability first`);
    assert.ok(c['resources']?.limits?.memory !== undefined, `${c['name']}: a memory limit`);
    for (const m of (c['volumeMounts'] ?? []) as { name: string; mountPath: string }[]) {
      assert.ok(volumes.has(m.name), `${c['name']}: volume ${m.name} exists`);
      assert.ok(m.mountPath.startsWith('/'));
    }
    for (const e of (c['env'] ?? []) as { name: string; value?: string }[]) assert.ok(e.value === undefined || !/password/i.test(e.name), 'secrets come from secretKeyRef');
    for (const a of c['args'] as string[]) {
      const ref = /^\$\(([A-Z_]+)\)$/.exec(a);
      if (ref !== null) assert.ok((c['env'] as { name: string }[]).some((e) => e.name === ref[1]), `$(${ref[1]}) is defined`);
    }
  }
}

test('the DaemonSet runs collect + ship with minimal capabilities and host mounts', () => {
  const docs = load('rtev-agent-daemonset.yaml');
  const ds = docs.find((d) => d['kind'] === 'DaemonSet')!;
  assert.ok(ds !== undefined);
  checkWorkload(ds);
  const pod = ds['spec'].template.spec;
  assert.equal(pod.hostPID, true, 'sees every process of the node');
  const byName = Object.fromEntries((pod.containers as Record<string, any>[]).map((c) => [c['name'], c]));
  assert.deepEqual(byName['collect'].args.slice(0, 1), ['collect']);
  assert.deepEqual(byName['ship'].args.slice(0, 1), ['ship']);
  assert.ok(byName['ship'].args.includes('--follow'));
  assert.deepEqual([...byName['collect'].securityContext.capabilities.add].sort(), ['BPF', 'DAC_READ_SEARCH', 'PERFMON', 'SYS_ADMIN', 'SYS_PTRACE', 'SYS_RESOURCE']);
  assert.equal(byName['ship'].securityContext.capabilities.add, undefined, 'ship gets no capability');
  const hostPaths = Object.fromEntries((pod.volumes as Record<string, any>[]).filter((v) => v['hostPath'] !== undefined).map((v) => [v['name'], v['hostPath'].path]));
  assert.equal(hostPaths['btf'], '/sys/kernel/btf');
  assert.equal(hostPaths['evidence'], '/var/lib/rtev/evidence', 'the spool survives pod restarts');
  const collectMounts = Object.fromEntries((byName['collect'].volumeMounts as Record<string, any>[]).map((m) => [m['name'], m]));
  assert.equal(collectMounts['btf'].readOnly, true);
  assert.equal(collectMounts['cgroup'].readOnly, true);
  const evidenceArg = byName['collect'].args[byName['collect'].args.indexOf('--out') + 1];
  assert.equal(byName['ship'].args[1], evidenceArg, 'ship reads the directory collect writes');
  assert.ok(docs.some((d) => d['kind'] === 'Namespace'));
});

test('the ingest Deployment shares the consumer, runs as non-root, takes its secrets from Secrets', () => {
  const docs = load('rtev-ingest-deployment.yaml');
  const dep = docs.find((d) => d['kind'] === 'Deployment')!;
  checkWorkload(dep);
  assert.ok(dep['spec'].replicas >= 2, 'several ingest processes share the durable consumer');
  const pod = dep['spec'].template.spec;
  assert.equal(pod.securityContext.runAsNonRoot, true);
  const c = pod.containers[0];
  assert.equal(c.args[0], 'ingest');
  assert.equal(c.securityContext.capabilities.add, undefined);
  assert.ok((c.env as Record<string, any>[]).some((e) => e['name'] === 'PGPASSWORD' && e['valueFrom']?.secretKeyRef !== undefined));
  const cm = docs.find((d) => d['kind'] === 'ConfigMap' && d['metadata'].name === 'rtev-fleet')!;
  assert.doesNotMatch(JSON.stringify(cm['data']), /:\/\/[^/@]*:[^/@]*@/, 'the database URL has no password');
});
