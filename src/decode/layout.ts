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
  ts_ns: 0, cgroup_id: 8, kind: 16, size: 20, pid: 24, tid: 28, comm: 32, commLen: 16, SIZE: 48,
} as const;

export const FileOpen = {
  ret: 48, flags: 56, mode: 60, dfd: 64, path_len: 68, dir_len: 70, path_flags: 72, syscall: 74, SIZE: 80,
} as const;

export const ProcessExec = {
  ppid: 48, filename_len: 52, argv0_len: 54, filename_flags: 56, argv0_flags: 58, SIZE: 64,
} as const;

export const TcpState = {
  skaddr: 48, saddr: 56, daddr: 72, sport: 88, dport: 90, family: 92, oldstate: 94, newstate: 95,
  attribution: 96, SIZE: 104,
} as const;

export const NetConnect = {
  addr: 48, ret: 64, fd: 72, family: 76, port: 78, op: 80, hook: 81, SIZE: 88,
} as const;

export const SslOp = { ssl_ptr: 48, ret: 56, bytes: 64, op: 72, SIZE: 80 } as const;

export const FunctionCall = { ip: 48, cookie: 56, stack_len: 64, stack_flags: 66, SIZE: 72 } as const;

/** String flags (bpf/events.h STR_*, DIR_*). */
export const StrFlag = { TRUNCATED: 0x1, READ_FAILED: 0x2, DIR_RESOLVED: 0x4, DIR_INCOMPLETE: 0x8 } as const;

export const OpenSyscall: Record<number, string> = {
  1: 'sys_enter_openat', 2: 'sys_enter_openat2', 3: 'sys_enter_open', 4: 'sys_enter_creat',
};

export const AF_INET = 2;
export const AF_INET6 = 10;
