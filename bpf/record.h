/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Record building shared by the hooks that give the same record type: the syscall tracepoints
 * (bpf/file_open.h, bpf/net_connect.h), the libc uprobes (bpf/net_connect.h) and io_uring
 * (bpf/io_uring.h). One implementation of each step, so the records of a type are built the same
 * way whatever saw the call. The wire format itself is bpf/events.h.
 */
#ifndef RTEV_RECORD_H
#define RTEV_RECORD_H

#include "common.h"
#include "path.h"

/* --- file_open -------------------------------------------------------------------------- */

/*
 * open_emit_canonical emits a successful open's record with the opened file's canonical path,
 * walked from fd's dentry to the task's root (docs/probes.md, "Which path"); e is the record at
 * the start of s->rec, its other fields set; cur the current task (bpf_get_current_task_btf()). False, nothing emitted, when the walk cannot give
 * that path (a file outside the task's root, unlinked, a walk over its limits): the caller then
 * records the path as passed.
 */
static __always_inline bool open_emit_canonical(struct scratch *s, struct evt_file_open *e, int fd,
						struct task_struct *cur)
{
	struct dir_path fp = {};
	if (!dir_of_fd(cur, fd, s->tmp, &fp) || fp.flags != 0 || !fp.at_root || fp.unlinked)
		return false;
	__u32 len = fp.len & (RTEV_PATH_MAX - 1);
#ifndef RTEV_TRUSTED_WALK
	if (len == 0)
		return false;
#else
	if (len == 0 || bpf_probe_read_kernel(&s->rec[sizeof(*e)], len, &s->tmp[fp.start & TMP_MASK]) != 0)
		return false;
#endif
	e->path_len = len;
	e->path_flags = PATH_CANONICAL;
	e->dir_len = 0;
	__u64 size = sizeof(*e) + len;
	e->hdr.size = size;
#ifndef RTEV_TRUSTED_WALK
	/* the record's fixed part is copied in front of the walked path (11 words), and the ring gets
	 * the record from there: the path itself is not copied again (a helper call less) */
	__u32 at = (fp.start - sizeof(*e)) & TMP_MASK;
	for (int i = 0; i < sizeof(*e) / 8; i++)
		store_u64(&s->tmp[(at + 8 * i) & TMP_MASK], *(__u64 *)&s->rec[8 * i]);
	emit(&events_bulk, &s->tmp[at], size, PROBE_FILE_OPEN, cfg.wakeup_bytes_bulk);
#else
	emit(&events_bulk, s->rec, size, PROBE_FILE_OPEN, cfg.wakeup_bytes_bulk);
#endif
	return true;
}

/*
 * open_emit_as_passed emits the record with the path as passed, which the caller put right after
 * the record (e->path_len bytes at s->rec[sizeof(*e)]). With resolve_dir, a relative path gets the
 * directory it was resolved against (e->dfd of the current task: AT_FDCWD is its working
 * directory), walked the same way.
 */
static __always_inline void open_emit_as_passed(struct scratch *s, struct evt_file_open *e, bool resolve_dir,
						struct task_struct *cur)
{
	__u32 path_len = e->path_len & (RTEV_PATH_MAX - 1);
	e->path_len = path_len;
	e->dir_len = 0;
	if (resolve_dir && path_len > 0 && s->rec[sizeof(*e)] != '/') {
		struct dir_path dir = {};
		if (dir_of_fd(cur, e->dfd, s->tmp, &dir)) {
			__u32 dir_len = dir.len & (RTEV_DIR_MAX - 1);
			__u32 off = (sizeof(*e) + path_len) & (SCRATCH_SIZE / 2 - 1);
			if (bpf_probe_read_kernel(&s->rec[off], dir_len, &s->tmp[dir.start & TMP_MASK]) == 0) {
				e->dir_len = dir_len;
				e->path_flags |= DIR_RESOLVED | dir.flags;
			}
		}
	}
	__u64 size = sizeof(*e) + path_len + e->dir_len;
	e->hdr.size = size;
	emit(&events_bulk, s->rec, size, PROBE_FILE_OPEN, cfg.wakeup_bytes_bulk);
}

/* --- net_connect ------------------------------------------------------------------------ */

struct rtev_sockaddr {
	__u16 family;
	__u16 port; /* network order */
	union {
		__u32 v4;
		struct {
			__u32 flowinfo;
			__u8 v6[16];
		};
	};
};

static __always_inline __u16 net_ntohs(__u16 v)
{
	return (v >> 8) | (v << 8);
}

/* net_addr_from_user fills e's family, port and address from a caller's sockaddr; false when it
 * cannot be read or has no family. Families other than AF_INET/AF_INET6 leave e->addr alone. */
static __always_inline bool net_addr_from_user(struct evt_net_connect *e, __u64 uaddr)
{
	struct rtev_sockaddr sa = {};
	if (!uaddr || bpf_probe_read_user(&sa, sizeof(sa), (void *)uaddr) != 0 || sa.family == 0)
		return false;
	e->family = sa.family;
	e->port = net_ntohs(sa.port);
	if (sa.family == AF_INET)
		__builtin_memcpy(e->addr, &sa.v4, 4);
	else if (sa.family == AF_INET6)
		__builtin_memcpy(e->addr, sa.v6, 16);
	return true;
}

/* sock_of_fd: the struct sock behind a descriptor of the current task. */
static __always_inline struct sock *sock_of_fd(__s64 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

/* peer_from_socket fills e from the socket behind fd (an accept whose caller passed no address). */
static __always_inline bool peer_from_socket(struct evt_net_connect *e, __s64 fd)
{
	struct sock *sk = sock_of_fd(fd);
	if (!sk)
		return false;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->family = family;
	e->port = net_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		__u32 v4 = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(e->addr, &v4, 4);
	} else if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&e->addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
	return true;
}

#endif /* RTEV_RECORD_H */
