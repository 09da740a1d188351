/*
 * openstorm: N iterations of open()+close() on one file, then prints
 *   "<N> <elapsed_ns> <pid> <utime_us> <stime_us>"  (the last two: its own CPU, getrusage)
 * on stdout. Used by bench/run.sh (docs/benchmarks.md, "Open storm") and by the
 * reliability tests (test/reliability/). Build: gcc -O2 -o openstorm openstorm.c
 *
 * usage: openstorm N [FILE]   (FILE defaults to /etc/hostname)
 * With env OPENSTORM_WAIT=1 it waits for a line on stdin before starting (lets a
 * harness start a system-wide collector and learn the pid first).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: openstorm N [FILE]\n"); return 2; }
  long n = strtol(argv[1], NULL, 10);
  const char *file = argc > 2 ? argv[2] : "/etc/hostname";
  const char *wait = getenv("OPENSTORM_WAIT");
  if (wait && wait[0] == '1') { char buf[16]; if (read(0, buf, sizeof buf) < 0) return 1; }
  struct timespec a, b;
  long failed = 0;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i++) {
    int fd = open(file, O_RDONLY);
    if (fd < 0) { failed++; continue; }
    close(fd);
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  long long ns = (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("%ld %lld %d %ld %ld\n", n, ns, (int)getpid(),
         (long)(ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec), (long)(ru.ru_stime.tv_sec * 1000000L + ru.ru_stime.tv_usec));
  fflush(stdout);
  return failed ? 1 : 0;
}
