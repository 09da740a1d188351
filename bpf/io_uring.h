/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * io_uring: file opens (IORING_OP_OPENAT, IORING_OP_OPENAT2) and connects/accepts
 * (IORING_OP_CONNECT, IORING_OP_ACCEPT) submitted through a ring. They never pass through
 * the syscall tracepoints or libc, so without these programs they leave no record
 * (docs/probes.md, "io_uring").
 *
 * Two BTF-typed tracepoints pair each request with its result, the way the syscall path
 * pairs enter and exit:
 *  - io_uring_submit_req (after the request's prep, in the submitting task: the caller of
 *    io_uring_enter or the ring's SQPOLL thread) stashes the record, keyed by the request
 *    pointer: the header of the submitting task, and for an open its flags, mode, dfd and
 *    the path the prep copied into kernel memory (struct filename), for a connect the
 *    address read from the caller's sockaddr;
 *  - io_uring_complete (whatever context posts the CQE: the submitter, an io-wq worker, the
 *    SQPOLL thread, task work) takes the stash and emits the record with the result. A
 *    successful open records the opened file's canonical path walked from the new fd, as the
 *    syscall path does, when the completing task shares the submitter's file table (it is a
 *    thread of the same process); else the path as copied at submit.
 *  - io_uring_req_failed (a prep that failed: bad flags, unreadable path) stashes an open
 *    with the path read from the SQE, so --include-failed-opens sees it too.
 *
 * Multishot accepts post one CQE per connection without the request (req is NULL in the
 * tracepoint); their stash is also keyed by (ring, user_data). Requests with
 * IOSQE_CQE_SKIP_SUCCESS post a CQE only when they fail (the kernel's req_set_fail clears
 * REQ_F_CQE_SKIP): no tracepoint ever fires for their success, so a success cannot be seen and
 * each such request counts once as `skipped` at submission; its failure is still recorded like any
 * other (its CQE comes). Not recorded, and counted: accepts into a fixed-file slot without an
 * address buffer (no fd to read the peer from: `skipped`), a stash table full (`ring_full`: lost).
 *
 * Strings are compared byte by byte and no string constants are used (a .rodata.str map
 * would break the object's load).
 */
#ifndef RTEV_IO_URING_H
#define RTEV_IO_URING_H

#include "common.h"
#include "record.h"

/* UAPI values (include/uapi/linux/io_uring.h), stable since they were introduced */
#define IOU_OP_ACCEPT 13
#define IOU_OP_CONNECT 16
#define IOU_OP_OPENAT 18
#define IOU_OP_OPENAT2 28
#define IOU_ACCEPT_MULTISHOT 0x1
#define IOU_CQE_F_MORE 0x2
/* REQ_F_CQE_SKIP_BIT in io_uring_types.h (an anonymous enum, so not CO-RE relocatable) */
#define IOU_REQ_F_CQE_SKIP (1ULL << 6)

/* An open in flight: the record as it will be emitted, path included. */
struct iou_open_stash {
	__u64 user_data;
	__u32 tgid; /* the submitter's: only its threads share the file table the result's fd is in */
	__u32 file_slot;
	__u8 opcode;
	__u8 skip_success; /* IOSQE_CQE_SKIP_SUCCESS: counted as skipped at submission already */
	__u8 _pad[6];
	struct evt_file_open rec;
	__u8 path[RTEV_PATH_MAX];
};

/* A connect or accept in flight. */
struct iou_net_stash {
	__u64 user_data;
	__u64 addr; /* accept: the caller's address buffer (user pointer) */
	__u32 tgid;
	__u32 file_slot;
	__u8 opcode;
	__u8 multishot;
	__u8 have_addr;    /* connect: e.addr/family/port read at submit */
	__u8 skip_success; /* IOSQE_CQE_SKIP_SUCCESS: counted as skipped at submission already */
	__u8 _pad[4];
	struct evt_net_connect rec;
};

/* Stashes are deleted at completion; a request that ends without a CQE leaves its stash until
 * the request's memory is reused by a later submission (which overwrites it) and the checks at
 * completion (opcode and user_data) keep a stale stash from matching another request. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct iou_open_stash);
} iou_opens SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct iou_net_stash);
} iou_nets SEC(".maps");

struct iou_mshot_key {
	__u64 ctx;
	__u64 user_data;
};

/* multishot accepts: (ring, user_data) -> request pointer, for the CQEs posted without it */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct iou_mshot_key);
	__type(value, __u64);
} iou_mshots SEC(".maps");

/* The opcode-specific part of a request (io_kiocb_to_cmd: it starts the request), read in one
 * copy; fields are taken at their CO-RE offsets. */
#define IOU_CMD_SIZE 64

static __always_inline bool iou_read_cmd(struct io_kiocb *req, __u8 *cmd)
{
	return bpf_probe_read_kernel(cmd, IOU_CMD_SIZE, req) == 0;
}

#define iou_field(cmd, type, field, ctype)                                                           \
	({                                                                                           \
		ctype __v = 0;                                                                       \
		__u32 __off = bpf_core_field_offset(type, field);                                    \
		if (__off + sizeof(ctype) <= IOU_CMD_SIZE)                                           \
			__builtin_memcpy(&__v, (cmd) + (__off & (IOU_CMD_SIZE - 1)), sizeof(ctype)); \
		__v;                                                                                 \
	})

/* iou_header: the record header of the submitting task. A request submitted by the ring's
 * SQPOLL thread (an io thread of the ring's process: same tgid) gets the process's comm, so the
 * record names the program and not "iou-sqp-N"; tid stays the io thread's. */
#define IOU_PF_IO_WORKER 0x00000010 /* PF_IO_WORKER in include/linux/sched.h */
static __always_inline void iou_header(struct evt_hdr *hdr, __u32 kind)
{
	fill_header(hdr, kind);
	if (bpf_get_current_task_btf()->flags & IOU_PF_IO_WORKER) {
		struct task_struct *leader = walk_task()->group_leader;
		for (int i = 0; i < RTEV_COMM_LEN; i++)
			hdr->comm[i] = leader->comm[i];
	}
}

/* --- opens ------------------------------------------------------------------------------- */

/* iou_open_stash_begin fills the fixed part of an open's stash in scratch; false when not followed. */
static __always_inline struct iou_open_stash *iou_open_stash_begin(struct scratch *s, __u8 opcode, __u64 user_data,
								   __s32 dfd, __u64 flags, __u64 mode, __u32 slot)
{
	struct iou_open_stash *st = (struct iou_open_stash *)s->rec;
	st->user_data = user_data;
	st->tgid = bpf_get_current_pid_tgid() >> 32;
	st->file_slot = slot;
	st->opcode = opcode;
	st->skip_success = 0;
	struct evt_file_open *e = &st->rec;
	iou_header(&e->hdr, EVT_FILE_OPEN);
	e->ret = 0;
	e->flags = (__u32)flags;
	e->mode = (__u32)mode;
	e->dfd = dfd;
	e->path_len = 0;
	e->dir_len = 0;
	e->path_flags = 0;
	e->syscall = opcode == IOU_OP_OPENAT2 ? OPEN_SYSCALL_IO_URING_OPENAT2 : OPEN_SYSCALL_IO_URING_OPENAT;
	return st;
}

static __always_inline void iou_open_stash_put(__u64 key, struct iou_open_stash *st)
{
	if (bpf_map_update_elem(&iou_opens, &key, st, BPF_ANY) != 0)
		count(PROBE_FILE_OPEN, COUNTER_RING_FULL); /* no room to wait for the result: lost */
}

SEC("tp_btf/io_uring_submit_req")
int BPF_PROG(handle_iou_open_submit, struct io_kiocb *req)
{
	__u8 opcode = req->opcode;
	if (opcode != IOU_OP_OPENAT && opcode != IOU_OP_OPENAT2)
		return 0;
	__u64 key = (__u64)req;
	if (current_filtered_out()) {
		count(PROBE_FILE_OPEN, COUNTER_FILTERED);
		bpf_map_delete_elem(&iou_opens, &key); /* a stale stash must not meet this request's CQE */
		return 0;
	}
	/* no CQE on success: the result is not observable, only a failure is (its CQE is posted) */
	bool skip_success = (req->flags & IOU_REQ_F_CQE_SKIP) != 0;
	if (skip_success) {
		count(PROBE_FILE_OPEN, COUNTER_SKIPPED);
		if (!cfg.record_failed_opens) {
			bpf_map_delete_elem(&iou_opens, &key);
			return 0;
		}
	}
	__u8 cmd[IOU_CMD_SIZE];
	struct scratch *s = get_scratch();
	if (!s || !iou_read_cmd(req, cmd))
		return 0;
	struct filename *fname = iou_field(cmd, struct io_open, filename, struct filename *);
	__s32 dfd = iou_field(cmd, struct io_open, dfd, __s32);
	__u32 slot = iou_field(cmd, struct io_open, file_slot, __u32);
	__u64 flags = iou_field(cmd, struct io_open, how.flags, __u64);
	__u64 mode = iou_field(cmd, struct io_open, how.mode, __u64);
	struct iou_open_stash *st = iou_open_stash_begin(s, opcode, req->cqe.user_data, dfd, flags, mode, slot);
	st->skip_success = skip_success;

	const char *name = NULL;
	long n = -1;
	if (fname && bpf_probe_read_kernel(&name, sizeof(name), &fname->name) == 0 && name)
		n = bpf_probe_read_kernel_str(st->path, RTEV_PATH_MAX, name);
	if (n <= 0) {
		st->rec.path_flags |= STR_READ_FAILED;
	} else {
		st->rec.path_len = (n - 1) & (RTEV_PATH_MAX - 1);
	}
	iou_open_stash_put(key, st);
	return 0;
}

/* A prep that failed (the request is completed with the error and never reaches submit_req). */
SEC("tp_btf/io_uring_req_failed")
int BPF_PROG(handle_iou_open_failed, const struct io_uring_sqe *sqe, struct io_kiocb *req, int error)
{
	__u8 opcode = req->opcode;
	if (opcode != IOU_OP_OPENAT && opcode != IOU_OP_OPENAT2)
		return 0;
	__u64 key = (__u64)req;
	bpf_map_delete_elem(&iou_opens, &key);
	if (current_filtered_out()) {
		count(PROBE_FILE_OPEN, COUNTER_FILTERED);
		return 0;
	}
	if (!cfg.record_failed_opens) {
		count(PROBE_FILE_OPEN, COUNTER_SKIPPED);
		return 0;
	}
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	/* the SQE is in the ring's shared memory, which the kernel reads directly */
	struct io_uring_sqe q = {};
	if (bpf_probe_read_kernel(&q, sizeof(q), sqe))
		return 0;
	__u64 flags = q.open_flags;
	__u64 mode = q.len;
	if (opcode == IOU_OP_OPENAT2) {
		struct open_how how = {};
		bpf_probe_read_user(&how, sizeof(how), (void *)q.addr2);
		flags = how.flags;
		mode = how.mode;
	}
	struct iou_open_stash *st = iou_open_stash_begin(s, opcode, q.user_data, q.fd, flags, mode, q.file_index);
	long n = bpf_probe_read_user_str(st->path, RTEV_PATH_MAX, (void *)q.addr);
	if (n <= 0)
		st->rec.path_flags |= STR_READ_FAILED;
	else
		st->rec.path_len = (n - 1) & (RTEV_PATH_MAX - 1);
	iou_open_stash_put(key, st);
	return 0;
}

static __always_inline void iou_open_complete(__u64 key, __s32 res, __u64 user_data)
{
	struct iou_open_stash *st = bpf_map_lookup_elem(&iou_opens, &key);
	if (!st)
		return;
	if (st->user_data != user_data) {
		bpf_map_delete_elem(&iou_opens, &key);
		return; /* a stale stash: this CQE is another request's */
	}
	__u8 opcode = 0;
	bpf_probe_read_kernel(&opcode, 1, (void *)key + bpf_core_field_offset(struct io_kiocb, opcode));
	if (opcode != st->opcode) {
		bpf_map_delete_elem(&iou_opens, &key);
		return;
	}
	if (res < 0 && !cfg.record_failed_opens) {
		bpf_map_delete_elem(&iou_opens, &key);
		if (!st->skip_success)
			count(PROBE_FILE_OPEN, COUNTER_SKIPPED);
		return;
	}
	struct scratch *s = get_scratch();
	if (!s) {
		bpf_map_delete_elem(&iou_opens, &key);
		return;
	}
	struct evt_file_open *e = (struct evt_file_open *)s->rec;
	__builtin_memcpy(e, &st->rec, sizeof(*e));
	e->ret = res;
	e->hdr.ts_ns = bpf_ktime_get_ns();
	bool same_files = (bpf_get_current_pid_tgid() >> 32) == st->tgid;

	/* a new fd (not a fixed-file slot) in a thread of the submitter: its canonical path */
	if (res >= 0 && st->file_slot == 0 && same_files &&
	    open_emit_canonical(s, e, res, bpf_get_current_task_btf())) {
		bpf_map_delete_elem(&iou_opens, &key);
		return;
	}

	/* the path as submitted; a relative one resolved against dfd where the descriptor table is the submitter's */
	__u32 path_len = e->path_len & (RTEV_PATH_MAX - 1);
	if (path_len > 0)
		bpf_probe_read_kernel(&s->rec[sizeof(*e)], path_len, st->path);
	bpf_map_delete_elem(&iou_opens, &key);
	e->path_len = path_len;
	open_emit_as_passed(s, e, same_files, bpf_get_current_task_btf());
}

SEC("tp_btf/io_uring_complete")
int BPF_PROG(handle_iou_open_complete, struct io_ring_ctx *ring, void *req, struct io_uring_cqe *cqe)
{
	if (!req)
		return 0; /* an auxiliary CQE (multishot): never an open */
	iou_open_complete((__u64)req, cqe->res, cqe->user_data);
	return 0;
}

/* --- connects and accepts ---------------------------------------------------------------- */

SEC("tp_btf/io_uring_submit_req")
int BPF_PROG(handle_iou_net_submit, struct io_kiocb *req)
{
	__u8 opcode = req->opcode;
	if (opcode != IOU_OP_CONNECT && opcode != IOU_OP_ACCEPT)
		return 0;
	__u64 key = (__u64)req;
	if (current_filtered_out()) {
		count(PROBE_NET_CONNECT, COUNTER_FILTERED);
		bpf_map_delete_elem(&iou_nets, &key);
		return 0;
	}
	/* no CQE on success (counted as not observable); a failure posts one and is recorded */
	bool skip_success = (req->flags & IOU_REQ_F_CQE_SKIP) != 0;
	if (skip_success)
		count(PROBE_NET_CONNECT, COUNTER_SKIPPED);
	__u8 cmd[IOU_CMD_SIZE];
	struct scratch *s = get_scratch();
	if (!s || !iou_read_cmd(req, cmd))
		return 0;
	struct iou_net_stash *st = (struct iou_net_stash *)s->rec;
	__builtin_memset(st, 0, sizeof(*st));
	st->user_data = req->cqe.user_data;
	st->tgid = bpf_get_current_pid_tgid() >> 32;
	st->opcode = opcode;
	st->skip_success = skip_success;
	struct evt_net_connect *e = &st->rec;
	iou_header(&e->hdr, EVT_NET_CONNECT);
	e->hdr.size = sizeof(*e);
	e->fd = req->cqe.fd;
	e->hook = NET_HOOK_IO_URING;
	if (opcode == IOU_OP_CONNECT) {
		e->op = NET_OP_CONNECT;
		/* the caller's sockaddr, in its memory now (the submitter or its SQPOLL thread) */
		__u64 uaddr = (__u64)iou_field(cmd, struct io_connect, addr, void *);
		if (net_addr_from_user(e, uaddr) && (e->family == AF_INET || e->family == AF_INET6))
			st->have_addr = 1;
	} else {
		e->op = NET_OP_ACCEPT;
		st->addr = (__u64)iou_field(cmd, struct io_accept, addr, void *);
		st->file_slot = iou_field(cmd, struct io_accept, file_slot, __u32);
		st->multishot = (iou_field(cmd, struct io_accept, iou_flags, __u32) & IOU_ACCEPT_MULTISHOT) != 0;
		if (st->multishot) {
			struct iou_mshot_key mk = { .ctx = (__u64)req->ctx, .user_data = st->user_data };
			/* full: its per-connection CQEs cannot be matched, so they are lost */
			if (bpf_map_update_elem(&iou_mshots, &mk, &key, BPF_ANY) != 0)
				count(PROBE_NET_CONNECT, COUNTER_RING_FULL);
		}
	}
	if (bpf_map_update_elem(&iou_nets, &key, st, BPF_ANY) != 0)
		count(PROBE_NET_CONNECT, COUNTER_RING_FULL);
	return 0;
}

/* iou_net_emit emits the record of one CQE of a stashed connect or accept. */
static __always_inline void iou_net_emit(struct iou_net_stash *st, __s32 res)
{
	struct evt_net_connect e;
	__builtin_memcpy(&e, &st->rec, sizeof(e));
	e.hdr.ts_ns = bpf_ktime_get_ns();
	e.ret = res;
	bool same_task = (bpf_get_current_pid_tgid() >> 32) == st->tgid;
	if (st->opcode == IOU_OP_CONNECT) {
		if (!st->have_addr) {
			if (!st->skip_success)
				count(PROBE_NET_CONNECT, COUNTER_SKIPPED); /* not AF_INET/AF_INET6, or unreadable */
			return;
		}
	} else if (res >= 0) {
		/* the peer: from the new socket (its fd is in the submitter's table), else from the
		 * caller's address buffer, which the kernel filled */
		bool have = false;
		if (same_task && st->file_slot == 0)
			have = peer_from_socket(&e, res);
		if (!have && same_task)
			have = net_addr_from_user(&e, st->addr);
		if (!have || (e.family != AF_INET && e.family != AF_INET6)) {
			count(PROBE_NET_CONNECT, COUNTER_SKIPPED);
			return;
		}
	} else {
		if (!st->skip_success)
			count(PROBE_NET_CONNECT, COUNTER_SKIPPED); /* a failed accept has no peer, as for syscalls */
		return;
	}
	emit_rare(&e, sizeof(e), PROBE_NET_CONNECT);
}

SEC("tp_btf/io_uring_complete")
int BPF_PROG(handle_iou_net_complete, struct io_ring_ctx *ring, void *req, struct io_uring_cqe *cqe)
{
	__u64 key = (__u64)req;
	__u64 user_data = cqe->user_data;
	if (!req) {
		/* a multishot accept's CQE, posted without its request */
		struct iou_mshot_key mk = { .ctx = (__u64)ring, .user_data = user_data };
		__u64 *r = bpf_map_lookup_elem(&iou_mshots, &mk);
		if (!r)
			return 0;
		key = *r;
		struct iou_net_stash *st = bpf_map_lookup_elem(&iou_nets, &key);
		if (st && st->user_data == user_data && st->multishot)
			iou_net_emit(st, cqe->res);
		return 0;
	}
	struct iou_net_stash *st = bpf_map_lookup_elem(&iou_nets, &key);
	if (!st)
		return 0;
	__u8 opcode = 0;
	bpf_probe_read_kernel(&opcode, 1, req + bpf_core_field_offset(struct io_kiocb, opcode));
	if (st->user_data == user_data && st->opcode == opcode)
		iou_net_emit(st, cqe->res);
	/* the last CQE of a request (a multishot one ends without IORING_CQE_F_MORE) */
	if (!(cqe->flags & IOU_CQE_F_MORE)) {
		if (st->multishot) {
			struct iou_mshot_key mk = { .ctx = (__u64)ring, .user_data = st->user_data };
			bpf_map_delete_elem(&iou_mshots, &mk);
		}
		bpf_map_delete_elem(&iou_nets, &key);
	}
	return 0;
}

/* Baseline for bench/io-uring.bench.ts: the same tracepoints with programs that do nothing. */
SEC("tp_btf/io_uring_submit_req")
int rtev_iou_empty_submit(void *ctx)
{
	return 0;
}

SEC("tp_btf/io_uring_complete")
int rtev_iou_empty_complete(void *ctx)
{
	return 0;
}

#endif /* RTEV_IO_URING_H */
