/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The wire contract between the BPF programs and the TypeScript decoder
 * (src/decode/layout.ts mirrors every offset here; test/unit/layout.test.ts
 * checks them against the BTF of the compiled object).
 *
 * Every record starts with struct evt_hdr. Records are variable-length: strings
 * are appended after the fixed part and their lengths are stored in the fixed
 * part, so a 12-byte path does not cost 4 KiB of ring space.
 *
 * Numbers are explicit and never reused.
 */
#ifndef RTEV_EVENTS_H
#define RTEV_EVENTS_H

enum evt_kind {
	EVT_FILE_OPEN = 1,
	EVT_PROCESS_EXEC = 2,
	EVT_TCP_STATE = 3,
	EVT_NET_CONNECT = 4,
	EVT_SSL_OP = 5,
	EVT_FUNCTION_CALL = 6,
};

/* Probe indices into the stats map; one per record kind. */
enum probe_id {
	PROBE_FILE_OPEN = 0,
	PROBE_PROCESS_EXEC = 1,
	PROBE_TCP_STATE = 2,
	PROBE_NET_CONNECT = 3,
	PROBE_SSL_OP = 4,
	PROBE_FUNCTION_CALL = 5,
	PROBE_COUNT = 6,
};

/* Counters kept per probe in the per-CPU stats map at [probe * COUNTER_COUNT + counter]. */
enum probe_counter {
	COUNTER_SUBMITTED = 0, /* accepted by the ring buffer */
	COUNTER_FILTERED = 1,  /* dropped by the pid/subtree/cgroup filters */
	COUNTER_RING_FULL = 2, /* lost: ring buffer full */
	COUNTER_SKIPPED = 3,   /* not recorded on purpose (failed open, unattributable socket) */
	COUNTER_TRUNCATED = 4, /* recorded with a string cut at the capture limit */
	COUNTER_COUNT = 8,
};

#define RTEV_COMM_LEN 16
#define RTEV_PATH_MAX 4096
/* argv[0] is captured up to this many bytes (incl. NUL). */
#define RTEV_ARG_MAX 4096
/* A resolved directory prefix (cwd or dfd) is at most this long. */
#define RTEV_DIR_MAX 4096
#define RTEV_STACK_MAX 32

/* String flags (evt_file_open.path_flags and friends). */
#define STR_TRUNCATED 0x1   /* the string hit the capture limit */
#define STR_READ_FAILED 0x2 /* the kernel could not read the string */
#define DIR_RESOLVED 0x4    /* dir_len bytes of directory prefix precede the path */
#define DIR_INCOMPLETE 0x8  /* the directory walk hit its depth limit */
#define PATH_CANONICAL 0x10 /* the path is the opened file's own, walked from its dentry */

struct evt_hdr {
	__u64 ts_ns;     /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 cgroup_id; /* cgroup v2 id of the task */
	__u32 kind;      /* enum evt_kind */
	__u32 size;      /* total record size in bytes, header included */
	__u32 pid;       /* tgid */
	__u32 tid;
	char comm[RTEV_COMM_LEN];
	/* v1 memory-hierarchy cgroup id (kernfs inode), set only when the task is in the
	 * cgroup v2 root: on hybrid hosts containers may exist only in the v1 hierarchies */
	__u64 cgroup_v1_id;
}; /* 56 bytes */

/* Followed by path_len bytes of path (no NUL): with PATH_CANONICAL the opened file's
 * path walked from its dentry, else the path as passed, then, when DIR_RESOLVED,
 * dir_len bytes of the directory it is relative to (no NUL). */
struct evt_file_open {
	struct evt_hdr hdr;
	__s64 ret; /* fd, or -errno when failures are recorded */
	__u32 flags;
	__u32 mode;
	__s32 dfd;
	__u16 path_len;
	__u16 dir_len;
	__u16 path_flags;
	__u8 syscall; /* enum open_syscall */
	__u8 _pad[5];
}; /* 88 bytes */

enum open_syscall {
	OPEN_SYSCALL_OPENAT = 1,
	OPEN_SYSCALL_OPENAT2 = 2,
	OPEN_SYSCALL_OPEN = 3,
	OPEN_SYSCALL_CREAT = 4,
	OPEN_SYSCALL_IO_URING_OPENAT = 5,  /* IORING_OP_OPENAT (bpf/io_uring.h) */
	OPEN_SYSCALL_IO_URING_OPENAT2 = 6, /* IORING_OP_OPENAT2 */
};

/* Followed by filename_len bytes of filename then argv0_len bytes of argv[0]. */
struct evt_process_exec {
	struct evt_hdr hdr;
	__u32 ppid;
	__u16 filename_len;
	__u16 argv0_len;
	__u16 filename_flags;
	__u16 argv0_flags;
	__u32 _pad;
}; /* 72 bytes */

struct evt_tcp_state {
	struct evt_hdr hdr;
	__u64 skaddr;
	__u8 saddr[16]; /* IPv4 in the first 4 bytes when family is AF_INET */
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 family; /* AF_INET = 2, AF_INET6 = 10 */
	__u8 oldstate;
	__u8 newstate;
	__u8 attribution; /* enum tcp_attribution */
	__u8 _pad[7];
}; /* 112 bytes */

enum tcp_attribution {
	TCP_OWNER_CURRENT = 1,  /* the task making the change in process context */
	TCP_OWNER_SOCKET = 2,   /* the task remembered for this socket */
	TCP_OWNER_LISTENER = 3, /* the task that owns the listening socket on this port */
};

struct evt_net_connect {
	struct evt_hdr hdr;
	__u8 addr[16];
	__s64 ret; /* connect: 0 or -errno; accept: new fd or -errno */
	__u32 fd;  /* connect: the socket; accept: the listening socket */
	__u16 family;
	__u16 port;
	__u8 op;   /* enum net_op */
	__u8 hook; /* enum net_hook: which probe saw it */
	__u8 _pad[6];
}; /* 96 bytes */

enum net_op {
	NET_OP_CONNECT = 1,
	NET_OP_ACCEPT = 2,
	NET_OP_ACCEPT4 = 3,
};

enum net_hook {
	NET_HOOK_LIBC = 1,     /* libc uprobe */
	NET_HOOK_SYSCALL = 2,  /* syscall tracepoint, for callers that bypass libc */
	NET_HOOK_IO_URING = 3, /* io_uring request (bpf/io_uring.h) */
};

struct evt_ssl_op {
	struct evt_hdr hdr;
	__u64 ssl_ptr;
	__s64 ret;   /* return value of the call */
	__u64 bytes; /* bytes actually transferred */
	__u8 op;     /* enum ssl_fn */
	__u8 _pad[7];
}; /* 88 bytes */

enum ssl_fn {
	SSL_FN_READ = 1,
	SSL_FN_WRITE = 2,
	SSL_FN_READ_EX = 3,
	SSL_FN_WRITE_EX = 4,
	/* GnuTLS (bpf/ssl_op.h): ssize_t returns, ssl_ptr = the gnutls_session_t */
	SSL_FN_GNUTLS_RECV = 5,
	SSL_FN_GNUTLS_SEND = 6,
	SSL_FN_GNUTLS_RECV_SEQ = 7,
	SSL_FN_GNUTLS_SEND2 = 8,
	/* Go crypto/tls (bpf/ssl_op.h, entry-style probes at the RET instructions): ssl_ptr = the *tls.Conn */
	SSL_FN_GO_READ = 9,
	SSL_FN_GO_WRITE = 10,
	/* GnuTLS, like 5-8: length-hiding sends and zero-copy receives (neither calls 5-8) */
	SSL_FN_GNUTLS_SEND_RANGE = 11,
	SSL_FN_GNUTLS_RECV_PACKET = 12,
};

/* Followed by stack_len u64 return addresses, innermost first. */
struct evt_function_call {
	struct evt_hdr hdr;
	__u64 ip;     /* the probed function's runtime address */
	__u64 cookie; /* the target id given at attach time */
	__u16 stack_len;
	__u16 stack_flags; /* STACK_* */
	__u32 _pad;
}; /* 80 bytes */

#define STACK_TRUNCATED 0x1 /* the walk stopped at RTEV_STACK_MAX frames */
#define STACK_BROKEN 0x2    /* the walk stopped at an unreadable frame */

#endif /* RTEV_EVENTS_H */
