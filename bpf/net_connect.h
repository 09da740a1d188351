/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * net_connect: connect, accept and accept4, from two hooks that never report
 * the same call twice (docs/probes-network.md):
 *
 *  - libc uprobes (NET_HOOK_LIBC): the entry program marks the thread in
 *    net_libc_calls; the syscall tracepoints see the mark and leave the call to
 *    the libc path, only copying the syscall's return value (-errno) into the
 *    mark, because libc returns -1 and leaves the errno in thread-local storage;
 *    the return program emits the record and clears the mark.
 *  - syscall tracepoints (NET_HOOK_SYSCALL): every call not made through a
 *    probed libc (static binaries, Go, raw syscall(2), libcs not attached yet).
 *
 * A mark whose syscall already completed, seen again at a syscall entry, is
 * stale (its uretprobe never ran, e.g. a thread cancelled inside accept): the
 * new call goes to the syscall path.
 *
 * The address is read at return: for connect, from the caller's sockaddr; for
 * accept, from the peer address the kernel wrote (or, when the caller passed
 * NULL, from the accepted socket). Only AF_INET/AF_INET6 give records; other
 * families (AF_UNIX, AF_NETLINK, ...) count as COUNTER_SKIPPED.
 */
#include "common.h"
#include "record.h"

struct net_call {
	__u64 addr;    /* user sockaddr pointer */
	__u64 sk;      /* connect: the struct sock *, from its CLOSE -> SYN_SENT transition */
	__s64 sys_ret; /* the syscall's return value, when sys_done */
	__u32 fd;
	__u8 op;       /* enum net_op */
	__u8 sys_seen; /* the syscall entered under this libc call */
	__u8 sys_done; /* the syscall returned under this libc call */
	__u8 _pad;
};

/* Calls in progress per thread, in task-local storage (cheaper than an LRU hash keyed by
 * pid_tgid, and freed with the thread); op == 0 marks an empty slot. */
/* thread -> call in progress through libc */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct net_call);
} net_libc_calls SEC(".maps");

/* thread -> call in progress seen only by the syscall tracepoints */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct net_call);
} net_sys_calls SEC(".maps");

#define thread_call(map, flags) ((struct net_call *)bpf_task_storage_get(map, bpf_get_current_task_btf(), 0, flags))

#define EINPROGRESS 115
#define TCP_SYN_SENT_ 2
#define TCP_ESTABLISHED_ 1
#define TCP_CLOSE_ 7

/* Non-blocking TCP connects that returned EINPROGRESS: the record waits here,
 * keyed by struct sock *, until the handshake ends (inet_sock_set_state).
 * A plain hash, not an LRU: every entry is deleted when its socket leaves
 * SYN_SENT, which every socket does, and an insert into a full map fails,
 * which emits the record at once; an LRU's update cost ~0.2 us more per connect. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct evt_net_connect);
} net_pending SEC(".maps");

static __always_inline void net_emit(struct net_call *c, __s64 ret, __u8 hook)
{
	struct evt_net_connect e = {};
	bool have = false;

	/* a failed accept has no peer; a failed connect still names its target */
	if (c->op == NET_OP_CONNECT || ret >= 0) {
		have = net_addr_from_user(&e, c->addr);
		if (!have && c->op != NET_OP_CONNECT)
			have = peer_from_socket(&e, ret);
	}
	if (!have || (e.family != AF_INET && e.family != AF_INET6)) {
		count(PROBE_NET_CONNECT, COUNTER_SKIPPED);
		return;
	}
	fill_header(&e.hdr, EVT_NET_CONNECT);
	e.hdr.size = sizeof(e);
	e.ret = ret;
	e.fd = c->fd;
	e.op = c->op;
	e.hook = hook;
	/* A TCP handshake in progress: report its outcome, not "in progress". c->sk is set only
	 * for TCP (by the SYN_SENT transition below), so no descriptor lookup is needed here. */
	if (c->op == NET_OP_CONNECT && ret == -EINPROGRESS && c->sk) {
		struct sock *sk = (struct sock *)c->sk;
		__u64 key = c->sk;
		/* on loopback the handshake often ends before connect returns */
		if (BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_SYN_SENT_ &&
		    bpf_map_update_elem(&net_pending, &key, &e, BPF_ANY) == 0) {
			/* still in SYN_SENT after the insert: the state change will emit */
			if (BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_SYN_SENT_)
				return;
			/* it ended meanwhile: whoever deletes the entry emits it */
			if (bpf_map_delete_elem(&net_pending, &key) != 0)
				return;
		}
		__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);
		if (state == TCP_ESTABLISHED_) {
			e.ret = 0;
		} else if (state == TCP_CLOSE_) {
			int err = BPF_CORE_READ(sk, sk_err);
			if (err > 0)
				e.ret = -err;
		}
	}
	emit_rare(&e, sizeof(e), PROBE_NET_CONNECT);
}

/* The end of a non-blocking connect's handshake: ESTABLISHED gives success,
 * CLOSE gives the socket error (ECONNREFUSED, ETIMEDOUT, ...), or EINPROGRESS
 * when the caller closed the socket first. The record keeps the header of the
 * connect call (time, task). */
SEC("tp/sock/inet_sock_set_state")
int handle_connect_done(struct trace_event_raw_inet_sock_set_state *ctx)
{
	__u64 key = (__u64)ctx->skaddr;
	if (ctx->newstate == TCP_SYN_SENT_) {
		/* a new connect on this socket: an entry left from an earlier one is stale */
		bpf_map_delete_elem(&net_pending, &key);
		/* connect(2) makes this transition in the caller's context: note the socket in the
		 * caller's mark, where the connect's return finds it if the handshake is still on */
		struct net_call *c = thread_call(&net_libc_calls, 0);
		if (!c || c->op != NET_OP_CONNECT)
			c = thread_call(&net_sys_calls, 0);
		if (c && c->op == NET_OP_CONNECT)
			c->sk = key;
		return 0;
	}
	if (ctx->oldstate != TCP_SYN_SENT_)
		return 0;
	struct evt_net_connect *pending = bpf_map_lookup_elem(&net_pending, &key);
	if (!pending)
		return 0;
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	struct evt_net_connect *e = (struct evt_net_connect *)s->rec;
	__builtin_memcpy(e, pending, sizeof(*e));
	bpf_map_delete_elem(&net_pending, &key);
	if (ctx->newstate == TCP_ESTABLISHED_) {
		e->ret = 0;
	} else {
		struct sock *sk = (struct sock *)ctx->skaddr;
		int err = BPF_CORE_READ(sk, sk_err);
		e->ret = err > 0 ? -err : -EINPROGRESS;
	}
	emit_rare(e, sizeof(*e), PROBE_NET_CONNECT);
	return 0;
}

/* --- libc uprobes ---------------------------------------------------------- */

/* libc_enter marks the thread; false when the call is not followed (filtered out, no storage). */
static __always_inline bool libc_enter(__u8 op, __u64 fd, __u64 addr)
{
	if (current_filtered_out()) {
		count(PROBE_NET_CONNECT, COUNTER_FILTERED);
		return false;
	}
	struct net_call *c = thread_call(&net_libc_calls, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!c)
		return false;
	*c = (struct net_call){ .addr = addr, .fd = (__u32)fd, .op = op };
	return true;
}

static __always_inline void libc_exit(long ret)
{
	struct net_call *stashed = thread_call(&net_libc_calls, 0);
	if (!stashed || !stashed->op)
		return;
	struct net_call c = *stashed;
	stashed->op = 0;
	/* libc gives -1 and an errno we cannot reach: take the syscall's -errno */
	__s64 r = c.sys_done ? c.sys_ret : ret;
	net_emit(&c, r, NET_HOOK_LIBC);
}

/* uprobe session (kernel >= 6.13, see bpf/ssl_op.h): one program for the three functions, with
 * the enum net_op as each offset's attach cookie; a filtered call skips the return run. The
 * mark stays in task storage because the syscall tracepoints read it. */
SEC("uprobe")
int rtev_libc_session(struct pt_regs *ctx)
{
	if (!bpf_session_is_return())
		return libc_enter(bpf_get_attach_cookie(ctx), PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx)) ? 0 : 1;
	libc_exit((int)PT_REGS_RC(ctx)); /* connect and accept return an int: rax's upper half is not theirs */
	return 0;
}

/* perf-event uprobes (older kernels): an entry program per function, one return program */
SEC("uprobe")
int BPF_KPROBE(rtev_libc_connect, int fd, void *addr)
{
	libc_enter(NET_OP_CONNECT, fd, (__u64)addr);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(rtev_libc_accept, int fd, void *addr)
{
	libc_enter(NET_OP_ACCEPT, fd, (__u64)addr);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(rtev_libc_accept4, int fd, void *addr)
{
	libc_enter(NET_OP_ACCEPT4, fd, (__u64)addr);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(rtev_libc_net_ret, long ret)
{
	libc_exit((int)ret);
	return 0;
}

/* --- syscall tracepoints --------------------------------------------------- */

static __always_inline void sys_enter(__u8 op, __u64 fd, __u64 addr)
{
	struct net_call *libc = thread_call(&net_libc_calls, 0);
	if (libc && libc->op) {
		if (!libc->sys_seen) {
			libc->sys_seen = 1; /* the libc path reports this call */
			return;
		}
		libc->op = 0; /* stale mark */
	}
	if (current_filtered_out()) {
		count(PROBE_NET_CONNECT, COUNTER_FILTERED);
		return;
	}
	struct net_call *c = thread_call(&net_sys_calls, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!c)
		return;
	*c = (struct net_call){ .addr = addr, .fd = (__u32)fd, .op = op };
}

static __always_inline void sys_exit(long ret)
{
	struct net_call *libc = thread_call(&net_libc_calls, 0);
	if (libc && libc->op && libc->sys_seen && !libc->sys_done) {
		libc->sys_ret = ret;
		libc->sys_done = 1;
		return;
	}
	struct net_call *stashed = thread_call(&net_sys_calls, 0);
	if (!stashed || !stashed->op)
		return;
	struct net_call c = *stashed;
	stashed->op = 0;
	net_emit(&c, ret, NET_HOOK_SYSCALL);
}

SEC("tp/syscalls/sys_enter_connect")
int handle_connect_enter(struct trace_event_raw_sys_enter *ctx)
{
	sys_enter(NET_OP_CONNECT, ctx->args[0], ctx->args[1]);
	return 0;
}

SEC("tp/syscalls/sys_exit_connect")
int handle_connect_exit(struct trace_event_raw_sys_exit *ctx)
{
	sys_exit(ctx->ret);
	return 0;
}

SEC("tp/syscalls/sys_enter_accept")
int handle_accept_enter(struct trace_event_raw_sys_enter *ctx)
{
	sys_enter(NET_OP_ACCEPT, ctx->args[0], ctx->args[1]);
	return 0;
}

SEC("tp/syscalls/sys_exit_accept")
int handle_accept_exit(struct trace_event_raw_sys_exit *ctx)
{
	sys_exit(ctx->ret);
	return 0;
}

SEC("tp/syscalls/sys_enter_accept4")
int handle_accept4_enter(struct trace_event_raw_sys_enter *ctx)
{
	sys_enter(NET_OP_ACCEPT4, ctx->args[0], ctx->args[1]);
	return 0;
}

SEC("tp/syscalls/sys_exit_accept4")
int handle_accept4_exit(struct trace_event_raw_sys_exit *ctx)
{
	sys_exit(ctx->ret);
	return 0;
}
