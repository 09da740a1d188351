/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Directory path of a struct path, built by walking dentries up to the task's
 * root the way d_path() does (bpf_d_path is not allowed for tracepoints).
 * Used for the path of an opened file (canonical: no `.`, `..`, `//` or symlink)
 * and for the directory a relative open was resolved against.
 */
#ifndef RTEV_PATH_H
#define RTEV_PATH_H

#include "common.h"

#define PATH_WALK_DEPTH 64
#define NAME_MASK 255

/* A directory path assembled right to left at the end of tmp. */
struct dir_path {
	__u32 start; /* first byte in tmp */
	__u32 len;
	__u16 flags;   /* DIR_INCOMPLETE */
	bool at_root;  /* the walk ended at the task's root (not at a detached or internal mount) */
	bool unlinked; /* the dentry is unhashed (deleted, O_TMPFILE) */
};

#ifndef RTEV_TRUSTED_WALK
/*
 * The walk without helper calls (the main object): every pointer and name read is a fault-handled
 * load through bpf_rdonly_cast (common.h kptr, kload_u64) where the reference walk below (the compat
 * object, RTEV_TRUSTED_WALK, for kernels without bpf_rdonly_cast) calls bpf_probe_read_kernel per
 * dentry hop, per name, per mount crossing and for the descriptor table: about 12 helper calls for a
 * 3-component path, most of what a recorded open cost above the ring write (docs/benchmarks.md,
 * "Session 6 (h32)"). Both give the same bytes: test/kernel/walk-differential.kernel.test.ts runs
 * the two objects side by side on hostile paths. A faulting load reads as 0: a zero pointer, or a
 * zero byte in a name (names never hold one), fails the walk as a failed helper read did, so the
 * caller falls back to the path as passed; nothing wrong is recorded.
 */
struct walk_state {
	__u64 dentry;
	__u64 vfsmnt;
	__u64 mnt;
	__u64 mnt_parent;
	__u64 mnt_root;
	__u64 root_dentry;
	__u64 root_mnt;
	__u32 pos;
	bool complete;
	bool at_root;
	bool failed;
};

#define ONES_U64 0x0101010101010101ULL
#define HIGHS_U64 0x8080808080808080ULL
/* a name of up to NAME_WORDS * 8 bytes is copied 8 bytes at a time, a longer one by a helper call */
#ifndef NAME_WORDS
#define NAME_WORDS 4
#endif

/* One step up the tree, run through bpf_loop (the verifier checks the body once). */
static long walk_step(__u32 index, struct walk_state *w)
{
	struct scratch *s = get_scratch();
	if (!s) {
		w->failed = true;
		return 1;
	}
	__u64 dentry = w->dentry;
	if (dentry == w->root_dentry && w->vfsmnt == w->root_mnt) {
		w->complete = true;
		w->at_root = true;
		return 1;
	}
	__u64 parent = kfield_u64(struct dentry, dentry, d_parent);
	if (!parent) {
		w->failed = true;
		return 1;
	}
	if (dentry == w->mnt_root || dentry == parent) {
		if (w->mnt != w->mnt_parent) {
			/* cross to the mount this one is mounted on */
			__u64 mountpoint = kfield_u64(struct mount, w->mnt, mnt_mountpoint);
			__u64 mnt = w->mnt_parent;
			w->dentry = mountpoint;
			w->mnt = mnt;
			w->mnt_parent = kfield_u64(struct mount, mnt, mnt_parent);
			w->vfsmnt = mnt + bpf_core_field_offset(struct mount, mnt);
			w->mnt_root = kfield_u64(struct mount, mnt, mnt.mnt_root);
			if (!mountpoint || !w->mnt_parent || !w->mnt_root) {
				w->failed = true;
				return 1;
			}
			return 0;
		}
		w->complete = true; /* the root of the mount namespace */
		return 1;
	}
	struct dentry *d = kptr(struct dentry, dentry);
	__u32 len = d->d_name.len & NAME_MASK;
	__u64 name = kfield_u64(struct dentry, dentry, d_name.name);
	if (w->pos < len + 1 + (TMP_SIZE - RTEV_DIR_MAX + 1))
		return 1; /* would exceed RTEV_DIR_MAX - 1 bytes */
	__u32 pos = w->pos - (len + 1);
	if (len > NAME_WORDS * 8) {
		/* a long name: one helper call (a loop of loads this long costs the verifier more) */
		if (bpf_probe_read_kernel(&s->tmp[(pos + 1) & TMP_MASK], len, (void *)name)) {
			w->failed = true;
			return 1;
		}
	} else {
		/* the name 8 bytes at a time, right-aligned to its end: the first word read may begin
		 * before the name (inside the dentry or the external name's header) and be stored
		 * below pos, where the '/' and the components above overwrite it; those bytes are left
		 * out of the check. A name pointer of 0 reads as zeros, so it fails like the reference
		 * walk's read of it */
		__u64 zero = 0;
		for (int i = 0; i < NAME_WORDS; i++) {
			int k = (int)len - 8 * i; /* the word ends at name[k] */
			if (k <= 0)
				break;
			__u64 v = kload_u64(name + k - 8);
			store_u64(&s->tmp[(pos + 1 + k - 8) & TMP_MASK], v);
			if (k < 8)
				v |= (1ULL << ((8 - k) * 8)) - 1;
			zero |= (v - ONES_U64) & ~v & HIGHS_U64;
		}
		if (zero) {
			w->failed = true; /* a zero byte: a faulting read */
			return 1;
		}
	}
	s->tmp[pos & TMP_MASK] = '/';
	w->pos = pos;
	w->dentry = parent;
	return 0;
}

/* walk_path writes the path of (dentry, vfsmnt) into the tail of tmp.
 * Returns false when nothing usable was read. */
/* cur: the current task, from bpf_get_current_task_btf() */
static __always_inline bool walk_path(struct task_struct *cur, struct dentry *dentry, struct vfsmount *vfsmnt,
				      __u8 *tmp, struct dir_path *out)
{
	__u64 fs = kfield_u64(struct task_struct, walk_task_of(cur), fs);
	__u64 mnt = (__u64)vfsmnt - bpf_core_field_offset(struct mount, mnt);
	struct walk_state w = {
		.dentry = (__u64)dentry,
		.vfsmnt = (__u64)vfsmnt,
		.mnt = mnt,
		.mnt_parent = kfield_u64(struct mount, mnt, mnt_parent),
		.mnt_root = kfield_u64(struct vfsmount, vfsmnt, mnt_root),
		.root_dentry = kfield_u64(struct fs_struct, fs, root.dentry),
		.root_mnt = kfield_u64(struct fs_struct, fs, root.mnt),
		.pos = TMP_SIZE,
	};
	if (!dentry || !vfsmnt)
		return false;

	bpf_loop(PATH_WALK_DEPTH, walk_step, &w, 0);
	if (w.failed)
		return false;
	if (w.pos == TMP_SIZE) {
		/* the root directory itself */
		w.pos -= 1;
		tmp[w.pos & TMP_MASK] = '/';
	}
	out->start = w.pos;
	out->len = TMP_SIZE - w.pos;
	out->flags = w.complete ? 0 : DIR_INCOMPLETE;
	out->at_root = w.at_root;
	out->unlinked = kfield_u64(struct dentry, dentry, d_hash.pprev) == 0;
	return true;
}

/* dir_of_fd: the path of the file open as fd (a directory for dfd), or of the cwd for AT_FDCWD. */
static __always_inline bool dir_of_fd(struct task_struct *cur, int dfd, __u8 *tmp, struct dir_path *out)
{
	struct task_struct *task = walk_task_of(cur);

	if (dfd == AT_FDCWD) {
		__u64 fs = kfield_u64(struct task_struct, task, fs);
		if (!fs)
			return false;
		return walk_path(cur, (struct dentry *)kfield_u64(struct fs_struct, fs, pwd.dentry),
				 (struct vfsmount *)kfield_u64(struct fs_struct, fs, pwd.mnt), tmp, out);
	}
	if (dfd < 0)
		return false;
	__u64 files = kfield_u64(struct task_struct, task, files);
	if (!files)
		return false;
	__u64 fdt = kfield_u64(struct files_struct, files, fdt);
	if (!fdt || (unsigned int)dfd >= kptr(struct fdtable, fdt)->max_fds)
		return false;
	__u64 fds = kfield_u64(struct fdtable, fdt, fd);
	__u64 file = fds ? kload_u64(fds + (__u64)(unsigned int)dfd * sizeof(void *)) : 0;
	if (!file)
		return false;
	return walk_path(cur, (struct dentry *)kfield_u64(struct file, file, f_path.dentry),
			 (struct vfsmount *)kfield_u64(struct file, file, f_path.mnt), tmp, out);
}

#else /* the reference walk, with helper calls (the compat object) */

struct walk_state {
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	struct mount *mnt_parent;
	struct dentry *mnt_root;
	struct dentry *root_dentry;
	struct vfsmount *root_mnt;
	__u32 pos;
	bool complete;
	bool at_root;
	bool failed;
};

/* One step up the tree. Run through bpf_loop so the verifier checks the
 * body once instead of once per unrolled iteration (which exceeds its limit). */
static long walk_step(__u32 index, struct walk_state *w)
{
	struct scratch *s = get_scratch();
	if (!s) {
		w->failed = true;
		return 1;
	}
	/* BPF_CORE_READ must see kernel types only, so copy out of w first */
	struct dentry *dentry = w->dentry;
	struct mount *mnt = w->mnt;
	if (dentry == w->root_dentry && w->vfsmnt == w->root_mnt) {
		w->complete = true;
		w->at_root = true;
		return 1;
	}
	/* d_parent and d_name are adjacent in struct dentry: one read for both where the
	 * running kernel's BTF says so (helper calls are the walk's cost) */
	struct {
		struct dentry *parent;
		struct qstr name;
	} pn;
	if (bpf_core_field_offset(struct dentry, d_name) ==
	    bpf_core_field_offset(struct dentry, d_parent) + sizeof(void *)) {
		if (bpf_probe_read_kernel(&pn, sizeof(pn),
					  (void *)dentry + bpf_core_field_offset(struct dentry, d_parent))) {
			w->failed = true;
			return 1;
		}
	} else {
		pn.parent = BPF_CORE_READ(dentry, d_parent);
		pn.name = BPF_CORE_READ(dentry, d_name);
	}
	struct dentry *parent = pn.parent;
	if (dentry == w->mnt_root || dentry == parent) {
		if (mnt != w->mnt_parent) {
			/* cross to the mount this one is mounted on */
			w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = w->mnt_parent;
			w->mnt = mnt;
			w->mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
			w->vfsmnt = &mnt->mnt;
			w->mnt_root = BPF_CORE_READ(mnt, mnt.mnt_root);
			return 0;
		}
		w->complete = true; /* the root of the mount namespace */
		return 1;
	}
	struct qstr name = pn.name;
	__u32 len = name.len & NAME_MASK;
	if (w->pos < len + 1 + (TMP_SIZE - RTEV_DIR_MAX + 1))
		return 1; /* would exceed RTEV_DIR_MAX - 1 bytes */
	__u32 pos = w->pos - (len + 1);
	if (bpf_probe_read_kernel(&s->tmp[(pos + 1) & TMP_MASK], len, name.name)) {
		w->failed = true;
		return 1;
	}
	s->tmp[pos & TMP_MASK] = '/';
	w->pos = pos;
	w->dentry = parent;
	return 0;
}

/* walk_path writes the path of (dentry, vfsmnt) into the tail of tmp.
 * Returns false when nothing usable was read. */
static __always_inline bool walk_path(struct task_struct *cur, struct dentry *dentry, struct vfsmount *vfsmnt,
				      __u8 *tmp, struct dir_path *out)
{
	struct task_struct *task = walk_task_of(cur);
	/* plain loads through the task's BTF pointer, as for the record header */
	struct fs_struct *fs = task->fs;
	struct walk_state w = {
		.dentry = dentry,
		.vfsmnt = vfsmnt,
		.mnt = container_of(vfsmnt, struct mount, mnt),
		.root_dentry = fs->root.dentry,
		.root_mnt = fs->root.mnt,
		.pos = TMP_SIZE,
	};
	struct mount *mnt = w.mnt;
	w.mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
	w.mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);

	bpf_loop(PATH_WALK_DEPTH, walk_step, &w, 0);
	if (w.failed)
		return false;
	if (w.pos == TMP_SIZE) {
		/* the root directory itself */
		w.pos -= 1;
		tmp[w.pos & TMP_MASK] = '/';
	}
	out->start = w.pos;
	out->len = TMP_SIZE - w.pos;
	out->flags = w.complete ? 0 : DIR_INCOMPLETE;
	out->at_root = w.at_root;
	out->unlinked = BPF_CORE_READ(dentry, d_hash.pprev) == NULL;
	return true;
}

/* dir_of_fd: the path of the file open as fd (a directory for dfd), or of the cwd for AT_FDCWD. */
static __always_inline bool dir_of_fd(struct task_struct *cur, int dfd, __u8 *tmp, struct dir_path *out)
{
	struct task_struct *task = walk_task_of(cur);

	if (dfd == AT_FDCWD) {
		struct fs_struct *fs = task->fs;
		return walk_path(cur, fs->pwd.dentry, fs->pwd.mnt, tmp, out);
	}
	if (dfd < 0)
		return false;
	struct fdtable *fdt = task->files->fdt;
	if ((unsigned int)dfd >= fdt->max_fds)
		return false;
	struct file **fds = fdt->fd;
	struct file *file = NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[dfd]) || !file)
		return false;
	struct path fpath;
	if (bpf_probe_read_kernel(&fpath, sizeof(fpath), (void *)file + bpf_core_field_offset(struct file, f_path)))
		return false;
	return walk_path(cur, fpath.dentry, fpath.mnt, tmp, out);
}

#endif /* RTEV_TRUSTED_WALK */

#endif /* RTEV_PATH_H */
