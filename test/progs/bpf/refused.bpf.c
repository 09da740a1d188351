// SPDX-License-Identifier: GPL-2.0
/*
 * A BPF program the verifier refuses, with a long verifier log: a few thousand
 * straight-line instructions (each printed in the log at log level 1) and then a
 * dereference of a scalar. libbpf hands the whole log to the addon's print callback
 * as one message of a few hundred KiB (test/kernel/addon.kernel.test.ts).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tracepoint/syscalls/sys_enter_getppid")
int refused(void *ctx)
{
	volatile __u64 acc = 0;
#pragma unroll
	for (int i = 0; i < 3000; i++)
		acc += i * 7;
	/* a number is not a pointer: "R1 invalid mem access 'scalar'" */
	return *(volatile int *)(unsigned long)acc;
}

char LICENSE[] SEC("license") = "GPL";
