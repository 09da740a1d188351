/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * process_exec from sched_process_exec, plus the fork/exit bookkeeping that
 * makes the subtree filter follow descendants.
 */
#include "common.h"
#include "path.h"

/* The syscall's path says nothing about what ran: empty (execveat AT_EMPTY_PATH),
 * /dev/fd/N (fexecve), /proc/self/..., /proc/thread-self/... or /proc/<pid>/...
 * Compared byte by byte, with no string constants (they would add a .rodata map). */
static __always_inline bool uninformative_exec_path(const __u8 *p, __u32 len)
{
	if (len == 0)
		return true;
	if (len < 7 || p[0] != '/')
		return false;
	if (len >= 8 && p[1] == 'd' && p[2] == 'e' && p[3] == 'v' && p[4] == '/' && p[5] == 'f' && p[6] == 'd' &&
	    p[7] == '/')
		return true;
	if (!(p[1] == 'p' && p[2] == 'r' && p[3] == 'o' && p[4] == 'c' && p[5] == '/'))
		return false;
	if (p[6] >= '0' && p[6] <= '9')
		return true;
	if (len >= 11 && p[6] == 's' && p[7] == 'e' && p[8] == 'l' && p[9] == 'f' && p[10] == '/')
		return true;
	return len >= 18 && p[6] == 't' && p[7] == 'h' && p[8] == 'r' && p[9] == 'e' && p[10] == 'a' && p[11] == 'd' &&
	       p[12] == '-' && p[13] == 's' && p[14] == 'e' && p[15] == 'l' && p[16] == 'f' && p[17] == '/';
}

#define DELETED_LEN 10

/* exe_file_name writes what the kernel knows of the new image's executable (mm->exe_file)
 * at dst, the way /proc/PID/exe reads: its canonical path, `/memfd:NAME (deleted)` for a
 * memfd (or any file without a directory), ` (deleted)` after an unlinked file's path.
 * Returns the length, or -1 when nothing usable was read (dst may be clobbered). */
static __always_inline long exe_file_name(struct task_struct *task, struct scratch *s, __u8 *dst)
{
	struct file *f = BPF_CORE_READ(task, mm, exe_file);
	if (!f)
		return -1;
	struct dentry *d = BPF_CORE_READ(f, f_path.dentry);
	struct vfsmount *m = BPF_CORE_READ(f, f_path.mnt);
	if (!d || !m)
		return -1;
	__u32 len;
	bool unlinked;
	if (BPF_CORE_READ(d, d_parent) == d && BPF_CORE_READ(m, mnt_root) != d) {
		/* a pseudo file (memfd_create: d_name "memfd:NAME"), never linked anywhere */
		struct qstr name = BPF_CORE_READ(d, d_name);
		__u32 n = name.len & NAME_MASK;
		if (n == 0)
			return -1;
		dst[0] = '/';
		if (bpf_probe_read_kernel(&dst[1], n, name.name))
			return -1;
		len = n + 1;
		unlinked = true;
	} else {
		struct dir_path p = {};
		if (!walk_path(bpf_get_current_task_btf(), d, m, s->tmp, &p) || p.flags)
			return -1;
		len = p.len & (RTEV_DIR_MAX - 1);
		if (len == 0 || bpf_probe_read_kernel(dst, len, &s->tmp[p.start & TMP_MASK]))
			return -1;
		unlinked = p.unlinked;
	}
	if (unlinked) {
		if (len + DELETED_LEN > RTEV_PATH_MAX - 1)
			return -1;
		/* " (deleted)", as d_path() appends it */
		__u8 *t = &dst[len & (RTEV_PATH_MAX - 1)];
		t[0] = ' ';
		t[1] = '(';
		t[2] = 'd';
		t[3] = 'e';
		t[4] = 'l';
		t[5] = 'e';
		t[6] = 't';
		t[7] = 'e';
		t[8] = 'd';
		t[9] = ')';
		len += DELETED_LEN;
	}
	return len;
}

SEC("tp/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	if (current_filtered_out()) {
		count(PROBE_PROCESS_EXEC, COUNTER_FILTERED);
		return 0;
	}
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	struct evt_process_exec *e = (struct evt_process_exec *)s->rec;
	struct task_struct *task = walk_task();

	fill_header(&e->hdr, EVT_PROCESS_EXEC);
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->filename_flags = 0;
	e->argv0_flags = 0;

	/* filename, from the tracepoint's __data_loc string */
	__u32 loc = ctx->__data_loc_filename & 0xFFFF;
	long n = bpf_probe_read_kernel_str(&s->rec[sizeof(*e)], RTEV_PATH_MAX, (void *)ctx + loc);
	__u32 filename_len = 0;
	if (n <= 0) {
		e->filename_flags |= STR_READ_FAILED;
	} else {
		filename_len = (n - 1) & (RTEV_PATH_MAX - 1);
	}
	if (n > 0 && uninformative_exec_path(&s->rec[sizeof(*e)], filename_len)) {
		/* fexecve, execveat(AT_EMPTY_PATH), /proc/self/exe: name the executed file instead */
		long len = exe_file_name(task, s, &s->rec[sizeof(*e)]);
		if (len > 0) {
			filename_len = len & (RTEV_PATH_MAX - 1);
		} else {
			n = bpf_probe_read_kernel_str(&s->rec[sizeof(*e)], RTEV_PATH_MAX, (void *)ctx + loc);
			filename_len = n > 0 ? (n - 1) & (RTEV_PATH_MAX - 1) : 0;
		}
	}
	e->filename_len = filename_len;

	/* argv[0], from the new image's argument area */
	unsigned long arg_start = BPF_CORE_READ(task, mm, arg_start);
	unsigned long arg_end = BPF_CORE_READ(task, mm, arg_end);
	__u32 off = (sizeof(*e) + filename_len) & (SCRATCH_SIZE / 2 - 1);
	__u32 argv0_len = 0;
	if (arg_start && arg_end > arg_start) {
		n = bpf_probe_read_user_str(&s->rec[off], RTEV_ARG_MAX, (void *)arg_start);
		if (n <= 0) {
			e->argv0_flags |= STR_READ_FAILED;
		} else {
			argv0_len = (n - 1) & (RTEV_ARG_MAX - 1);
			if (n == RTEV_ARG_MAX) {
				e->argv0_flags |= STR_TRUNCATED;
				count(PROBE_PROCESS_EXEC, COUNTER_TRUNCATED);
			}
		}
	} else {
		e->argv0_flags |= STR_READ_FAILED;
	}
	e->argv0_len = argv0_len;

	__u64 size = sizeof(*e) + filename_len + argv0_len;
	e->hdr.size = size;
	emit_rare(s->rec, size, PROBE_PROCESS_EXEC);
	return 0;
}

/* A child of a TRACE_TREE process is traced too, from its first instruction. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork, struct task_struct *parent, struct task_struct *child)
{
	if (!cfg.filter_pids)
		return 0;
	__u32 child_pid = BPF_CORE_READ(child, pid);
	__u32 child_tgid = BPF_CORE_READ(child, tgid);
	if (child_pid != child_tgid)
		return 0; /* a new thread of an existing process */
	__u32 parent_tgid = BPF_CORE_READ(parent, tgid);
	__u8 *mode = bpf_map_lookup_elem(&traced_tgids, &parent_tgid);
	if (mode && *mode == TRACE_TREE) {
		__u8 tree = TRACE_TREE;
		bpf_map_update_elem(&traced_tgids, &child_tgid, &tree, BPF_ANY);
	}
	return 0;
}

/* Forget a traced process when its last thread exits, so a reused pid is not traced. */
SEC("tp/sched/sched_process_exit")
int handle_exit(void *ctx)
{
	if (!cfg.filter_pids)
		return 0;
	struct task_struct *task = walk_task();
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	bpf_map_delete_elem(&traced_tgids, &tgid);
	return 0;
}
