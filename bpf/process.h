/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * process_exec from sched_process_exec, plus the fork/exit bookkeeping that
 * makes the subtree filter follow descendants.
 */
#include "common.h"

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
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();

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
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	bpf_map_delete_elem(&traced_tgids, &tgid);
	return 0;
}
