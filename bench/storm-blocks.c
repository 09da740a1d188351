/*
 * storm-blocks: an open storm in blocks, for benchmarks that alternate what is attached between
 * blocks of one process (bench/kernel-floor.bench.ts). Reads a count per line on stdin; for each,
 * runs that many open()+close() of FILE and prints
 *   "<thread_cpu_ns> <wall_ns> <stime_us>"
 * (its own CPU time for the block from CLOCK_THREAD_CPUTIME_ID: the scheduler's exact run time,
 * user + system; and the block's system time from getrusage(RUSAGE_THREAD), split by tick samples).
 * With a second argument `getppid`, a block is that many getppid() calls instead: what a hook on the
 * syscall paths costs the syscalls it does not record.
 * Build: gcc -O2 -o storm-blocks storm-blocks.c        usage: storm-blocks FILE [getppid]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long ns_of(clockid_t c) {
  struct timespec t;
  clock_gettime(c, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long stime_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_THREAD, &ru);
  return (long long)ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: storm-blocks FILE\n"); return 2; }
  const char *file = argv[1];
  int other = argc > 2 && argv[2][0] == 'g';
  char line[64];
  setvbuf(stdout, NULL, _IOLBF, 0);
  while (fgets(line, sizeof line, stdin)) {
    long n = strtol(line, NULL, 10);
    if (n <= 0) break;
    long long c0 = ns_of(CLOCK_THREAD_CPUTIME_ID), w0 = ns_of(CLOCK_MONOTONIC), s0 = stime_us();
    for (long i = 0; i < n && other; i++)
      syscall(SYS_getppid);
    for (long i = 0; i < n && !other; i++) {
      int fd = open(file, O_RDONLY);
      if (fd < 0) { perror("open"); return 1; }
      close(fd);
    }
    long long c1 = ns_of(CLOCK_THREAD_CPUTIME_ID), w1 = ns_of(CLOCK_MONOTONIC), s1 = stime_us();
    printf("%lld %lld %lld\n", c1 - c0, w1 - w0, s1 - s0);
  }
  return 0;
}
