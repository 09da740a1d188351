/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * file_open: openat, openat2, open and creat. The arguments are stashed at
 * syscall entry and the record is built at exit, where the path's page is
 * certain to be resident (reading at entry loses about 2% of paths) and the
 * result tells a successful open from a failed one.
 */
#include "record.h"

#define O_CREAT 0100
#define O_WRONLY 01
#define O_TRUNC 01000
#define ENAMETOOLONG 36

struct open_args {
	const char *path;
	__s32 dfd;
	__u32 flags;
	__u32 mode;
	__u32 syscall;
};

/* The arguments stashed at entry live in task-local storage: a per-thread slot found
 * through the task, freed with it, cheaper than hashing pid_tgid into an LRU map
 * (docs/benchmarks.md, "BPF cost per open"). path == NULL means nothing is stashed. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct open_args);
} open_args_by_task SEC(".maps");

static __always_inline void open_enter(__s32 dfd, const char *path, __u64 flags, __u64 mode, __u32 syscall)
{
	if (current_filtered_out()) {
		count(PROBE_FILE_OPEN, COUNTER_FILTERED);
		return;
	}
	struct task_struct *task = bpf_get_current_task_btf();
	struct open_args *args = bpf_task_storage_get(&open_args_by_task, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!args)
		return;
	args->path = path;
	args->dfd = dfd;
	args->flags = (__u32)flags;
	args->mode = (__u32)mode;
	args->syscall = syscall;
}

static __always_inline void open_exit(long ret)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct open_args *stashed = bpf_task_storage_get(&open_args_by_task, task, 0, 0);
	if (!stashed || !stashed->path)
		return; /* filtered at entry, or entry happened before attach */
	struct open_args args = *stashed;
	stashed->path = NULL;

	if (ret < 0 && !cfg.record_failed_opens) {
		count(PROBE_FILE_OPEN, COUNTER_SKIPPED);
		return;
	}
	struct scratch *s = get_scratch();
	if (!s)
		return;
	struct evt_file_open *e = (struct evt_file_open *)s->rec;
	fill_header(&e->hdr, EVT_FILE_OPEN);
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
	if (ret >= 0 && open_emit_canonical(s, e, (int)ret))
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
	open_emit_as_passed(s, e, true);
}

/* One exit program for the four syscalls: the sys_exit_* tracepoints share one layout (syscall
 * number, ret) and open_exit takes what differs from the stashed arguments. It is attached to
 * sys_exit_openat, _openat2, _open and _creat (src/ingest/probes.ts), so the verifier checks
 * open_exit (two path walks) once instead of four times: it was most of the BPF load time
 * (docs/benchmarks.md, "Session 3"). */
SEC("tp/syscalls/sys_exit_openat")
int handle_openat_exit(struct trace_event_raw_sys_exit *ctx)
{
	open_exit(ctx->ret);
	return 0;
}

SEC("tp/syscalls/sys_enter_openat")
int handle_openat_enter(struct trace_event_raw_sys_enter *ctx)
{
	open_enter(ctx->args[0], (const char *)ctx->args[1], ctx->args[2], ctx->args[3], OPEN_SYSCALL_OPENAT);
	return 0;
}

SEC("tp/syscalls/sys_enter_openat2")
int handle_openat2_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct open_how how = {};
	bpf_probe_read_user(&how, sizeof(how), (void *)ctx->args[2]);
	open_enter(ctx->args[0], (const char *)ctx->args[1], how.flags, how.mode, OPEN_SYSCALL_OPENAT2);
	return 0;
}

SEC("tp/syscalls/sys_enter_open")
int handle_open_enter(struct trace_event_raw_sys_enter *ctx)
{
	open_enter(AT_FDCWD, (const char *)ctx->args[0], ctx->args[1], ctx->args[2], OPEN_SYSCALL_OPEN);
	return 0;
}

SEC("tp/syscalls/sys_enter_creat")
int handle_creat_enter(struct trace_event_raw_sys_enter *ctx)
{
	open_enter(AT_FDCWD, (const char *)ctx->args[0], O_CREAT | O_WRONLY | O_TRUNC, ctx->args[1],
		   OPEN_SYSCALL_CREAT);
	return 0;
}
