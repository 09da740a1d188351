/* The library exec-lib.c dlopens; built twice (libone.so, libtwo.so) with the same code. */
__attribute__((noinline)) int run(int (*cb)(int)) {
    int r = cb(1);
    __asm__ volatile("" ::: "memory"); /* keep the call from becoming a tail call */
    return r;
}
