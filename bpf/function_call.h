/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * function_call: an entry uprobe on a user-chosen function (rtev collect --function),
 * attached by src/ingest/function-probes.ts once per (file, offset) with the target's
 * index as the bpf cookie. The record carries the function's runtime address, the
 * cookie and the user stack, innermost first:
 *   frame 0: the return address at *sp (read at entry, so the immediate caller is never
 *            missing even when the probed function has no frame yet);
 *   frame 1..: a frame-pointer walk from rbp, which at entry is still the CALLER's frame
 *            pointer: [rbp] = saved rbp, [rbp+8] = the caller's return address.
 * The walk stops at a zero/non-increasing frame pointer or a zero return address (the
 * outermost frame), at an unreadable frame (STACK_BROKEN), or after RTEV_STACK_MAX
 * frames when more were there (STACK_TRUNCATED).
 */
#ifndef RTEV_FUNCTION_CALL_H
#define RTEV_FUNCTION_CALL_H

#include "common.h"

#define FC_STACK_MASK (RTEV_STACK_MAX - 1)

struct fc_walk {
	__u64 fp;    /* frame pointer of the next frame to read */
	__u64 first; /* frame 0 (the return address at *sp) */
	__u32 n;     /* frames written */
	__u16 flags; /* STACK_* */
};

/* One frame of the walk; run through bpf_loop so the verifier checks the body once. */
static long fc_step(__u32 index, struct fc_walk *w)
{
	struct scratch *s = get_scratch();
	__u64 frame[2]; /* saved rbp, return address */

	if (!s)
		return 1;
	if (bpf_probe_read_user(frame, sizeof(frame), (void *)w->fp)) {
		w->flags |= STACK_BROKEN;
		return 1;
	}
	if (frame[1] == 0)
		return 1; /* the outermost frame */
	/* when the caller has no frame of its own, rbp's return address is the caller's again */
	if (!(w->n == 1 && frame[1] == w->first)) {
		if (w->n >= RTEV_STACK_MAX) {
			w->flags |= STACK_TRUNCATED;
			return 1;
		}
		__u32 n = w->n & FC_STACK_MASK;
		*(__u64 *)&s->rec[sizeof(struct evt_function_call) + n * 8] = frame[1];
		w->n = n + 1;
	}
	if (frame[0] == 0)
		return 1; /* _start and thread entry points clear rbp */
	if (frame[0] <= w->fp) {
		w->flags |= STACK_BROKEN; /* not a frame-pointer chain (stacks grow down) */
		return 1;
	}
	w->fp = frame[0];
	return 0;
}

static __always_inline int function_entry(struct pt_regs *ctx, bool with_stack)
{
	if (current_filtered_out()) {
		count(PROBE_FUNCTION_CALL, COUNTER_FILTERED);
		return 0;
	}
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	struct evt_function_call *e = (struct evt_function_call *)s->rec;
	fill_header(&e->hdr, EVT_FUNCTION_CALL);
	/* on x86 the uprobe handler runs with ip already set back to the probed address */
	e->ip = PT_REGS_IP(ctx);
	e->cookie = bpf_get_attach_cookie(ctx);
	e->stack_flags = 0;
	e->_pad = 0;

	struct fc_walk w = { .fp = PT_REGS_FP(ctx), .n = 0, .flags = 0 };
	__u64 sp = PT_REGS_SP(ctx);
	if (with_stack && bpf_probe_read_user(&w.first, sizeof(w.first), (void *)sp) == 0 && w.first != 0) {
		*(__u64 *)&s->rec[sizeof(struct evt_function_call)] = w.first;
		w.n = 1;
		/* the caller's frame lies above sp: anything else in rbp is not a frame pointer */
		if (w.fp > sp)
			bpf_loop(RTEV_STACK_MAX, fc_step, &w, 0);
		else if (w.fp != 0)
			w.flags |= STACK_BROKEN;
	} else if (with_stack) {
		w.flags |= STACK_BROKEN;
	}
	__u32 n = w.n;
	if (n > RTEV_STACK_MAX)
		n = RTEV_STACK_MAX;
	e->stack_len = n;
	e->stack_flags = w.flags;
	__u64 size = sizeof(struct evt_function_call) + (__u64)n * 8;
	e->hdr.size = size;
	emit_rare(e, size, PROBE_FUNCTION_CALL);
	return 0;
}

SEC("uprobe")
int handle_function_entry(struct pt_regs *ctx)
{
	return function_entry(ctx, true);
}

/* For bench/function.bench.ts: the same record without the stack. */
SEC("uprobe")
int rtev_function_entry_nostack(struct pt_regs *ctx)
{
	return function_entry(ctx, false);
}

#endif /* RTEV_FUNCTION_CALL_H */
