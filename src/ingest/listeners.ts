import * as fs from 'node:fs';
import * as path from 'node:path';
import { cgroup2Mount } from '../platform/cgroup2';

/** A TCP listening socket found in /proc/net/tcp{,6}. */
export interface ProcListener {
  family: 2 | 10;
  port: number;
  inode: number;
}

const TCP_LISTEN = '0A';

/**
 * parseProcNetTcp reads the listening sockets of a /proc/net/tcp or tcp6 text. Lines that do
 * not parse are skipped and counted: the file comes from the kernel but is treated as untrusted.
 */
export function parseProcNetTcp(text: string, family: 2 | 10): { listeners: ProcListener[]; rejected: number } {
  const listeners: ProcListener[] = [];
  let rejected = 0;
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10) {
      if (line.trim().length > 0) rejected++;
      continue;
    }
    const local = fields[1]!;
    const port = Number.parseInt(local.slice(local.indexOf(':') + 1), 16);
    const inode = Number(fields[9]);
    if (!/^[0-9A-F]+:[0-9A-F]{4}$/i.test(local) || !Number.isInteger(inode) || !(port >= 0 && port <= 65535)) {
      rejected++;
      continue;
    }
    if (fields[3] === TCP_LISTEN && inode > 0) listeners.push({ family, port, inode });
  }
  return { listeners, rejected };
}

/** The owner of a listening socket, as the BPF listen_owners map stores it. */
export interface ListenerOwner {
  family: 2 | 10;
  port: number;
  pid: number;
  comm: string;
  cgroupId: bigint;
  /** the memory cgroup's id in the v1 hierarchy when the process is in the v2 root (bpf/common.h) */
  cgroupV1Id?: bigint;
}

/** struct sock_owner of bpf/tcp_state.h (checked against the object's BTF in test/unit/layout.test.ts) */
export const SockOwner = { cgroup_id: 0, pid: 8, tid: 12, comm: 16, cgroup_v1_id: 32, SIZE: 40 } as const;

/**
 * findListenerOwners maps the listening sockets that exist now to the processes holding them,
 * so tcp_state changes of connections accepted on sockets opened before the collector started
 * can be attributed (bpf/tcp_state.h). Bounded: at most maxProcesses processes are scanned.
 */
export function findListenerOwners(procRoot = '/proc', cgroup2Root = cgroup2Mount(), maxProcesses = 4096,
  memoryV1Mount = '/sys/fs/cgroup/memory'): ListenerOwner[] {
  const byInode = new Map<number, ProcListener>();
  for (const [file, family] of [['net/tcp', 2], ['net/tcp6', 10]] as const) {
    try {
      for (const l of parseProcNetTcp(fs.readFileSync(path.join(procRoot, file), 'utf8'), family).listeners) byInode.set(l.inode, l);
    } catch {
      // no IPv6, or no procfs: nothing to seed
    }
  }
  if (byInode.size === 0) return [];
  const owners: ListenerOwner[] = [];
  let scanned = 0;
  for (const entry of safeReaddir(procRoot)) {
    if (!/^\d+$/.test(entry) || ++scanned > maxProcesses) continue;
    const pid = Number(entry);
    for (const fd of safeReaddir(path.join(procRoot, entry, 'fd'))) {
      let target: string;
      try {
        target = fs.readlinkSync(path.join(procRoot, entry, 'fd', fd));
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(target);
      const listener = m ? byInode.get(Number(m[1])) : undefined;
      if (listener === undefined) continue;
      byInode.delete(listener.inode); // first holder wins
      const ids = cgroupsOf(procRoot, pid, cgroup2Root, memoryV1Mount);
      owners.push({ family: listener.family, port: listener.port, pid, comm: readComm(procRoot, pid), ...ids });
    }
  }
  return owners;
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

function readComm(procRoot: string, pid: number): string {
  try {
    return fs.readFileSync(path.join(procRoot, String(pid), 'comm'), 'utf8').slice(0, 15).replace(/\n$/, '');
  } catch {
    return '';
  }
}

/** cgroupsOf: the ids bpf/common.h's task_cgroup_ids gives, from /proc/PID/cgroup (0 when unknown) */
function cgroupsOf(procRoot: string, pid: number, cgroup2Mount: string, memoryV1Mount: string): { cgroupId: bigint; cgroupV1Id: bigint } {
  let text: string;
  try {
    text = fs.readFileSync(path.join(procRoot, String(pid), 'cgroup'), 'utf8');
  } catch {
    return { cgroupId: 0n, cgroupV1Id: 0n };
  }
  const lines = text.split('\n');
  const relative = (prefix: RegExp): string | undefined => lines.find((l) => prefix.test(l))?.replace(prefix, '');
  const inode = (mount: string, rel: string | undefined): bigint => {
    if (rel === undefined || !rel.startsWith('/') || rel.split('/').includes('..')) return 0n;
    try {
      return fs.statSync(path.join(mount, rel), { bigint: true }).ino;
    } catch {
      return 0n;
    }
  };
  const v2 = relative(/^0::/);
  // the v2 root is what the kernel sees as cgroup id 1
  return { cgroupId: inode(cgroup2Mount, v2), cgroupV1Id: v2 === '/' ? inode(memoryV1Mount, relative(/^\d+:memory:/)) : 0n };
}

/** encodeListenerOwner gives the key and value of bpf/tcp_state.h's listen_owners map. */
export function encodeListenerOwner(o: ListenerOwner): { key: Buffer; value: Buffer } {
  const key = Buffer.alloc(4);
  key.writeUInt16LE(o.family, 0);
  key.writeUInt16LE(o.port, 2);
  const value = Buffer.alloc(SockOwner.SIZE);
  value.writeBigUInt64LE(o.cgroupId, SockOwner.cgroup_id);
  value.writeUInt32LE(o.pid, SockOwner.pid);
  value.writeUInt32LE(o.pid, SockOwner.tid);
  value.write(o.comm, SockOwner.comm, 15, 'utf8');
  value.writeBigUInt64LE(o.cgroupV1Id ?? 0n, SockOwner.cgroup_v1_id);
  return { key, value };
}
