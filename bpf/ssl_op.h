/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ssl_op: OpenSSL SSL_read, SSL_write, SSL_read_ex and SSL_write_ex, from a
 * uprobe at entry (stash the SSL* and, for _ex, the size_t* out-parameter) and
 * a uretprobe at return (bytes = the return value, or *out when an _ex call
 * returned 1). The data buffers are never read: no plaintext is captured.
 * Calls that transfer nothing (errors, WANT_READ/WANT_WRITE, EOF) count as
 * COUNTER_SKIPPED unless cfg.record_empty_ssl_ops.
 */
#include "common.h"

struct ssl_call {
	__u64 ssl;
	__u64 out;   /* size_t *readbytes / *written, for the _ex calls */
	__u8 op;     /* enum ssl_fn */
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
	e.ret = (int)ret;
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
 * kernel keeps an 8-byte cookie per call between the two runs: it holds the SSL*, so SSL_read
 * and SSL_write need no per-thread map at all, and an entry that returns 1 (a filtered
 * process) skips the return run. Only the _ex calls' out-parameter goes to task storage. */
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
		*cookie = PT_REGS_PARM1(ctx);
		if (is_ex(op)) {
			struct ssl_call *c = bpf_task_storage_get(&ssl_calls, bpf_get_current_task_btf(), 0,
								  BPF_LOCAL_STORAGE_GET_F_CREATE);
			if (!c)
				return 1;
			c->out = PT_REGS_PARM4(ctx);
			c->op = op;
		}
		return 0;
	}
	__u64 out = 0;
	if (is_ex(op)) {
		struct ssl_call *c = bpf_task_storage_get(&ssl_calls, bpf_get_current_task_btf(), 0, 0);
		if (!c || c->op != op)
			return 0;
		out = c->out;
		c->op = 0;
	}
	ssl_record(op, *cookie, out, PT_REGS_RC(ctx));
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
	struct ssl_call *c = bpf_task_storage_get(&ssl_calls, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
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

SEC("uretprobe")
int BPF_KRETPROBE(rtev_ssl_ret, long ret)
{
	ssl_exit(ret);
	return 0;
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
