/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tcp_state from inet_sock_set_state. Many transitions run in softirq, where
 * the current task is whoever was interrupted (on loopback: the peer). So a
 * record is attributed to the task that owns the socket:
 *  - transitions that only a system call makes (connect, listen, close and
 *    shutdown) run in the context of the task acting on the socket: that task
 *    is recorded and remembered as the socket's owner;
 *  - any other transition gets the owner remembered for the socket, or for a
 *    passive child, the owner of the listening socket on the same local port;
 *  - otherwise the change is not recorded and COUNTER_SKIPPED counts it.
 * (The preempt count that would tell softirq from process context is not
 * reachable here: __preempt_count has no kallsyms entry on this kernel.)
 */
#include "common.h"

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_FIN_WAIT1 4
#define TCP_CLOSE 7
#define TCP_CLOSE_WAIT 8
#define TCP_LAST_ACK 9
#define TCP_LISTEN 10

/* also written by user space for listeners that predate the collector (src/ingest/listeners.ts) */
struct sock_owner {
	__u64 cgroup_id;
	__u32 pid;
	__u32 tid;
	char comm[RTEV_COMM_LEN];
	__u64 cgroup_v1_id; /* as in struct evt_hdr */
};

struct listen_key {
	__u16 family;
	__u16 port;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* struct sock * */
	__type(value, struct sock_owner);
} sock_owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct listen_key);
	__type(value, struct sock_owner);
} listen_owners SEC(".maps");

/* made_by_syscall: transitions that only happen inside a system call on the
 * socket (tcp_v4_connect, inet_csk_listen_start, tcp_close, tcp_shutdown). */
static __always_inline bool made_by_syscall(int oldstate, int newstate)
{
	return (oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT) ||
	       (oldstate == TCP_CLOSE && newstate == TCP_LISTEN) || (oldstate == TCP_LISTEN && newstate == TCP_CLOSE) ||
	       (oldstate == TCP_ESTABLISHED && newstate == TCP_FIN_WAIT1) ||
	       (oldstate == TCP_CLOSE_WAIT && newstate == TCP_LAST_ACK);
}

SEC("tp/sock/inet_sock_set_state")
int handle_inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *raw)
{
	/* one copy of the arguments: clang otherwise derives field addresses from a
	 * modified ctx pointer, which the verifier rejects */
	struct trace_event_raw_inet_sock_set_state args;
	struct trace_event_raw_inet_sock_set_state *ctx = &args;
	if (bpf_probe_read_kernel(&args, sizeof(args), raw))
		return 0;
	if (ctx->protocol != IPPROTO_TCP)
		return 0;

	__u64 sk = (__u64)ctx->skaddr;
	__u16 family = ctx->family;
	struct listen_key lkey = { .family = family, .port = ctx->sport };
	struct sock_owner owner = {};
	__u8 attribution;
	__u64 id = bpf_get_current_pid_tgid();

	if (made_by_syscall(ctx->oldstate, ctx->newstate) && (id >> 32) != 0) {
		owner.pid = id >> 32;
		owner.tid = (__u32)id;
		task_cgroup_ids(walk_task(), &owner.cgroup_id, &owner.cgroup_v1_id);
		bpf_get_current_comm(owner.comm, sizeof(owner.comm));
		attribution = TCP_OWNER_CURRENT;
		bpf_map_update_elem(&sock_owners, &sk, &owner, BPF_ANY);
	} else {
		struct sock_owner *known = bpf_map_lookup_elem(&sock_owners, &sk);
		if (known) {
			owner = *known;
			attribution = TCP_OWNER_SOCKET;
		} else {
			known = bpf_map_lookup_elem(&listen_owners, &lkey);
			if (!known) {
				count(PROBE_TCP_STATE, COUNTER_SKIPPED);
				return 0;
			}
			owner = *known;
			attribution = TCP_OWNER_LISTENER;
			bpf_map_update_elem(&sock_owners, &sk, &owner, BPF_ANY);
		}
	}

	/* bookkeeping happens before filtering so filters never lose an owner */
	if (ctx->newstate == TCP_LISTEN)
		bpf_map_update_elem(&listen_owners, &lkey, &owner, BPF_ANY);
	if (ctx->newstate == TCP_CLOSE) {
		bpf_map_delete_elem(&sock_owners, &sk);
		if (ctx->oldstate == TCP_LISTEN)
			bpf_map_delete_elem(&listen_owners, &lkey);
	}

	if (filtered_out(owner.pid, cfg.filter_cgroups == 2 ? cgroup_filter_key(owner.cgroup_id, owner.cgroup_v1_id)
							    : owner.cgroup_id)) {
		count(PROBE_TCP_STATE, COUNTER_FILTERED);
		return 0;
	}

	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	struct evt_tcp_state *e = (struct evt_tcp_state *)s->rec;
	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->hdr.cgroup_id = owner.cgroup_id;
	e->hdr.cgroup_v1_id = owner.cgroup_v1_id;
	e->hdr.kind = EVT_TCP_STATE;
	e->hdr.size = sizeof(*e);
	e->hdr.pid = owner.pid;
	e->hdr.tid = owner.tid;
	__builtin_memcpy(e->hdr.comm, owner.comm, sizeof(e->hdr.comm));
	e->skaddr = sk;
	e->sport = ctx->sport;
	e->dport = ctx->dport;
	e->family = family;
	e->oldstate = ctx->oldstate;
	e->newstate = ctx->newstate;
	e->attribution = attribution;
	if (family == AF_INET6) {
		bpf_probe_read_kernel(e->saddr, 16, ctx->saddr_v6);
		bpf_probe_read_kernel(e->daddr, 16, ctx->daddr_v6);
	} else {
		__builtin_memset(e->saddr, 0, 16);
		__builtin_memset(e->daddr, 0, 16);
		bpf_probe_read_kernel(e->saddr, 4, ctx->saddr);
		bpf_probe_read_kernel(e->daddr, 4, ctx->daddr);
	}
	emit_rare(s->rec, sizeof(*e), PROBE_TCP_STATE);
	return 0;
}

/*
 * seed_socket_owners runs once at start (src/cli/commands/collect.ts), over every open file of
 * every task: each TCP socket that exists already gets its holder as owner, so the transitions
 * the kernel makes for it later in softirq (the peer closing: ESTABLISHED -> CLOSE_WAIT; timers)
 * are attributed like those of sockets created under the collector. BPF_NOEXIST: an owner set
 * meanwhile by a system call transition is fresher; a socket shared after fork keeps the first
 * holder seen. Listening sockets are seeded from /proc (listen_owners is keyed by port).
 */
SEC("iter/task_file")
int seed_socket_owners(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	if (!task || !file || task->tgid == cfg.self_tgid)
		return 0;
	struct socket *sock = bpf_sock_from_file(file);
	if (!sock)
		return 0;
	struct sock *sk = sock->sk;
	if (!sk || sk->sk_protocol != IPPROTO_TCP)
		return 0;
	__u16 family = sk->__sk_common.skc_family;
	__u8 state = sk->__sk_common.skc_state;
	if ((family != AF_INET && family != AF_INET6) || state == TCP_CLOSE || state == TCP_LISTEN)
		return 0;
	struct sock_owner owner = {};
	owner.pid = task->tgid;
	owner.tid = task->pid;
	task_cgroup_ids(task, &owner.cgroup_id, &owner.cgroup_v1_id);
	for (int i = 0; i < RTEV_COMM_LEN; i++)
		owner.comm[i] = task->comm[i];
	__u64 key = (__u64)sk;
	bpf_map_update_elem(&sock_owners, &key, &owner, BPF_NOEXIST);
	return 0;
}
