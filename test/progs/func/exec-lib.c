/* function_call across an exec of the same program: `exec-lib LIB FRAMES [NEXT_LIB]` dlopens
 * LIB and calls its run(), which calls target_cb back (so frame 1 is inside LIB). With NEXT_LIB
 * it waits until FRAMES (collect --frames) holds a line, so the collector has read this image's
 * maps, and execs itself with NEXT_LIB. Under `setarch -R` both images map LIB and NEXT_LIB at
 * the same address: maps kept from the first image would put frame 1 in LIB
 * (test/e2e/function-call.e2e.test.ts). Build: gcc -O1 -g -fno-omit-frame-pointer ... -ldl */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline)) int target_cb(int x) {
    __asm__ volatile("" ::"r"(x) : "memory");
    return x + 1;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (lib == NULL) {
        fprintf(stderr, "%s\n", dlerror());
        return 2;
    }
    int (*run)(int (*)(int)) = (int (*)(int (*)(int)))dlsym(lib, "run");
    if (run == NULL || run(target_cb) != 2) return 2;
    printf("pid=%d lib=%s target_cb=%p run=%p\n", getpid(), argv[1], (void *)target_cb, (void *)run);
    fflush(stdout);
    if (argc < 4) {
        usleep(200 * 1000);
        return 0;
    }
    for (int i = 0; i < 3000; i++) { /* up to 30 s */
        FILE *f = fopen(argv[2], "r");
        int c = f != NULL ? fgetc(f) : EOF;
        if (f != NULL) fclose(f);
        if (c != EOF) break;
        usleep(10 * 1000);
    }
    char *next[] = { argv[0], argv[3], argv[2], NULL };
    execv("/proc/self/exe", next);
    perror("execv");
    return 1;
}
