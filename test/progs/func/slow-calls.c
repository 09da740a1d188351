/* Test program for per-chunk function call counts: main -> caller_a -> caller_b -> vuln_func,
 * N times (argv[1], default 5), sleeping DELAY_MS milliseconds (argv[2], default 100) after
 * each call, so the calls spread over N * DELAY_MS ms, every one with the same stack.
 * Prints `pid=P vuln=0x… calls=N` at the end. Built with frame pointers. */
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
    long delay_ms = argc > 2 ? atol(argv[2]) : 100;
    struct timespec d = { delay_ms / 1000, (delay_ms % 1000) * 1000000L };
    for (long i = 0; i < n; i++) {
        caller_a((int)i);
        nanosleep(&d, NULL);
    }
    printf("pid=%d vuln=%p calls=%ld\n", getpid(), (void *)vuln_func, n);
    fflush(stdout);
    return 0;
}
