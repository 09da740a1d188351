/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ssl_op: OpenSSL SSL_read, SSL_write, SSL_read_ex and SSL_write_ex, from a
 * uprobe at entry (stash the SSL* and, for _ex, the size_t* out-parameter) and
 * a uretprobe at return (bytes = the return value, or *out when an _ex call
 * returned 1). The data buffers are never read: no plaintext is captured.
 * Calls that transfer nothing (errors, WANT_READ/WANT_WRITE, EOF) count as
 * COUNTER_SKIPPED unless ssl_tun[SSL_TUN_RECORD_EMPTY] is set by user space.
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

/* Run-time tunables written by src/ingest/uprobes after load. */
#define SSL_TUN_RECORD_EMPTY 0
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} ssl_tun SEC(".maps");

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

	__u64 bytes = 0;
	if (c.op == SSL_FN_READ_EX || c.op == SSL_FN_WRITE_EX) {
		if ((int)ret == 1 && c.out)
			bpf_probe_read_user(&bytes, sizeof(bytes), (void *)c.out);
	} else if ((int)ret > 0) {
		bytes = (__u32)(int)ret;
	}
	if (bytes == 0) {
		__u32 key = SSL_TUN_RECORD_EMPTY;
		__u32 *record_empty = bpf_map_lookup_elem(&ssl_tun, &key);
		if (!record_empty || !*record_empty) {
			count(PROBE_SSL_OP, COUNTER_SKIPPED);
			return;
		}
	}
	struct evt_ssl_op e = {};
	fill_header(&e.hdr, EVT_SSL_OP);
	e.hdr.size = sizeof(e);
	e.ssl_ptr = c.ssl;
	e.ret = (int)ret;
	e.bytes = bytes;
	e.op = c.op;
	emit_rare(&e, sizeof(e), PROBE_SSL_OP);
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
