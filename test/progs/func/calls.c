/* Test and benchmark program for function_call: main -> caller_a -> caller_b -> vuln_func,
 * N times (argv[1], default 5). Prints `pid=P vuln=0x… caller_b=0x… ns=T` where T is the
 * time the N calls took. Built with frame pointers, like the distributions that keep them. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

volatile long sink;

__attribute__((noinline)) void vuln_func(int x) {
    sink += x;
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void caller_b(int x) {
    vuln_func(x + 1);
    __asm__ volatile("" ::: "memory"); /* keep the call from becoming a tail call */
}

__attribute__((noinline)) void caller_a(int x) {
    caller_b(x * 2);
    __asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 5;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) caller_a((int)i);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    printf("pid=%d vuln=%p caller_b=%p ns=%lld\n", getpid(), (void *)vuln_func, (void *)caller_b, ns);
    fflush(stdout);
    return 0;
}
