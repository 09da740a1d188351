/* dlopen-wait LIB SECONDS: map LIB (a TLS library rtev may not cover), print the pid, wait. */
#include <stdlib.h>
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
	void *h = dlopen(argv[1], RTLD_NOW);
	if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
	printf("%d\n", getpid()); fflush(stdout);
	sleep(atoi(argv[2]));
	return 0;
}
