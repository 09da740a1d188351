/* Test program for function_call symbolization: main -> caller_a -> caller_b -> vuln_func.
 * vuln_func prints the pid, its own address and its return address (inside caller_b), then
 * waits for stdin to close so the test can read /proc/PID/maps while it runs. */
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline)) void vuln_func(int x) {
    printf("pid=%d vuln=%p ret=%p\n", getpid(), (void *)vuln_func, __builtin_return_address(0));
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {}
    __asm__ volatile("" ::"r"(x) : "memory");
}

__attribute__((noinline)) void caller_b(int x) {
    vuln_func(x + 1);
    __asm__ volatile("" ::: "memory"); /* keep the call from becoming a tail call */
}

__attribute__((noinline)) void caller_a(int x) {
    caller_b(x * 2);
    __asm__ volatile("" ::: "memory");
}

int main(void) {
    caller_a(1);
    return 0;
}
