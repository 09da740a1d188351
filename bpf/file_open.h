/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * file_open: openat, openat2, open and creat. The record is built at the
 * syscall's exit, where the path's page is certain to be resident (reading at
 * entry loses about 2% of paths) and the result tells a successful open from a
 * failed one; the arguments are read there too, from the saved registers.
 */
#include "record.h"

#define O_CREAT 0100
#define O_WRONLY 01
#define O_TRUNC 01000
#define ENAMETOOLONG 36

/* x86-64 numbers of the four open syscalls (the sys_exit tracepoints give the number) */
#define NR_OPEN 2
#define NR_CREAT 85
#define NR_OPENAT 257
#define NR_OPENAT2 437

struct open_args {
	const char *path;
	__s32 dfd;
	__u32 flags;
	__u32 mode;
	__u32 syscall;
};

/*
 * open_args_of reads the call's arguments at its exit from the task's saved user registers (the
 * syscall left them as they were; a ptrace or seccomp change made before the call is what it saw).
 * So no enter program runs and nothing is stashed per thread: a filtered-out open costs one
 * program run instead of two, and a recorded one no task-storage slot (docs/benchmarks.md, "BPF
 * cost per open", session 4). False for a syscall that is not one of the four.
 */
static __always_inline bool open_args_of(long nr, struct open_args *a, struct task_struct *task)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	/* plain loads: regs is a BTF pointer */
	__u64 p1 = PT_REGS_PARM1_SYSCALL(regs), p2 = PT_REGS_PARM2_SYSCALL(regs);
	__u64 p3 = PT_REGS_PARM3_SYSCALL(regs), p4 = PT_REGS_PARM4_SYSCALL(regs);

	switch (nr) {
	case NR_OPENAT:
		*a = (struct open_args){ (const char *)p2, (__s32)p1, (__u32)p3, (__u32)p4, OPEN_SYSCALL_OPENAT };
		return true;
	case NR_OPENAT2: {
		struct open_how how = {};
		bpf_probe_read_user(&how, sizeof(how), (void *)p3);
		*a = (struct open_args){ (const char *)p2, (__s32)p1, (__u32)how.flags, (__u32)how.mode,
					 OPEN_SYSCALL_OPENAT2 };
		return true;
	}
	case NR_OPEN:
		*a = (struct open_args){ (const char *)p1, AT_FDCWD, (__u32)p2, (__u32)p3, OPEN_SYSCALL_OPEN };
		return true;
	case NR_CREAT:
		*a = (struct open_args){ (const char *)p1, AT_FDCWD, O_CREAT | O_WRONLY | O_TRUNC, (__u32)p2,
					 OPEN_SYSCALL_CREAT };
		return true;
	}
	return false;
}

static __always_inline void open_exit(long nr, long ret)
{
	/* one helper call for the task, passed down (a recorded open made five) */
	struct task_struct *task = bpf_get_current_task_btf();

	/* the cheapest test first: a filtered-out open ends here */
	if (task_filtered_out(task)) {
		count(PROBE_FILE_OPEN, COUNTER_FILTERED);
		return;
	}
	if (ret < 0 && !cfg.record_failed_opens) {
		count(PROBE_FILE_OPEN, COUNTER_SKIPPED);
		return;
	}
	struct open_args args;
	if (!open_args_of(nr, &args, task))
		return;
	struct scratch *s = get_scratch();
	if (!s)
		return;
	struct evt_file_open *e = (struct evt_file_open *)s->rec;
	fill_header_of(&e->hdr, EVT_FILE_OPEN, task);
	e->ret = ret;
	e->flags = args.flags;
	e->mode = args.mode;
	e->dfd = args.dfd;
	e->syscall = args.syscall;
	e->path_flags = 0;
	e->dir_len = 0;

	/* A successful open records the file the kernel opened, canonically: its path walked
	 * from the opened file's dentry, so `.`, `..`, `//` and symlinked directories (and a
	 * symlink as the last component) are resolved as the kernel resolved them, and path
	 * filters and package attribution see that file. The walk replaces the read of the
	 * caller's string (docs/probes.md, "Which path"). */
	if (ret >= 0 && open_emit_canonical(s, e, (int)ret, task))
		return;

	/* a failed open, or a file outside the task's root or unlinked: the path as passed */
	__u32 path_len = 0;
	long n = bpf_probe_read_user_str(&s->rec[sizeof(*e)], RTEV_PATH_MAX, args.path);
	if (n <= 0) {
		e->path_flags |= STR_READ_FAILED;
	} else {
		path_len = (n - 1) & (RTEV_PATH_MAX - 1);
		/* only a path the kernel refused as too long can be longer than we read */
		if (n == RTEV_PATH_MAX && ret == -ENAMETOOLONG) {
			e->path_flags |= STR_TRUNCATED;
			count(PROBE_FILE_OPEN, COUNTER_TRUNCATED);
		}
	}
	e->path_len = path_len;
	/* a relative path gets the directory it was resolved against */
	open_emit_as_passed(s, e, true, task);
}

/* One program for the four syscalls, run at their exit only: the sys_exit_* tracepoints share one
 * layout (syscall number, ret) and the arguments come from the saved registers (open_args_of). It is
 * attached to sys_exit_openat, _openat2, _open and _creat (src/ingest/probes.ts), so the verifier
 * checks open_exit (two path walks) once instead of four times: it was most of the BPF load time
 * (docs/benchmarks.md, "Session 3"). */
SEC("tp/syscalls/sys_exit_openat")
int handle_openat_exit(struct trace_event_raw_sys_exit *ctx)
{
	/* the per-syscall layout has an int __syscall_nr where the raw one has a long id */
	open_exit((int)ctx->id, ctx->ret);
	return 0;
}
