/* test/kernel/file-open-syscalls.kernel.test.ts: one open through each syscall file_open traces, and a failed one */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
  char p[4][4096];
  for (int i = 0; i < 4; i++) snprintf(p[i], sizeof p[i], "%s/f%d", argv[1], i);
  int fds[5];
  fds[0] = (int)syscall(SYS_openat, AT_FDCWD, p[0], O_RDONLY);
  struct open_how how = { .flags = O_WRONLY | O_CREAT, .mode = 0600 };
  fds[1] = (int)syscall(SYS_openat2, AT_FDCWD, p[1], &how, sizeof how);
  fds[2] = (int)syscall(SYS_open, p[2], O_RDWR);
  fds[3] = (int)syscall(SYS_creat, p[3], 0644);
  fds[4] = (int)syscall(SYS_open, "/nonexistent-rtev-file", O_RDONLY);
  for (int i = 0; i < 5; i++) printf("%d\n", fds[i]);
  return 0;
}
