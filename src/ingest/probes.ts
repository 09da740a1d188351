import { PROBE_NAMES, type ProbeName } from '../decode/layout';
import { UsageError } from '../errors';
import type { UprobeMultiKind } from './native';

/**
 * How the uprobes are attached: `session` (kernel >= 6.13) runs one libc/OpenSSL program at entry
 * and at return of each call, and attaches every uprobe program with one uprobe_multi link per file;
 * `classic` (older kernels) attaches a perf-event uprobe per function (and a uretprobe where needed).
 */
export type UprobeMode = 'session' | 'classic';

/** A probe family: the BPF programs it needs and the tracepoints they attach to. */
export interface ProbeSpec {
  name: ProbeName;
  description: string;
  /** programs attached by section name; `optional` ones may be missing from the kernel;
   * `uprobe` ones are loaded here but attached per library by src/ingest/uprobes, and those
   * with an `uprobeMode` only in that mode */
  programs: {
    name: string; tracepoint?: string; optional?: boolean; uprobe?: boolean; uprobeMode?: UprobeMode;
    /** in session mode the program is loaded for `uprobe_multi` links of this kind */
    multiAttach?: UprobeMultiKind;
    /** attached to `tracepoint` explicitly, not by its section name: one program for several
     * tracepoints (the file_open exit program: verified once, attached four times) */
    explicit?: true;
    /** a BPF iterator: loaded here, run (not attached) by its user */
    iterator?: true;
    /** attached as a unit of its own (e.g. the io_uring programs): loaded only when every tracepoint of
     * the group exists, and a group that cannot be loaded or attached disables only itself, with a
     * warning saying what is not observed */
    group?: ProbeGroup;
  }[];
}

/**
 * A part of a probe that a kernel may lack; `unobserved` says what is then not seen. When the group
 * cannot be loaded or attached, the class goes into the signed ledger of every chunk of the run
 * (`ledger.probes.<probe>.not_observed`, docs/format.md) as `{class, sources, reason}`.
 */
export interface ProbeGroup {
  name: string;
  /** the ledger's name of the class of events (e.g. `io_uring`) */
  class: string;
  /** the record `src` values the group would give */
  sources: string[];
  unobserved: string;
}

/** io_uring requests (bpf/io_uring.h): BTF-typed tracepoints, Linux >= 6.0 (io_uring_submit_req) */
export const IO_URING_OPENS: ProbeGroup = {
  name: 'io_uring opens', class: 'io_uring', sources: ['io_uring:openat', 'io_uring:openat2'],
  unobserved: 'file opens submitted through io_uring (IORING_OP_OPENAT, IORING_OP_OPENAT2) are not observed',
};
export const IO_URING_NET: ProbeGroup = {
  name: 'io_uring connects', class: 'io_uring', sources: ['io_uring:connect', 'io_uring:accept'],
  unobserved: 'connects and accepts submitted through io_uring (IORING_OP_CONNECT, IORING_OP_ACCEPT) are not observed',
};

/** Programs every run needs whatever probes are selected (subtree filter bookkeeping). */
export const SUPPORT_PROGRAMS = [
  { name: 'handle_fork', tracepoint: undefined },
  { name: 'handle_exit', tracepoint: 'sched/sched_process_exit' },
];

export const KERNEL_PROBES: ProbeSpec[] = [
  {
    name: 'file_open',
    description: 'successful opens from openat, openat2, open and creat, and from io_uring',
    programs: [
      // one program for the four syscalls, at their exit only: the arguments come from the saved
      // registers, no enter program (bpf/file_open.h handle_openat_exit; docs/benchmarks.md,
      // "BPF cost per open", session 4: a filtered-out open runs one program instead of two)
      { name: 'handle_openat_exit', tracepoint: 'syscalls/sys_exit_openat' },
      { name: 'handle_openat_exit', tracepoint: 'syscalls/sys_exit_openat2', optional: true, explicit: true },
      { name: 'handle_openat_exit', tracepoint: 'syscalls/sys_exit_open', optional: true, explicit: true },
      { name: 'handle_openat_exit', tracepoint: 'syscalls/sys_exit_creat', optional: true, explicit: true },
      { name: 'handle_iou_open_submit', tracepoint: 'io_uring/io_uring_submit_req', group: IO_URING_OPENS },
      { name: 'handle_iou_open_failed', tracepoint: 'io_uring/io_uring_req_failed', group: IO_URING_OPENS },
      { name: 'handle_iou_open_complete', tracepoint: 'io_uring/io_uring_complete', group: IO_URING_OPENS },
    ],
  },
  {
    name: 'process_exec',
    description: 'program executions from sched_process_exec',
    programs: [{ name: 'handle_exec', tracepoint: 'sched/sched_process_exec' }],
  },
  {
    name: 'tcp_state',
    description: 'TCP state changes from inet_sock_set_state, attributed to the socket owner',
    programs: [
      { name: 'handle_inet_sock_set_state', tracepoint: 'sock/inet_sock_set_state' },
      // run once at start by BpfSession.seedSocketOwners (src/ingest/session.ts): owners of the TCP sockets that exist already
      { name: 'seed_socket_owners', iterator: true },
    ],
  },
  {
    name: 'net_connect',
    description: 'connect/accept/accept4 from libc uprobes, from syscall tracepoints for callers that bypass libc, and from io_uring',
    programs: [
      { name: 'handle_connect_enter', tracepoint: 'syscalls/sys_enter_connect' },
      { name: 'handle_connect_exit', tracepoint: 'syscalls/sys_exit_connect' },
      { name: 'handle_accept_enter', tracepoint: 'syscalls/sys_enter_accept', optional: true },
      { name: 'handle_accept_exit', tracepoint: 'syscalls/sys_exit_accept', optional: true },
      { name: 'handle_accept4_enter', tracepoint: 'syscalls/sys_enter_accept4', optional: true },
      { name: 'handle_accept4_exit', tracepoint: 'syscalls/sys_exit_accept4', optional: true },
      { name: 'handle_connect_done', tracepoint: 'sock/inet_sock_set_state', optional: true },
      { name: 'handle_iou_net_submit', tracepoint: 'io_uring/io_uring_submit_req', group: IO_URING_NET },
      { name: 'handle_iou_net_complete', tracepoint: 'io_uring/io_uring_complete', group: IO_URING_NET },
      { name: 'rtev_libc_session', uprobe: true, uprobeMode: 'session', multiAttach: 'uprobe_session' },
      { name: 'rtev_libc_connect', uprobe: true, uprobeMode: 'classic' },
      { name: 'rtev_libc_accept', uprobe: true, uprobeMode: 'classic' },
      { name: 'rtev_libc_accept4', uprobe: true, uprobeMode: 'classic' },
      { name: 'rtev_libc_net_ret', uprobe: true, uprobeMode: 'classic' },
    ],
  },
  {
    name: 'ssl_op',
    description: 'TLS byte counts from uprobes (no plaintext): OpenSSL SSL_read/SSL_write(_ex), GnuTLS gnutls_record_recv/send, Go crypto/tls (*Conn).Read/Write',
    programs: [
      { name: 'rtev_ssl_session', uprobe: true, uprobeMode: 'session', multiAttach: 'uprobe_session' },
      { name: 'rtev_ssl_read', uprobe: true, uprobeMode: 'classic' },
      { name: 'rtev_ssl_write', uprobe: true, uprobeMode: 'classic' },
      { name: 'rtev_ssl_read_ex', uprobe: true, uprobeMode: 'classic' },
      { name: 'rtev_ssl_write_ex', uprobe: true, uprobeMode: 'classic' },
      { name: 'rtev_tls_enter', uprobe: true, uprobeMode: 'classic' },
      { name: 'rtev_go_tls_multi', uprobe: true, uprobeMode: 'session', multiAttach: 'uprobe_multi' },
      { name: 'rtev_go_tls', uprobe: true, uprobeMode: 'classic' },
      { name: 'rtev_ssl_ret', uprobe: true, uprobeMode: 'classic' },
    ],
  },
  {
    name: 'function_call',
    description: 'entry of the functions chosen with --function/--functions (uprobe, with the user stack)',
    // attached per target by src/ingest/function-probes.ts
    programs: [{ name: 'handle_function_entry', uprobe: true, multiAttach: 'uprobe_multi' }],
  },
];

export const DEFAULT_PROBES: ProbeName[] = ['file_open', 'process_exec', 'tcp_state'];

/** selectProbes validates a --probes list; function targets imply function_call, which needs them. */
export function selectProbes(list: string | undefined, haveFunctions: boolean): ProbeName[] {
  const chosen = parseProbeList(list);
  if (haveFunctions && !chosen.includes('function_call')) chosen.push('function_call');
  if (!haveFunctions && chosen.includes('function_call')) {
    throw new UsageError('probe function_call needs targets', "give --function BINARY:SYMBOL (e.g. 'libssl.so.3:SSL_read') or --functions FILE");
  }
  return PROBE_NAMES.filter((p) => chosen.includes(p));
}

function parseProbeList(list: string | undefined): ProbeName[] {
  if (list === undefined) return [...DEFAULT_PROBES];
  const available = KERNEL_PROBES.map((p) => p.name);
  const names = list.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  for (const name of names) {
    if (!(available as string[]).includes(name)) {
      throw new UsageError(`unknown probe '${name}'`, `valid probes: ${available.join(', ')}`);
    }
  }
  if (names.length === 0) throw new UsageError('--probes is empty', `valid probes: ${available.join(', ')}`);
  return PROBE_NAMES.filter((p) => names.includes(p));
}
