/* Fileless and unusual executions for test/kernel/exec-fileless.kernel.test.ts:
 *   exec-fileless memfd          memfd_create("rtev-memfd") + /bin/true's bytes + fexecve
 *   exec-fileless empty          execveat(open("/bin/true"), "", AT_EMPTY_PATH)
 *   exec-fileless deleted DIR    copy of /bin/true in DIR, opened, unlinked, fexecve
 *   exec-fileless selfexe        re-exec of itself through /proc/self/exe
 * Each new image gets a distinctive argv[0]. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

static void copy_true(int out)
{
	int in = open("/bin/true", O_RDONLY);
	if (in < 0) { perror("open /bin/true"); exit(2); }
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, n) != n) { perror("write"); exit(2); }
	close(in);
}

int main(int argc, char **argv)
{
	if (argc < 2) { fprintf(stderr, "usage\n"); return 2; }
	const char *mode = argv[1];
	if (!strcmp(mode, "done"))
		return 0;
	if (!strcmp(mode, "memfd")) {
		int fd = memfd_create("rtev-memfd", MFD_CLOEXEC);
		if (fd < 0) { perror("memfd_create"); return 2; }
		copy_true(fd);
		char *args[] = { "rtev-memfd-true", NULL };
		fexecve(fd, args, environ);
		perror("fexecve memfd");
		return 2;
	}
	if (!strcmp(mode, "empty")) {
		int fd = open("/bin/true", O_RDONLY | O_CLOEXEC);
		if (fd < 0) { perror("open"); return 2; }
		char *args[] = { "rtev-empty-true", NULL };
		syscall(SYS_execveat, fd, "", args, environ, AT_EMPTY_PATH);
		perror("execveat");
		return 2;
	}
	if (!strcmp(mode, "deleted") && argc > 2) {
		char path[4096];
		snprintf(path, sizeof path, "%s/rtev-deleted-true", argv[2]);
		int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
		if (out < 0) { perror("create copy"); return 2; }
		copy_true(out);
		close(out);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) { perror("open copy"); return 2; }
		if (unlink(path)) { perror("unlink"); return 2; }
		char *args[] = { "rtev-deleted-true", NULL };
		fexecve(fd, args, environ);
		perror("fexecve deleted");
		return 2;
	}
	if (!strcmp(mode, "selfexe")) {
		execl("/proc/self/exe", "rtev-selfexe", "done", (char *)NULL);
		perror("exec /proc/self/exe");
		return 2;
	}
	fprintf(stderr, "unknown mode %s\n", mode);
	return 2;
}
