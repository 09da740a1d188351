import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyCgroupPath, parseProcCgroup } from '../../src/enrich/cgroup-path';

const A = '2fe7bd6df5b75f3c6ea7111b08c100da3a5c49777cb4a7cc999a40cc2dfede13';
const B = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';
const POD = 'pod3f1c2d4e-0000-4000-8000-000000000001';
const PODS = 'pod3f1c2d4e_0000_4000_8000_000000000001';

const containers: Array<[string, string, string, string]> = [
  // [path, runtime, id, layout]
  [`/libpod_parent/libpod-${A}`, 'podman', A, 'podman-cgroupfs'], // seen on this machine (podman 4.3, runc)
  [`/machine.slice/libpod-${A}.scope`, 'podman', A, 'podman-systemd'],
  [`/machine.slice/libpod-${A}.scope/container`, 'podman', A, 'podman-systemd'],
  [`/machine.slice/machine-libpod_pod_${B}.slice/libpod-${A}.scope`, 'podman', A, 'podman-systemd'],
  [`/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${A}.scope`, 'podman', A, 'podman-systemd'],
  [`/system.slice/docker-${A}.scope`, 'docker', A, 'docker-systemd'],
  [`/docker/${A}`, 'docker', A, 'docker-cgroupfs'],
  [`/docker/${B}/docker/${A}`, 'docker', A, 'docker-cgroupfs'], // docker-in-docker: innermost
  [`/docker/${A}/system.slice/nginx.service`, 'docker', A, 'docker-cgroupfs'], // systemd inside a container
  [`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-${PODS}.slice/cri-containerd-${A}.scope`, 'containerd', A, 'containerd-systemd'],
  [`/kubepods.slice/kubepods-${PODS}.slice/cri-containerd-${A}.scope`, 'containerd', A, 'containerd-systemd'], // guaranteed QoS
  [`/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-${PODS}.slice/crio-${A}.scope`, 'cri-o', A, 'crio-systemd'],
  [`/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-${PODS}.slice/crio-${A}.scope/container`, 'cri-o', A, 'crio-systemd'],
  [`/kubepods/besteffort/${POD}/crio-${A}`, 'cri-o', A, 'crio-cgroupfs'],
  [`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-${PODS}.slice/docker-${A}.scope`, 'docker', A, 'docker-systemd'], // dockershim / cri-dockerd
  [`/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-${PODS}.slice/cri-containerd-${A}.scope`, 'containerd', A, 'containerd-systemd'], // kind nodes
  [`/docker/${B}/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-${PODS}.slice/cri-containerd-${A}.scope`, 'containerd', A, 'containerd-systemd'], // kind seen from the host
  [`/system.slice/docker-${A}.scope (deleted)`, 'docker', A, 'docker-systemd'],
];

test('classifyCgroupPath: runtime named by the layout', () => {
  for (const [p, runtime, id, layout] of containers) {
    assert.deepEqual(classifyCgroupPath(p), { kind: 'container', id, runtime, layout }, p);
  }
});

test('classifyCgroupPath: kubepods cgroupfs and containerd namespaces need the runtime to confirm', () => {
  assert.deepEqual(classifyCgroupPath(`/kubepods/burstable/${POD}/${A}`), {
    kind: 'ambiguous', id: A, candidates: ['containerd', 'cri-o', 'docker'], layout: 'kubepods-cgroupfs',
  });
  assert.deepEqual(classifyCgroupPath(`/kubepods/${POD}/${A}`).kind, 'ambiguous');
  assert.deepEqual(classifyCgroupPath(`/default/${A}`), {
    kind: 'ambiguous', id: A, candidates: ['containerd'], layout: 'containerd-namespace', namespace: 'default',
  });
  assert.equal((classifyCgroupPath(`/k8s.io/${A}`) as { namespace?: string }).namespace, 'k8s.io');
});

test('classifyCgroupPath: host cgroups and runtime helpers get no container', () => {
  for (const p of [
    '/', '/init.scope', '/system.slice/sshd.service', '/user.slice/user-0.slice/session-3.scope',
    '/process_api/84353f51dc07e71b6482cb8b67ba5ee5', // 32 hex: this machine's sandbox, not a container
    '/kubepods.slice/kubepods-burstable.slice', `/kubepods/burstable/${POD}`,
    '/machine.slice/machine-qemu\\x2d1\\x2dvm.scope', '/lxc.payload.web', '/system.slice/containerd.service',
  ]) {
    assert.equal(classifyCgroupPath(p).kind, 'host', p);
  }
  assert.deepEqual(classifyCgroupPath(`/machine.slice/libpod-conmon-${A}.scope`), { kind: 'host', note: 'podman-conmon' });
  assert.deepEqual(classifyCgroupPath(`/kubepods.slice/crio-conmon-${A}.scope`), { kind: 'host', note: 'crio-conmon' });
});

test('classifyCgroupPath: container-looking but unknown, and malformed paths', () => {
  for (const p of [`/a/b/${A}`, `/system.slice/foo-${A}.scope`, `/lxc/${A}x`]) {
    assert.deepEqual(classifyCgroupPath(p), { kind: 'unknown', reason: 'unrecognized', path: p }, p);
  }
  for (const p of ['', 'docker/' + A, `/docker/../docker/${A}`, `/docker/./${A}`, `/docker/${A}\0`]) {
    assert.equal((classifyCgroupPath(p) as { reason?: string }).reason, 'malformed', JSON.stringify(p));
  }
  // upper-case hex is not what any runtime writes: never attributed
  assert.notEqual(classifyCgroupPath(`/docker/${A.toUpperCase()}`).kind, 'container');
  assert.notEqual(classifyCgroupPath(`/docker/${A.slice(1)}`).kind, 'container');
});

test('parseProcCgroup: hybrid host, unified host, garbage', () => {
  const hybrid = [
    '9:name=systemd:/', '4:memory:/process_api/84353f51dc07e71b6482cb8b67ba5ee5', '2:cpu,cpuacct:/docker/' + A, '0::/', '',
  ].join('\n');
  const p = parseProcCgroup(hybrid);
  assert.equal(p.v2, '/');
  assert.equal(p.v1.get('memory'), '/process_api/84353f51dc07e71b6482cb8b67ba5ee5');
  assert.equal(p.v1.get('cpuacct'), '/docker/' + A);
  assert.equal(p.v1.get('name=systemd'), '/');
  assert.deepEqual(parseProcCgroup(`0::/libpod_parent/libpod-${A}\n`).v2, `/libpod_parent/libpod-${A}`);
  const junk = parseProcCgroup('garbage\nx:y:z\n0::relative\n::\n');
  assert.equal(junk.v2, undefined);
  assert.equal(junk.v1.size, 0);
});
