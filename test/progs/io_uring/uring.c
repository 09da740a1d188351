/*
 * io_uring trigger for test/kernel/io-uring.kernel.test.ts: opens files and connects/accepts
 * on loopback only through io_uring, and prints what the kernel answered as one JSON line.
 *
 *   uring DIR K [sqpoll]
 *
 * Opens DIR/f0 .. DIR/f{K-1} (even: IORING_OP_OPENAT, odd: IORING_OP_OPENAT2; every third
 * with IOSQE_ASYNC, so it runs in an io-wq worker), DIR/missing (fails with ENOENT) and,
 * after chdir(DIR), the relative "./rel" (canonical: DIR/rel). Then a listener on 127.0.0.1
 * (made with plain syscalls) gets an IORING_OP_ACCEPT and a second socket an
 * IORING_OP_CONNECT to it; then a multishot IORING_OP_ACCEPT takes two more connects and is
 * cancelled. Last, three requests with IOSQE_CQE_SKIP_SUCCESS: an open of DIR/skipok (succeeds:
 * no CQE at all), an open of DIR/skipmissing (fails: its CQE is posted) and a connect to a
 * closed loopback port (refused: its CQE is posted). With "sqpoll" the ring is an
 * IORING_SETUP_SQPOLL ring: the kernel's SQPOLL thread submits every request.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_K 64

static struct io_uring ring;

static void die(const char *what, int err)
{
	fprintf(stderr, "uring: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* submit the prepared SQEs and wait for n CQEs; res[user_data] = cqe->res */
static void run(int n, int *res)
{
	int r = io_uring_submit(&ring);
	if (r < 0)
		die("io_uring_submit", r);
	for (int i = 0; i < n; i++) {
		struct io_uring_cqe *cqe;
		r = io_uring_wait_cqe(&ring, &cqe);
		if (r < 0)
			die("io_uring_wait_cqe", r);
		res[cqe->user_data] = cqe->res;
		io_uring_cqe_seen(&ring, cqe);
	}
}

static struct io_uring_sqe *sqe_for(unsigned long long id)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	if (!sqe)
		die("io_uring_get_sqe", EBUSY);
	io_uring_sqe_set_data64(sqe, id);
	return sqe;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: uring DIR K [sqpoll]\n");
		return 2;
	}
	const char *dir = argv[1];
	int k = atoi(argv[2]);
	if (k < 1 || k > MAX_K)
		die("K must be 1..64", EINVAL);
	struct io_uring_params p = { 0 };
	if (argc > 3 && strcmp(argv[3], "sqpoll") == 0) {
		p.flags |= IORING_SETUP_SQPOLL;
		p.sq_thread_idle = 2000;
	}
	int r = io_uring_queue_init_params(128, &ring, &p);
	if (r < 0)
		die("io_uring_queue_init_params", r);

	static char paths[MAX_K + 1][4096];
	int res[MAX_K + 16];
	struct open_how how = { .flags = O_RDONLY | O_CLOEXEC };
	for (int i = 0; i < k; i++) {
		snprintf(paths[i], sizeof(paths[i]), "%s/f%d", dir, i);
		struct io_uring_sqe *sqe = sqe_for(i);
		if (i % 2 == 0)
			io_uring_prep_openat(sqe, AT_FDCWD, paths[i], O_RDONLY, 0);
		else
			io_uring_prep_openat2(sqe, AT_FDCWD, paths[i], &how);
		if (i % 3 == 0)
			sqe->flags |= IOSQE_ASYNC;
	}
	snprintf(paths[k], sizeof(paths[k]), "%s/missing", dir);
	io_uring_prep_openat(sqe_for(k), AT_FDCWD, paths[k], O_RDONLY, 0);
	run(k + 1, res);

	if (chdir(dir) != 0)
		die("chdir", errno);
	io_uring_prep_openat(sqe_for(k + 1), AT_FDCWD, "./rel", O_RDONLY, 0);
	run(1, res);

	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in la = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t llen = sizeof(la);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&la, sizeof(la)) != 0 || listen(lfd, 4) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&la, &llen) != 0)
		die("listener", errno);
	int cfd = socket(AF_INET, SOCK_STREAM, 0);
	if (cfd < 0)
		die("socket", errno);
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	io_uring_prep_accept(sqe_for(k + 2), lfd, (struct sockaddr *)&peer, &plen, 0);
	io_uring_prep_connect(sqe_for(k + 3), cfd, (struct sockaddr *)&la, sizeof(la));
	run(2, res);
	struct sockaddr_in local;
	socklen_t cl = sizeof(local);
	getsockname(cfd, (struct sockaddr *)&local, &cl);

	/* a multishot accept: one request, one CQE per connection (posted without the request),
	 * then cancelled (its last CQE: -ECANCELED) */
	int mfd[2] = { socket(AF_INET, SOCK_STREAM, 0), socket(AF_INET, SOCK_STREAM, 0) };
	if (mfd[0] < 0 || mfd[1] < 0)
		die("socket", errno);
	io_uring_prep_multishot_accept(sqe_for(k + 4), lfd, NULL, NULL, 0);
	io_uring_prep_connect(sqe_for(k + 5), mfd[0], (struct sockaddr *)&la, sizeof(la));
	io_uring_prep_connect(sqe_for(k + 6), mfd[1], (struct sockaddr *)&la, sizeof(la));
	r = io_uring_submit(&ring);
	if (r < 0)
		die("io_uring_submit", r);
	int accepted[2], n_accepted = 0, n_connected = 0, mres[2] = { 1, 1 };
	while (n_accepted < 2 || n_connected < 2) {
		struct io_uring_cqe *cqe;
		r = io_uring_wait_cqe(&ring, &cqe);
		if (r < 0)
			die("io_uring_wait_cqe", r);
		if (cqe->user_data == (unsigned long long)k + 4) {
			if (cqe->res < 0 || !(cqe->flags & IORING_CQE_F_MORE))
				die("multishot accept ended", cqe->res);
			accepted[n_accepted++] = cqe->res;
		} else {
			mres[cqe->user_data - k - 5] = cqe->res;
			n_connected++;
		}
		io_uring_cqe_seen(&ring, cqe);
	}
	io_uring_prep_cancel64(sqe_for(k + 7), k + 4, 0);
	run(2, res);
	int mport[2];
	for (int i = 0; i < 2; i++) {
		struct sockaddr_in a;
		socklen_t al = sizeof(a);
		getsockname(mfd[i], (struct sockaddr *)&a, &al);
		mport[i] = ntohs(a.sin_port);
	}

	/* IOSQE_CQE_SKIP_SUCCESS: only the two failures post CQEs */
	static char skipok[4096], skipmissing[4096];
	snprintf(skipok, sizeof(skipok), "%s/skipok", dir);
	snprintf(skipmissing, sizeof(skipmissing), "%s/skipmissing", dir);
	int closed = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in ca = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t calen = sizeof(ca);
	if (closed < 0 || bind(closed, (struct sockaddr *)&ca, sizeof(ca)) != 0 ||
	    getsockname(closed, (struct sockaddr *)&ca, &calen) != 0)
		die("closed port", errno);
	close(closed); /* nothing listens there now: a connect is refused */
	int rfd = socket(AF_INET, SOCK_STREAM, 0);
	if (rfd < 0)
		die("socket", errno);
	struct io_uring_sqe *q = sqe_for(k + 8);
	io_uring_prep_openat(q, AT_FDCWD, skipok, O_RDONLY, 0);
	q->flags |= IOSQE_CQE_SKIP_SUCCESS;
	q = sqe_for(k + 9);
	io_uring_prep_openat(q, AT_FDCWD, skipmissing, O_RDONLY, 0);
	q->flags |= IOSQE_CQE_SKIP_SUCCESS;
	q = sqe_for(k + 10);
	io_uring_prep_connect(q, rfd, (struct sockaddr *)&ca, sizeof(ca));
	q->flags |= IOSQE_CQE_SKIP_SUCCESS;
	res[k + 8] = 1;
	run(2, res);
	if (res[k + 8] != 1)
		die("a CQE for the successful IOSQE_CQE_SKIP_SUCCESS open", res[k + 8]);

	printf("{\"pid\":%d,\"opens\":[", getpid());
	for (int i = 0; i < k; i++)
		printf("%s{\"path\":\"%s\",\"res\":%d,\"op\":\"%s\"}", i ? "," : "", paths[i], res[i],
		       i % 2 == 0 ? "openat" : "openat2");
	printf("],\"missing\":{\"path\":\"%s\",\"res\":%d},\"rel\":{\"res\":%d},", paths[k], res[k], res[k + 1]);
	printf("\"port\":%d,\"client_port\":%d,\"listen_fd\":%d,\"client_fd\":%d,\"accept_res\":%d,\"connect_res\":%d,",
	       ntohs(la.sin_port), ntohs(local.sin_port), lfd, cfd, res[k + 2], res[k + 3]);
	printf("\"multishot\":{\"accepted\":[%d,%d],\"client_fds\":[%d,%d],\"client_ports\":[%d,%d],"
	       "\"connect_res\":[%d,%d],\"last\":%d},",
	       accepted[0], accepted[1], mfd[0], mfd[1], mport[0], mport[1], mres[0], mres[1], res[k + 4]);
	printf("\"skip\":{\"ok\":\"%s\",\"missing\":{\"path\":\"%s\",\"res\":%d},\"refused\":{\"fd\":%d,\"port\":%d,\"res\":%d}}}\n",
	       skipok, skipmissing, res[k + 9], rfd, ntohs(ca.sin_port), res[k + 10]);
	io_uring_queue_exit(&ring);
	return 0;
}
