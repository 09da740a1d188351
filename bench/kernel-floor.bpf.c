/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Programs for bench/kernel-floor.bench.ts only (never loaded by rtev): the floor of what a
 * syscall hook costs on this kernel, next to rtev's own file_open programs, and ring-buffer
 * writes under different wake-up policies (docs/benchmarks.md, "BPF cost per open", session 4).
 * Built by the bench itself: clang -target bpf -D__TARGET_ARCH_x86 -g -O2 -Ibuild -Ibpf.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* x86-64 syscall numbers of the four open syscalls */
#define NR_OPEN 2
#define NR_CREAT 85
#define NR_OPENAT 257
#define NR_OPENAT2 437

static __always_inline bool is_open_nr(long nr)
{
	return nr == NR_OPENAT || nr == NR_OPEN || nr == NR_OPENAT2 || nr == NR_CREAT;
}

/* opens seen by the raw programs: keeps the compiler from dropping the syscall-number check */
__u64 open_hits = 0;

/* --- the machinery alone: empty programs ------------------------------------------------- */

/* on a syscall the storm never makes: every task gets the syscall-tracepoint slow path, and
 * every syscall's entry/exit calls perf_syscall_enter/_exit, which returns at its bitmap test */
SEC("tp/syscalls/sys_enter_getppid")
int floor_other_enter(void *ctx) { return 0; }
SEC("tp/syscalls/sys_exit_getppid")
int floor_other_exit(void *ctx) { return 0; }

/* the per-syscall tracepoints of openat (the perf record of the arguments is built per hit) */
SEC("tp/syscalls/sys_enter_openat")
int floor_tp_enter(void *ctx) { return 0; }
SEC("tp/syscalls/sys_exit_openat")
int floor_tp_exit(void *ctx) { return 0; }

/* the raw sys_enter/sys_exit tracepoints: no perf record, but every syscall of the host runs them */
SEC("raw_tp/sys_enter")
int floor_raw_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (is_open_nr(ctx->args[1]))
		open_hits++;
	return 0;
}
SEC("raw_tp/sys_exit")
int floor_raw_exit(struct bpf_raw_tracepoint_args *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
	if (is_open_nr(BPF_CORE_READ(regs, orig_ax)))
		open_hits++;
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(floor_btf_enter, struct pt_regs *regs, long id)
{
	if (is_open_nr(id))
		open_hits++;
	return 0;
}
SEC("tp_btf/sys_exit")
int BPF_PROG(floor_btf_exit, struct pt_regs *regs, long ret)
{
	if (is_open_nr(regs->orig_ax))
		open_hits++;
	return 0;
}

/* --- a pid filter that fails, as rtev's filtered-out open does ---------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} pids SEC(".maps");

SEC("tp/syscalls/sys_enter_openat")
int floor_tp_enter_pid(void *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&pids, &tgid))
		return 0;
	return 0;
}
SEC("tp_btf/sys_exit")
int BPF_PROG(floor_btf_exit_pid, struct pt_regs *regs, long ret)
{
	if (!is_open_nr(regs->orig_ax))
		return 0;
	/* the tgid through the task's BTF pointer: a load, no helper call */
	__u32 tgid = bpf_get_current_task_btf()->tgid;
	if (!bpf_map_lookup_elem(&pids, &tgid))
		return 0;
	return 0;
}

/* exit only, on the per-syscall tracepoint: the arguments from the task's saved user registers
 * (bpf_task_pt_regs), no enter program; the pid filter first */
__u64 last_path = 0;
SEC("tp/syscalls/sys_exit_openat")
int floor_tp_exit_pid(void *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 tgid = task->tgid;
	if (!bpf_map_lookup_elem(&pids, &tgid))
		return 0;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	last_path = regs->si;
	return 0;
}

/* --- ring writes ---------------------------------------------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} ring SEC(".maps");

/* knobs[0] record size (8..1024), [1] wake-up threshold in bytes, [2] policy:
 * 0 default wake-ups (the kernel wakes when the consumer had caught up),
 * 1 rtev's until session 4: forced wake-up whenever pending + size >= threshold,
 * 2 forced wake-up only when pending crosses a multiple of the threshold,
 * 3 never (the consumer's 10 ms poll timeout only),
 * 4 forced wake-up when this CPU's own count of bytes written crosses a multiple of the threshold
 *   (no bpf_ringbuf_query: no read of the consumer's position),
 * 5 no ring write at all (the record is built, counted as submitted, not sent: the floor of the others) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} knobs SEC(".maps");

/* counters[0] submitted, [1] ring full, [2] forced wake-ups asked */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct scratch {
	__u8 rec[1024];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_space SEC(".maps");

/* policy 4: bytes written per CPU */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} written SEC(".maps");

static __always_inline __u64 knob(__u32 k)
{
	__u64 *v = bpf_map_lookup_elem(&knobs, &k);
	return v ? *v : 0;
}

static __always_inline void bump(__u32 k)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline __u64 wake_flags(__u64 size)
{
	__u64 policy = knob(2), threshold = knob(1);
	if (policy == 0 || threshold == 0)
		return 0;
	if (policy == 3)
		return BPF_RB_NO_WAKEUP;
	if (policy == 4) {
		__u32 zero = 0;
		__u64 *w = bpf_map_lookup_elem(&written, &zero);
		if (!w)
			return BPF_RB_NO_WAKEUP;
		__u64 before = *w;
		*w = before + size;
		if (before / threshold == (before + size) / threshold)
			return BPF_RB_NO_WAKEUP;
		bump(2);
		return BPF_RB_FORCE_WAKEUP;
	}
	__u64 pending = bpf_ringbuf_query(&ring, BPF_RB_AVAIL_DATA);
	bool wake = policy == 1 ? pending + size >= threshold : pending / threshold != (pending + size) / threshold;
	if (wake)
		bump(2);
	return wake ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* a record assembled in per-CPU scratch, then copied into the ring (as rtev's emit does) */
SEC("tp/syscalls/sys_exit_openat")
int floor_ring_output(void *ctx)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch_space, &zero);
	if (!s)
		return 0;
	__u64 size = knob(0) & 1023;
	if (size < 8)
		size = 8;
	*(__u64 *)s->rec = bpf_ktime_get_ns();
	if (knob(2) == 5) {
		bump(0);
		return 0;
	}
	__u64 flags = wake_flags(size);
	if (bpf_ringbuf_output(&ring, s->rec, size, flags) == 0)
		bump(0);
	else
		bump(1);
	return 0;
}

/* a fixed 128-byte record written in place (reserve/submit, no copy) */
SEC("tp/syscalls/sys_exit_openat")
int floor_ring_reserve(void *ctx)
{
	__u64 flags = wake_flags(128);
	__u64 *rec = bpf_ringbuf_reserve(&ring, 128, 0);
	if (!rec) {
		bump(1);
		return 0;
	}
	rec[0] = bpf_ktime_get_ns();
	bpf_ringbuf_submit(rec, flags);
	bump(0);
	return 0;
}
