/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Maps, filters and helpers shared by every probe family. */
#ifndef RTEV_COMMON_H
#define RTEV_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "events.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define AT_FDCWD -100

/* Set from user space before load (src/ingest/bpf-config.ts writes the same layout). */
struct rtev_config {
	__u32 self_tgid;            /* the collector: never traced */
	__u32 filter_pids;          /* 1: only tgids present in traced_tgids */
	__u32 filter_cgroups;       /* 0: off, 1: allow-list, 2: deny-list (cgroup_filter) */
	__u32 record_failed_opens;  /* 1: also record opens that failed */
	__u32 record_empty_ssl_ops; /* 1: also record SSL calls that moved no bytes */
	__u32 _pad;
	__u64 wakeup_bytes_bulk; /* wake the consumer when this much is pending */
	__u64 wakeup_bytes_rare;
};

const volatile struct rtev_config cfg = {};

/* uprobe session kfuncs (kernel >= 6.13); weak, so the object still loads on older kernels,
 * where the session programs are not loaded (src/ingest/uprobes picks the attach mode) */
extern bool bpf_session_is_return(void) __ksym __weak;
extern __u64 *bpf_session_cookie(void) __ksym __weak;
/*
 * walk_task: the current task, for reading fields and walking pointers from it (the record header,
 * the cgroup ids, the path walk). From bpf_get_current_task_btf() the verifier treats the task as
 * a *trusted* pointer, and for every pointer field loaded through a trusted or RCU pointer it looks
 * up a type named "<struct>__safe_trusted" (and _or_null, __safe_rcu, _or_null) by name in vmlinux
 * BTF: a linear scan of its ~100k types each time, per load and per verifier path, which was most of
 * the programs' load time (handle_openat_exit 0.25-0.58 s of BPF_PROG_LOAD at load 13;
 * docs/benchmarks.md, "Session 5 (h26)"). Cast to an untrusted pointer (bpf_rdonly_cast, Linux
 * >= 6.2) the walk has no lookups; its loads become fault-handled ones (BPF_PROBE_MEM: an address
 * check more per load than the plain loads a trusted pointer gets), so scalar fields of the task
 * itself are still read through bpf_get_current_task_btf() (fill_header), as are the helpers that
 * need a trusted task (bpf_task_pt_regs, task storage). The object built with RTEV_TRUSTED_WALK
 * (build/rtev-compat.bpf.o, for kernels without the kfunc: src/platform/paths.ts) walks the
 * trusted pointer as before.
 */
#ifdef RTEV_TRUSTED_WALK
static __always_inline struct task_struct *walk_task_of(struct task_struct *task)
{
	return task;
}
#else
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
static __always_inline struct task_struct *walk_task_of(struct task_struct *task)
{
	return bpf_rdonly_cast(task, bpf_core_type_id_kernel(struct task_struct));
}

/*
 * kptr / kload_u64: kernel memory read without a helper call, for the path walk (bpf/path.h). The
 * verifier inlines bpf_rdonly_cast (no call: a register move), and a load through the untrusted
 * pointer it gives is a fault-handled plain load (BPF_PROBE_MEM: a faulting address reads as 0),
 * where bpf_probe_read_kernel is a helper call plus copy_from_kernel_nofault's calls, each one dear
 * with this CPU's return-stack mitigations (docs/benchmarks.md, "Session 6 (h32)"). The address is
 * a scalar, so the walk's state holds plain numbers. kload_u64 reads 8 bytes at any kernel address
 * through struct rb_node, whose first member is an unsigned long at offset 0 (present since Linux
 * 2.6; a bpf_rdonly_cast to type 0 would need Linux 6.17).
 */
#define kptr(type, addr) ((type *)bpf_rdonly_cast((void *)(__u64)(addr), bpf_core_type_id_kernel(type)))
static __always_inline __u64 kload_u64(__u64 addr)
{
	return kptr(struct rb_node, addr)->__rb_parent_color;
}
/* kfield_u64: the 8-byte field (a pointer, read as a number) of the kernel struct at addr */
#define kfield_u64(type, addr, field) kload_u64((__u64)(addr) + bpf_core_field_offset(type, field))
#endif
/* walk_task_of(task) is walk_task() for a task got from bpf_get_current_task_btf() once: that is a
 * helper call (not inlined on this kernel), and a recorded open used to make five of them. */
static __always_inline struct task_struct *walk_task(void)
{
	return walk_task_of(bpf_get_current_task_btf());
}

/* File opens: the only high-rate family, in a ring of its own so a storm
 * of opens cannot crowd out execs, connects or TLS records. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events_bulk SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events_rare SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, (PROBE_COUNT * COUNTER_COUNT));
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* Traced processes when cfg.filter_pids: value 1 = this process only,
 * 2 = this process and every descendant forked from now on. */
#define TRACE_SELF 1
#define TRACE_TREE 2
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} traced_tgids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} cgroup_filter SEC(".maps");

/* Per-CPU scratch space where variable-length records are assembled
 * before bpf_ringbuf_output copies the used part into the ring. */
#define SCRATCH_SIZE 16384
#define SCRATCH_MASK (SCRATCH_SIZE - 1)
/* 512 spare bytes so masked offsets plus a bounded length always fit; tmp has 4608: a record
 * (88 bytes + a path of at most 4095) is emitted from a masked offset in it (record.h). */
#define TMP_SIZE 8192
#define TMP_MASK (TMP_SIZE - 1)
struct scratch {
	__u8 rec[SCRATCH_SIZE + 512]
		__attribute__((aligned(8))); /* so word loads at constant offsets are single ones */
	__u8 tmp[TMP_SIZE + 4608];           /* directory paths are assembled here */
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_space SEC(".maps");

/* store_u64: one 8-byte store at any byte offset of a map value. clang splits a store through a
 * pointer it cannot prove aligned into 8 byte stores and shifts (an 88-byte copy was 88 loads and 88
 * stores); x86 needs no alignment and the verifier checks the bounds. */
static __always_inline void store_u64(void *dst, __u64 v)
{
	asm volatile("*(u64 *)(%[d] + 0) = %[v]" ::[d] "r"(dst), [v] "r"(v) : "memory");
}

static __always_inline struct scratch *get_scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch_space, &zero);
}

static __always_inline void count(__u32 probe, __u32 counter)
{
	__u32 key = probe * COUNTER_COUNT + counter;
	__u64 *value = bpf_map_lookup_elem(&stats, &key);
	if (value)
		*value += 1;
}

/* filtered_out: true when the event of (tgid, cgroup) must not be recorded.
 * Checked first in every handler so a filtered event costs a map lookup or two.
 * cgroup_id is the cgroup_filter key: cgroup_filter_key() in deny mode, else the v2 id. */
static __always_inline bool filtered_out(__u32 tgid, __u64 cgroup_id)
{
	if (tgid == cfg.self_tgid)
		return true;
	if (cfg.filter_pids && !bpf_map_lookup_elem(&traced_tgids, &tgid))
		return true;
	if (cfg.filter_cgroups) {
		bool listed = bpf_map_lookup_elem(&cgroup_filter, &cgroup_id) != NULL;
		if (cfg.filter_cgroups == 1 ? !listed : listed)
			return true;
	}
	return false;
}

/* task_cgroup_ids gives the task's cgroup v2 id and, when the task is in the v2 root, the
 * kernfs id of its memory cgroup: on a hybrid host the memory controller is in a v1 hierarchy,
 * where container runtimes using cgroupfs put containers that the v2 id cannot tell apart.
 * The task is read through its BTF pointer: plain loads instead of a helper call per field or a
 * bpf_probe_read_kernel per hop. With the return-stack mitigations of this CPU every helper call
 * is dear, and the header was half of an ssl_op record's cost (docs/benchmarks.md). */
static __always_inline void task_cgroup_ids(struct task_struct *task, __u64 *v2, __u64 *v1)
{
	struct css_set *cgroups = task->cgroups;

	*v2 = cgroups->dfl_cgrp->kn->id;
	*v1 = 0;
	if (*v2 == 1) {
		int index = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
		if (index >= 0 && index < CGROUP_SUBSYS_COUNT) {
			struct cgroup_subsys_state *css = cgroups->subsys[index];
			if (css)
				*v1 = css->cgroup->kn->id;
		}
	}
}

/* The deny list (cfg.filter_cgroups == 2) is keyed as the pipeline keys attribution
 * (src/ingest/cgroup-gate.ts): the v2 id, or for a task in the v2 root that has a v1 memory
 * cgroup (a hybrid host), that cgroup's id with bit 63 set. So user space can deny a host
 * cgroup it decided on, whatever the hierarchy, while new cgroups still pass to it. */
#define CGROUP_V1_KEY (1ULL << 63)
static __always_inline __u64 cgroup_filter_key(__u64 v2, __u64 v1)
{
	return v2 == 1 && v1 != 0 ? (v1 | CGROUP_V1_KEY) : v2;
}

/* task_filtered_out: current_filtered_out for the current task got from bpf_get_current_task_btf()
 * (its tgid a plain load, instead of a bpf_get_current_pid_tgid call) */
static __always_inline bool task_filtered_out(struct task_struct *task)
{
	__u32 tgid = task->tgid;
	__u64 cgroup_id = 0;

	if (cfg.filter_cgroups == 2) {
		__u64 v2, v1;
		task_cgroup_ids(walk_task_of(task), &v2, &v1);
		cgroup_id = cgroup_filter_key(v2, v1);
	} else if (cfg.filter_cgroups) {
		cgroup_id = bpf_get_current_cgroup_id();
	}
	return filtered_out(tgid, cgroup_id);
}

static __always_inline bool current_filtered_out(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 cgroup_id = 0;

	if (cfg.filter_cgroups == 2) {
		__u64 v2, v1;
		task_cgroup_ids(walk_task(), &v2, &v1);
		cgroup_id = cgroup_filter_key(v2, v1);
	} else if (cfg.filter_cgroups) {
		cgroup_id = bpf_get_current_cgroup_id();
	}
	return filtered_out(tgid, cgroup_id);
}

/* fill_header_of: the header of the current task, task = bpf_get_current_task_btf() */
static __always_inline void fill_header_of(struct evt_hdr *hdr, __u32 kind, struct task_struct *task)
{
	/* scalar fields straight from the trusted pointer: plain loads, and no type lookups (those are
	 * for pointer fields); the cgroup pointers through walk_task */
	hdr->ts_ns = bpf_ktime_get_ns();
	task_cgroup_ids(walk_task_of(task), &hdr->cgroup_id, &hdr->cgroup_v1_id);
	hdr->kind = kind;
	hdr->pid = task->tgid;
	hdr->tid = task->pid;
	/* comm is NUL-terminated and zero-padded by the kernel (__set_task_comm) */
#ifndef RTEV_TRUSTED_WALK
	/* two word loads instead of 16 byte loads and stores */
	__u64 comm = (__u64)walk_task_of(task) + bpf_core_field_offset(struct task_struct, comm);
	*(__u64 *)&hdr->comm[0] = kload_u64(comm);
	*(__u64 *)&hdr->comm[8] = kload_u64(comm + 8);
#else
	for (int i = 0; i < RTEV_COMM_LEN; i++)
		hdr->comm[i] = task->comm[i];
#endif
}

static __always_inline void fill_header(struct evt_hdr *hdr, __u32 kind)
{
	fill_header_of(hdr, kind, bpf_get_current_task_btf());
}

/* emit copies size bytes of rec into a ring. Wake-ups are batched: the
 * consumer is woken only when wakeup_bytes are pending (it also polls every
 * 10 ms), which cut the per-event cost by half on this VM
 * (docs/benchmarks.md, "wake-up policy"). The wake-up is forced once, when the
 * pending bytes cross a multiple of wakeup_bytes: forcing it for every record
 * while wakeup_bytes or more were pending (until session 4) also queued an
 * irq_work (a self-IPI) for the records written while the consumer was still
 * draining, 40 times as many (docs/benchmarks.md, "BPF cost per open", session 4). */
static __always_inline void emit(void *ring, void *rec, __u64 size, __u32 probe, __u64 wakeup_bytes)
{
	__u64 pending = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);
	__u64 flags = wakeup_bytes != 0 && pending / wakeup_bytes != (pending + size) / wakeup_bytes
			      ? BPF_RB_FORCE_WAKEUP
			      : BPF_RB_NO_WAKEUP;

	if (size > SCRATCH_SIZE)
		return;
	if (bpf_ringbuf_output(ring, rec, size, flags) == 0)
		count(probe, COUNTER_SUBMITTED);
	else
		count(probe, COUNTER_RING_FULL);
}

static __always_inline void emit_rare(void *rec, __u64 size, __u32 probe)
{
	emit(&events_rare, rec, size, probe, cfg.wakeup_bytes_rare);
}

#endif /* RTEV_COMMON_H */
