import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { RtevError } from '../errors';

const CAP_SYS_ADMIN = 21n;
const CAP_PERFMON = 38n;
const CAP_BPF = 39n;
export const BTF_PATH = '/sys/kernel/btf/vmlinux';
const TRACEFS = '/sys/kernel/tracing';

/** effectiveCapabilities reads CapEff of this process. */
function effectiveCapabilities(): bigint {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const match = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return match ? BigInt('0x' + match[1]) : 0n;
}

function has(caps: bigint, cap: bigint): boolean {
  return (caps & (1n << cap)) !== 0n;
}

/** checkPrivileges: loading tracing programs needs CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN). */
export function checkPrivileges(): void {
  const caps = effectiveCapabilities();
  if (has(caps, CAP_SYS_ADMIN) || (has(caps, CAP_BPF) && has(caps, CAP_PERFMON))) return;
  throw new RtevError('PRIVILEGES', 'needs root or CAP_BPF and CAP_PERFMON', { hint: 'run with sudo' });
}

export function checkBtf(): void {
  if (fs.existsSync(BTF_PATH)) return;
  throw new RtevError('NO_BTF', `the kernel exposes no BTF at ${BTF_PATH}`, {
    hint: 'rtev needs a kernel >= 5.11 built with CONFIG_DEBUG_INFO_BTF=y',
  });
}

/** tracefsAccess tells whether `dir`/events can be read: 'ok', 'denied' (mounted, but not for us) or 'missing'. */
export function tracefsAccess(dir: string, access: (file: string) => void = (f) => fs.accessSync(f, fs.constants.R_OK | fs.constants.X_OK)): 'ok' | 'denied' | 'missing' {
  try {
    access(`${dir}/events`);
    return 'ok';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'EACCES' || code === 'EPERM' ? 'denied' : 'missing';
  }
}

/**
 * ensureTracefs mounts tracefs when it is missing (we are privileged by now). A tracefs that
 * is mounted but closed to this user (mode 0700, the default on recent kernels, for a non-root
 * user with CAP_BPF and CAP_PERFMON) is a privilege problem, not a missing mount.
 */
export function ensureTracefs(dir = TRACEFS, access?: (file: string) => void): void {
  const state = tracefsAccess(dir, access);
  if (state === 'ok') return;
  if (state === 'denied') {
    throw new RtevError('PRIVILEGES', `tracefs is mounted at ${dir} but this user cannot read it (root-only mode, e.g. 0700)`, {
      hint: `run with sudo, or open it to this user: mount -o remount,mode=0755 ${dir}`,
    });
  }
  try {
    execFileSync('mount', ['-t', 'tracefs', 'nodev', dir], { stdio: 'ignore', timeout: 5000 });
  } catch {
    // reported below
  }
  if (tracefsAccess(dir, access) === 'ok') return;
  throw new RtevError('NO_TRACEFS', `tracefs is not mounted at ${dir} and could not be mounted`, {
    hint: `mount -t tracefs nodev ${dir}`,
  });
}

/**
 * checkUprobePrivileges: attaching uprobes (perf_event_open on a file) needs CAP_SYS_ADMIN on
 * this kernel even with CAP_BPF + CAP_PERFMON (measured, docs/reliability.md). ssl_op and
 * function_call cannot work without it; net_connect falls back to its syscall tracepoints.
 * Returns the warnings to print.
 */
export function checkUprobePrivileges(probes: readonly string[]): string[] {
  if (has(effectiveCapabilities(), CAP_SYS_ADMIN)) return [];
  const needing = probes.filter((p) => p === 'ssl_op' || p === 'function_call');
  if (needing.length > 0) {
    throw new RtevError('PRIVILEGES', `probes ${needing.join(', ')} use uprobes, which need CAP_SYS_ADMIN`, {
      hint: 'run with sudo (or add CAP_SYS_ADMIN), or leave these probes out',
    });
  }
  return probes.includes('net_connect')
    ? ['net_connect: no CAP_SYS_ADMIN, so no libc uprobes; connects are recorded from the syscall tracepoints only']
    : [];
}

export function preflight(probes: readonly string[] = []): string[] {
  checkPrivileges();
  checkBtf();
  ensureTracefs();
  return checkUprobePrivileges(probes);
}
