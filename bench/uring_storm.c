/*
 * uring_storm: N opens of FILE through io_uring (IORING_OP_OPENAT, one request per submit, waited
 * for), each closed with close(2), then prints "<N> <elapsed_ns>" on stdout. The io_uring
 * counterpart of bench/openstorm.c, for bench/io-uring.bench.ts (docs/benchmarks.md, "io_uring opens").
 * Build: gcc -O2 -o uring_storm uring_storm.c -luring
 */
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: uring_storm N FILE\n");
		return 2;
	}
	long n = strtol(argv[1], NULL, 10);
	struct io_uring ring;
	int r = io_uring_queue_init(8, &ring, 0);
	if (r < 0) {
		fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-r));
		return 1;
	}
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		io_uring_prep_openat(sqe, AT_FDCWD, argv[2], O_RDONLY, 0);
		struct io_uring_cqe *cqe;
		if (io_uring_submit_and_wait(&ring, 1) < 0 || io_uring_wait_cqe(&ring, &cqe) < 0) {
			fprintf(stderr, "io_uring failed\n");
			return 1;
		}
		int fd = cqe->res;
		io_uring_cqe_seen(&ring, cqe);
		if (fd < 0) {
			fprintf(stderr, "open: %s\n", strerror(-fd));
			return 1;
		}
		close(fd);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%ld %lld\n", n, (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
	return 0;
}
