/**
 * Byte offsets of the wire structs in bpf/events.h. test/unit/layout.test.ts checks
 * every number here against the BTF of the compiled BPF object when it is built.
 */

export const EventKind = {
  FILE_OPEN: 1,
  PROCESS_EXEC: 2,
  TCP_STATE: 3,
  NET_CONNECT: 4,
  SSL_OP: 5,
  FUNCTION_CALL: 6,
} as const;

/** Probe names, indexed by enum probe_id; also the ledger's keys. */
export const PROBE_NAMES = ['file_open', 'process_exec', 'tcp_state', 'net_connect', 'ssl_op', 'function_call'] as const;
export type ProbeName = (typeof PROBE_NAMES)[number];

/** enum probe_counter, and the stride of the stats map. */
export const Counter = { SUBMITTED: 0, FILTERED: 1, RING_FULL: 2, SKIPPED: 3, TRUNCATED: 4 } as const;
export const COUNTER_STRIDE = 8;

export const Hdr = {
  ts_ns: 0, cgroup_id: 8, kind: 16, size: 20, pid: 24, tid: 28, comm: 32, commLen: 16, cgroup_v1_id: 48, SIZE: 56,
} as const;

export const FileOpen = {
  ret: 56, flags: 64, mode: 68, dfd: 72, path_len: 76, dir_len: 78, path_flags: 80, syscall: 82, SIZE: 88,
} as const;

export const ProcessExec = {
  ppid: 56, filename_len: 60, argv0_len: 62, filename_flags: 64, argv0_flags: 66, SIZE: 72,
} as const;

export const TcpState = {
  skaddr: 56, saddr: 64, daddr: 80, sport: 96, dport: 98, family: 100, oldstate: 102, newstate: 103,
  attribution: 104, SIZE: 112,
} as const;

export const NetConnect = {
  addr: 56, ret: 72, fd: 80, family: 84, port: 86, op: 88, hook: 89, SIZE: 96,
} as const;

export const SslOp = { ssl_ptr: 56, ret: 64, bytes: 72, op: 80, SIZE: 88 } as const;

export const FunctionCall = { ip: 56, cookie: 64, stack_len: 72, stack_flags: 74, SIZE: 80 } as const;

/** String flags (bpf/events.h STR_*, DIR_*). */
export const StrFlag = { TRUNCATED: 0x1, READ_FAILED: 0x2, DIR_RESOLVED: 0x4, DIR_INCOMPLETE: 0x8, PATH_CANONICAL: 0x10 } as const;

export const OpenSyscall: Record<number, string> = {
  1: 'sys_enter_openat', 2: 'sys_enter_openat2', 3: 'sys_enter_open', 4: 'sys_enter_creat',
  // io_uring requests (bpf/io_uring.h: io_uring_submit_req paired with io_uring_complete)
  5: 'io_uring:openat', 6: 'io_uring:openat2',
};

export const AF_INET = 2;
export const AF_INET6 = 10;
