/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ssl_op: OpenSSL SSL_read, SSL_write, SSL_read_ex and SSL_write_ex, from a
 * uprobe at entry (stash the SSL* and, for _ex, the size_t* out-parameter) and
 * a uretprobe at return (bytes = the return value, or *out when an _ex call
 * returned 1). The data buffers are never read: no plaintext is captured.
 * GnuTLS gnutls_record_send2 (or gnutls_record_send where there is no send2: send
 * jumps to send2 through the PLT, so probing both would count a call twice),
 * gnutls_record_recv, gnutls_record_recv_seq, gnutls_record_send_range (length hiding) and
 * gnutls_record_recv_packet (the packet's data size is the return value) go through the same
 * programs (ssize_t returns; ssl_ptr = the gnutls_session_t).
 * Calls that transfer nothing (errors, WANT_READ/WANT_WRITE, EOF) count as
 * COUNTER_SKIPPED unless cfg.record_empty_ssl_ops.
 */
#include "common.h"

struct ssl_call {
	__u64 ssl;
	__u64 out; /* size_t *readbytes / *written, for the _ex calls */
	__u8 op;   /* enum ssl_fn */
	__u8 _pad[7];
};

/* the call in progress per thread, in task-local storage; op == 0 marks an empty slot */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ssl_call);
} ssl_calls SEC(".maps");

/* ssl_record builds and emits the record of one finished call. */
static __always_inline void ssl_record(__u8 op, __u64 ssl, __u64 out, long ret)
{
	__u64 bytes = 0;
	if (op == SSL_FN_READ_EX || op == SSL_FN_WRITE_EX) {
		if ((int)ret == 1 && out)
			bpf_probe_read_user(&bytes, sizeof(bytes), (void *)out);
	} else if (op >= SSL_FN_GNUTLS_RECV) {
		/* GnuTLS and Go return a 64-bit count (ssize_t, int) */
		if (ret > 0)
			bytes = (__u64)ret;
	} else if ((int)ret > 0) {
		bytes = (__u32)(int)ret;
	}
	if (bytes == 0 && !cfg.record_empty_ssl_ops) {
		count(PROBE_SSL_OP, COUNTER_SKIPPED);
		return;
	}
	struct evt_ssl_op e = {};
	fill_header(&e.hdr, EVT_SSL_OP);
	e.hdr.size = sizeof(e);
	e.ssl_ptr = ssl;
	e.ret = op >= SSL_FN_GNUTLS_RECV ? ret : (int)ret;
	e.bytes = bytes;
	e.op = op;
	emit_rare(&e, sizeof(e), PROBE_SSL_OP);
}

static __always_inline bool is_ex(__u8 op)
{
	return op == SSL_FN_READ_EX || op == SSL_FN_WRITE_EX;
}

/* --- uprobe session (kernel >= 6.13): one program per call, run at entry and at return ---
 * Attached by the addon as a uprobe_multi link of type BPF_TRACE_UPROBE_SESSION, one link per
 * library for the four functions, with the enum ssl_fn as each offset's attach cookie. The
 * kernel keeps an 8-byte cookie per call between the two runs, so no per-thread map is needed,
 * and an entry that returns 1 (a filtered process) skips the return run.
 *
 * The cookie holds the SSL* in its low 48 bits (user addresses are below 2^47 unless a program
 * maps memory above on purpose). An _ex call's out-parameter is nearly always a local of the
 * caller, just above the stack pointer: its distance from the entry's stack pointer, plus one,
 * goes in the high 16 bits, and the return run finds it again from its own stack pointer. When
 * either does not fit, the cookie is 0 and the call goes through task storage, as in the
 * classic mode, at the price of a task-storage lookup at entry and another at return. */
#define COOKIE_PTR_MASK ((1ULL << 48) - 1)
#define COOKIE_MAX_OUT_DISTANCE 0xfffeULL
#if defined(__TARGET_ARCH_x86)
#define RETURN_SP_SHIFT 8 /* ret popped the return address */
#else
#define RETURN_SP_SHIFT 0
#endif

static __always_inline __u64 ssl_session_cookie(__u8 op, __u64 ssl, __u64 out, __u64 sp)
{
	if (ssl & ~COOKIE_PTR_MASK)
		return 0;
	if (!is_ex(op))
		return ssl;
	if (out < sp || out - sp > COOKIE_MAX_OUT_DISTANCE)
		return 0;
	return ssl | (out - sp + 1) << 48;
}

SEC("uprobe")
int rtev_ssl_session(struct pt_regs *ctx)
{
	__u64 *cookie = bpf_session_cookie();
	__u8 op = bpf_get_attach_cookie(ctx);

	if (!bpf_session_is_return()) {
		if (current_filtered_out()) {
			count(PROBE_SSL_OP, COUNTER_FILTERED);
			return 1;
		}
		__u64 ssl = PT_REGS_PARM1(ctx);
		__u64 out = PT_REGS_PARM4(ctx);
		*cookie = ssl_session_cookie(op, ssl, out, PT_REGS_SP(ctx));
		if (*cookie)
			return 0;
		struct ssl_call *c =
			bpf_task_storage_get(&ssl_calls, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!c)
			return 1;
		*c = (struct ssl_call){ .ssl = ssl, .out = is_ex(op) ? out : 0, .op = op };
		return 0;
	}
	__u64 packed = *cookie;
	if (packed) {
		__u64 distance = packed >> 48;
		__u64 out = distance ? PT_REGS_SP(ctx) - RETURN_SP_SHIFT + distance - 1 : 0;
		ssl_record(op, packed & COOKIE_PTR_MASK, out, PT_REGS_RC(ctx));
		return 0;
	}
	struct ssl_call *c = bpf_task_storage_get(&ssl_calls, bpf_get_current_task_btf(), 0, 0);
	if (!c || c->op != op)
		return 0;
	struct ssl_call call = *c;
	c->op = 0;
	ssl_record(op, call.ssl, call.out, PT_REGS_RC(ctx));
	return 0;
}

/* --- perf-event uprobes (older kernels): an entry program per function and one return program,
 * with the call in progress in task storage --- */

static __always_inline void ssl_enter(__u8 op, __u64 ssl, __u64 out)
{
	if (current_filtered_out()) {
		count(PROBE_SSL_OP, COUNTER_FILTERED);
		return;
	}
	struct ssl_call *c =
		bpf_task_storage_get(&ssl_calls, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!c)
		return;
	c->ssl = ssl;
	c->out = out;
	c->op = op;
}

static __always_inline void ssl_exit(long ret)
{
	struct ssl_call *stashed = bpf_task_storage_get(&ssl_calls, bpf_get_current_task_btf(), 0, 0);
	if (!stashed || !stashed->op)
		return;
	struct ssl_call c = *stashed;
	stashed->op = 0;
	ssl_record(c.op, c.ssl, c.out, ret);
}

SEC("uprobe")
int BPF_KPROBE(rtev_ssl_read, void *ssl)
{
	ssl_enter(SSL_FN_READ, (__u64)ssl, 0);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(rtev_ssl_write, void *ssl)
{
	ssl_enter(SSL_FN_WRITE, (__u64)ssl, 0);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(rtev_ssl_read_ex, void *ssl, void *buf, __u64 num, void *readbytes)
{
	ssl_enter(SSL_FN_READ_EX, (__u64)ssl, (__u64)readbytes);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(rtev_ssl_write_ex, void *ssl, void *buf, __u64 num, void *written)
{
	ssl_enter(SSL_FN_WRITE_EX, (__u64)ssl, (__u64)written);
	return 0;
}

/* GnuTLS in classic mode: one entry program for its functions, the enum ssl_fn as attach cookie */
SEC("uprobe")
int BPF_KPROBE(rtev_tls_enter, void *session)
{
	__u8 op = bpf_get_attach_cookie(ctx);
	if ((op < SSL_FN_GNUTLS_RECV || op > SSL_FN_GNUTLS_SEND2) && op != SSL_FN_GNUTLS_SEND_RANGE &&
	    op != SSL_FN_GNUTLS_RECV_PACKET)
		return 0;
	ssl_enter(op, (__u64)session, 0);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(rtev_ssl_ret, long ret)
{
	ssl_exit(ret);
	return 0;
}

/* --- Go crypto/tls: (*Conn).Read and (*Conn).Write (src/ingest/uprobes/go.ts) ---
 * Entry-style uprobes only: one at the function's entry and one at each of its RET instructions
 * (a uretprobe replaces the return address on the goroutine stack, which Go moves and unwinds).
 * The attach cookie is the enum ssl_fn, with GO_TLS_AT_RET on the RET offsets. Go's register ABI
 * (ABIInternal, go1.17+ on amd64): the receiver (*Conn) is in RAX at entry, the result n in RAX at
 * RET (err's itab in RBX, data in RCX), and R14 holds the running goroutine's g throughout, so the
 * call is found again at RET by (tgid, g) even when the goroutine moved to another thread while
 * it blocked. */
#define GO_TLS_AT_RET 0x100

struct go_call_key {
	__u32 tgid;
	__u32 _pad;
	__u64 g;
};

struct go_call {
	__u64 conn;
	__u8 op;
	__u8 _pad[7];
};

/* calls in progress: one per goroutine inside Read/Write (a server blocked reading 10k
 * connections holds 10k); when full, the call is counted as lost (ring_full) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_call_key);
	__type(value, struct go_call);
} go_tls_calls SEC(".maps");

static __always_inline int go_tls(struct pt_regs *ctx)
{
#if defined(__TARGET_ARCH_x86)
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u8 op = cookie & 0xff;
	if (op != SSL_FN_GO_READ && op != SSL_FN_GO_WRITE)
		return 0;
	struct go_call_key k = { .tgid = bpf_get_current_pid_tgid() >> 32, .g = ctx->r14 };
	if (!(cookie & GO_TLS_AT_RET)) {
		if (current_filtered_out()) {
			count(PROBE_SSL_OP, COUNTER_FILTERED);
			return 0;
		}
		struct go_call c = { .conn = ctx->ax, .op = op };
		if (bpf_map_update_elem(&go_tls_calls, &k, &c, BPF_ANY))
			count(PROBE_SSL_OP, COUNTER_RING_FULL);
		return 0;
	}
	struct go_call *c = bpf_map_lookup_elem(&go_tls_calls, &k);
	if (!c || c->op != op)
		return 0;
	__u64 conn = c->conn;
	bpf_map_delete_elem(&go_tls_calls, &k);
	ssl_record(op, conn, 0, (long)ctx->ax);
#endif
	return 0;
}

/* session mode: attached with uprobe_multi links (all offsets of a file in one link) */
SEC("uprobe")
int rtev_go_tls_multi(struct pt_regs *ctx)
{
	return go_tls(ctx);
}

/* classic mode: one perf-event uprobe per offset, same cookies */
SEC("uprobe")
int rtev_go_tls(struct pt_regs *ctx)
{
	return go_tls(ctx);
}

/* Baseline for bench/tls.bench.ts: the cost of a uprobe that does nothing. */
SEC("uprobe")
int rtev_empty_uprobe(void *ctx)
{
	return 0;
}

SEC("uretprobe")
int rtev_empty_uretprobe(void *ctx)
{
	return 0;
}

/* ... and of a uprobe session program that does nothing (runs at entry and at return) */
SEC("uprobe")
int rtev_empty_session(void *ctx)
{
	return 0;
}
