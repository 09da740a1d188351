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
static __always_inline bool walk_path(struct dentry *dentry, struct vfsmount *vfsmnt, __u8 *tmp, struct dir_path *out)
{
	struct task_struct *task = walk_task();
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
static __always_inline bool dir_of_fd(int dfd, __u8 *tmp, struct dir_path *out)
{
	struct task_struct *task = walk_task();

	if (dfd == AT_FDCWD) {
		struct fs_struct *fs = task->fs;
		return walk_path(fs->pwd.dentry, fs->pwd.mnt, tmp, out);
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
	return walk_path(fpath.dentry, fpath.mnt, tmp, out);
}

#endif /* RTEV_PATH_H */
