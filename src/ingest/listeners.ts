import * as fs from 'node:fs';
import * as path from 'node:path';

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
}

/**
 * findListenerOwners maps the listening sockets that exist now to the processes holding them,
 * so tcp_state changes of connections accepted on sockets opened before the collector started
 * can be attributed (bpf/tcp_state.h). Bounded: at most maxProcesses processes are scanned.
 */
export function findListenerOwners(procRoot = '/proc', cgroup2Mount = '/sys/fs/cgroup/unified', maxProcesses = 4096): ListenerOwner[] {
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
      owners.push({ family: listener.family, port: listener.port, pid, comm: readComm(procRoot, pid), cgroupId: cgroupOf(procRoot, pid, cgroup2Mount) });
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

function cgroupOf(procRoot: string, pid: number, cgroup2Mount: string): bigint {
  try {
    const text = fs.readFileSync(path.join(procRoot, String(pid), 'cgroup'), 'utf8');
    const line = text.split('\n').find((l) => l.startsWith('0::'));
    if (line === undefined) return 0n;
    const rel = line.slice(3);
    if (rel.includes('..')) return 0n;
    return fs.statSync(path.join(cgroup2Mount, rel), { bigint: true }).ino;
  } catch {
    return 0n;
  }
}

/** encodeListenerOwner gives the key and value of bpf/tcp_state.h's listen_owners map. */
export function encodeListenerOwner(o: ListenerOwner): { key: Buffer; value: Buffer } {
  const key = Buffer.alloc(4);
  key.writeUInt16LE(o.family, 0);
  key.writeUInt16LE(o.port, 2);
  const value = Buffer.alloc(32);
  value.writeBigUInt64LE(o.cgroupId, 0);
  value.writeUInt32LE(o.pid, 8);
  value.writeUInt32LE(o.pid, 12);
  value.write(o.comm, 16, 15, 'utf8');
  return { key, value };
}
