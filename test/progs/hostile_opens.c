/*
 * hostile_opens DIR: opens whose recorded paths are hard to get right, for the kernel-side
 * differential test (test/kernel/walk-differential.kernel.test.ts): names of every length around
 * the walk's 8-byte words, up to 255 bytes, invalid UTF-8 and control bytes; paths near and over
 * 4 KiB and deeper than the walk's 64 components; deleted and O_TMPFILE files, a deleted working
 * directory; mount crossings (stacked, nested, bind, lazily unmounted) in a private mount
 * namespace; a chroot with descriptors and a working directory outside it; pseudo files (pipe,
 * memfd, /dev, /proc, /sys). Failed opens too (relative ones get their directory walked).
 * Needs root (mounts, chroot). DIR must be an absolute, canonical path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char base[4096];

static void die(const char *what)
{
	perror(what);
	exit(2);
}

/* o: open and close; a failure is fine (failed opens are recorded too) */
static void o(int dfd, const char *p, int flags)
{
	int fd = openat(dfd, p, flags | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
}

static void touch_at(int dfd, const char *p)
{
	int fd = openat(dfd, p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0)
		die(p);
	close(fd);
}

static int dir_at(int dfd, const char *p)
{
	if (mkdirat(dfd, p, 0755) != 0 && errno != EEXIST)
		die(p);
	int fd = openat(dfd, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		die(p);
	return fd;
}

static void names(int top)
{
	int n = dir_at(top, "n");
	char name[256];
	char abs[8192];
	/* every length around the 8-byte words, and the longest */
	for (int len = 1; len <= 255; len++) {
		if (len > 26 && len < 250 && len % 31 != 0)
			continue;
		memset(name, 'a' + len % 26, len);
		name[len] = 0;
		touch_at(n, name);
		snprintf(abs, sizeof(abs), "%s/n/%s", base, name);
		o(AT_FDCWD, abs, O_RDONLY);
		o(n, name, O_RDONLY);
	}
	static const char *odd[] = { "\xff\xfe", "caf\xc3\xa9", "\xc3\x28", "a\nb", "t\tab", "\x01\x7f",  "sp ace",
				     "q\"uo'te", "back\\slash", "\xe2\x82",  "\xed\xa0\x80", "x\x1b[31m", "-" };
	for (unsigned i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		touch_at(n, odd[i]);
		snprintf(abs, sizeof(abs), "%s/n/%s", base, odd[i]);
		o(AT_FDCWD, abs, O_RDONLY);
		o(n, odd[i], O_RDONLY);
		snprintf(abs, sizeof(abs), "%s/n/%s.missing", base, odd[i]);
		o(AT_FDCWD, abs, O_RDONLY);
	}
	if (fchdir(n) != 0)
		die("fchdir");
	o(AT_FDCWD, "aaaaaaaaaaaaaaaaaaaaaaaaaa", O_RDONLY); /* len 26 */
	o(AT_FDCWD, "./\xff\xfe", O_RDONLY);
	o(AT_FDCWD, "missing-\xff", O_RDONLY);
	o(AT_FDCWD, ".", O_RDONLY | O_DIRECTORY);
	o(AT_FDCWD, "..", O_RDONLY | O_DIRECTORY);
	close(n);
}

/* paths around 4 KiB: 200-byte components, then siblings making the file's path 4093..4098 bytes */
static void deep(int top)
{
	int d = dir_at(top, "deep");
	size_t len = strlen(base) + strlen("/deep");
	char comp[256];
	memset(comp, 'D', 200);
	comp[200] = 0;
	while (len + 201 <= 4089) {
		int next = dir_at(d, comp);
		close(d);
		d = next;
		len += 201;
		touch_at(d, "f");
		o(d, "f", O_RDONLY);
		o(d, "missing", O_RDONLY);
	}
	for (size_t target = 4093; target <= 4098; target++) {
		size_t x = target - len - 3; /* len + "/" + x + "/f" */
		char name[256];
		memset(name, 'a' + (int)(target % 26), x);
		name[x] = 0;
		int sub = dir_at(d, name);
		o(sub, "f", O_CREAT | O_WRONLY);
		o(sub, "missing", O_RDONLY);
		o(sub, ".", O_RDONLY | O_DIRECTORY);
		close(sub);
	}
	close(d);
	/* more components than the walk follows (64) */
	int m = dir_at(top, "many");
	for (int i = 0; i < 70; i++) {
		int next = dir_at(m, "d");
		close(m);
		m = next;
		if (i >= 58) {
			o(m, "f", O_CREAT | O_WRONLY);
			o(m, "missing", O_RDONLY);
		}
	}
	close(m);
}

static void deleted(int top)
{
	char p[4200];
	int fd = openat(top, "del", O_CREAT | O_RDWR | O_CLOEXEC, 0644);
	if (fd < 0)
		die("del");
	unlinkat(top, "del", 0);
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	o(AT_FDCWD, p, O_RDONLY); /* the deleted file itself */
	close(fd);
	o(top, ".", O_TMPFILE | O_RDWR);
	/* a deleted working directory: a relative open's directory */
	int g = dir_at(top, "gone");
	if (fchdir(g) != 0)
		die("fchdir gone");
	unlinkat(top, "gone", AT_REMOVEDIR);
	o(AT_FDCWD, "x", O_RDONLY);
	o(g, "y", O_RDONLY);
	close(g);
	if (chdir(base) != 0)
		die("chdir");
}

static void mounts(int top)
{
	if (unshare(CLONE_NEWNS) != 0)
		die("unshare");
	if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		die("make-private");
	char p[4200], q[4200];
	snprintf(p, sizeof(p), "%s/m1", base);
	close(dir_at(top, "m1"));
	if (mount("t1", p, "tmpfs", 0, NULL) != 0)
		die("mount m1");
	int m1 = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	touch_at(m1, "f");
	snprintf(q, sizeof(q), "%s/m1/f", base);
	o(AT_FDCWD, q, O_RDONLY);
	o(AT_FDCWD, p, O_RDONLY | O_DIRECTORY); /* a mount's root */
	o(m1, "missing", O_RDONLY);
	close(dir_at(m1, "m2"));
	snprintf(q, sizeof(q), "%s/m1/m2", base);
	if (mount("t2", q, "tmpfs", 0, NULL) != 0)
		die("mount m2");
	snprintf(q, sizeof(q), "%s/m1/m2/f", base);
	o(AT_FDCWD, q, O_CREAT | O_WRONLY);
	o(AT_FDCWD, q, O_RDONLY);
	/* stacked: a second tmpfs over m1 hides the first; m1 (the fd) still reaches the lower one */
	if (mount("t3", p, "tmpfs", 0, NULL) != 0)
		die("mount m1 again");
	snprintf(q, sizeof(q), "%s/m1/g", base);
	o(AT_FDCWD, q, O_CREAT | O_WRONLY);
	o(m1, "f", O_RDONLY);
	o(m1, "m2/f", O_RDONLY);
	close(m1);
	/* bind mount of a directory */
	snprintf(p, sizeof(p), "%s/n", base);
	snprintf(q, sizeof(q), "%s/bind", base);
	close(dir_at(top, "bind"));
	if (mount(p, q, NULL, MS_BIND, NULL) != 0)
		die("bind");
	snprintf(q, sizeof(q), "%s/bind/\xff\xfe", base);
	o(AT_FDCWD, q, O_RDONLY);
	snprintf(q, sizeof(q), "%s/bind/missing", base);
	o(AT_FDCWD, q, O_RDONLY);
	/* lazily unmounted while a descriptor holds it: a detached mount */
	snprintf(p, sizeof(p), "%s/lazy", base);
	close(dir_at(top, "lazy"));
	if (mount("t4", p, "tmpfs", 0, NULL) != 0)
		die("mount lazy");
	int lz = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(dir_at(lz, "sub"));
	int lzsub = openat(lz, "sub", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (umount2(p, MNT_DETACH) != 0)
		die("umount lazy");
	o(lz, "f", O_CREAT | O_WRONLY);
	o(lz, "missing", O_RDONLY);
	o(lzsub, "g", O_CREAT | O_WRONLY);
	o(lzsub, "missing", O_RDONLY);
	if (fchdir(lzsub) != 0)
		die("fchdir lazy");
	o(AT_FDCWD, "h", O_CREAT | O_WRONLY);
	o(AT_FDCWD, "missing", O_RDONLY);
	if (chdir(base) != 0)
		die("chdir");
	close(lzsub);
	close(lz);
}

static void chrooted(int top)
{
	int r = dir_at(top, "root");
	int etc = dir_at(r, "etc");
	touch_at(etc, "f");
	close(etc);
	close(r);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		char p[4200];
		snprintf(p, sizeof(p), "%s/root", base);
		int outside = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		/* chroot without chdir: the working directory is outside the root */
		if (chroot(p) != 0)
			die("chroot");
		o(AT_FDCWD, "/etc/f", O_RDONLY);
		o(AT_FDCWD, "n/\xff\xfe", O_RDONLY);  /* relative to the cwd outside the root */
		o(AT_FDCWD, "missing", O_RDONLY);
		o(outside, "n/-", O_RDONLY);          /* a file outside the root */
		o(outside, "n/missing", O_RDONLY);
		if (chdir("/") != 0)
			die("chdir /");
		o(AT_FDCWD, "/etc/f", O_RDONLY);
		o(AT_FDCWD, "etc/f", O_RDONLY);
		o(AT_FDCWD, "../../etc/f", O_RDONLY);
		o(AT_FDCWD, "/", O_RDONLY | O_DIRECTORY);
		o(AT_FDCWD, "etc/missing", O_RDONLY);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		exit(3);
}

static void pseudo(void)
{
	char p[64];
	int pfd[2];
	if (pipe(pfd) != 0)
		die("pipe");
	snprintf(p, sizeof(p), "/proc/self/fd/%d", pfd[0]);
	o(AT_FDCWD, p, O_RDONLY | O_NONBLOCK);
	close(pfd[0]);
	close(pfd[1]);
	int mfd = memfd_create("rtev-memfd", MFD_CLOEXEC);
	if (mfd >= 0) {
		snprintf(p, sizeof(p), "/proc/self/fd/%d", mfd);
		o(AT_FDCWD, p, O_RDONLY);
		close(mfd);
	}
	o(AT_FDCWD, "/dev/null", O_RDONLY);
	o(AT_FDCWD, "/proc/self/status", O_RDONLY);
	o(AT_FDCWD, "/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY);
	o(AT_FDCWD, "/", O_RDONLY | O_DIRECTORY);
	o(AT_FDCWD, "/tmp/../etc/hostname", O_RDONLY);
}

int main(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] != '/')
		return 1;
	snprintf(base, sizeof(base), "%s", argv[1]);
	int top = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (top < 0 || chdir(base) != 0)
		die(base);
	names(top);
	deep(top);
	deleted(top);
	pseudo();
	chrooted(top);
	mounts(top); /* last: it leaves this process in its own mount namespace */
	return 0;
}
