/* function_call across an exec: one pid runs two programs. Built twice, non-PIE so that both
 * load at the same address: -DSTAGE=1 calls stage_one() and execs argv[1] (same pid);
 * -DSTAGE=2 calls stage_two(), which sits where stage_one sat in the first program. A
 * symbolizer that kept the first program's maps would name stage_two's address after the
 * first program (test/e2e/function-call.e2e.test.ts). */
#include <stdio.h>
#include <unistd.h>

#if STAGE == 1
#define TARGET stage_one
#else
#define TARGET stage_two
#endif

__attribute__((noinline)) int TARGET(int x) {
    __asm__ volatile("" ::"r"(x) : "memory");
    return x + 1;
}

int main(int argc, char **argv) {
    int r = TARGET(argc);
    printf("stage=%d pid=%d target=%p\n", STAGE, getpid(), (void *)TARGET);
    fflush(stdout);
#if STAGE == 1
    execv(argv[1], argv + 1);
    perror("execv");
    return 1;
#else
    usleep(200 * 1000); /* keeps the maps readable a moment; the result does not depend on it */
    return r > 0 ? 0 : 1;
#endif
}
