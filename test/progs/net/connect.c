/* connect HOST PORT: one TCP connect through libc's connect(); prints "ok LOCALPORT" or "err ERRNO".
 * Built dynamically (libc uprobe path) and with -static (syscall tracepoint path) by the tests. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: connect HOST PORT\n");
		return 2;
	}
	struct sockaddr_storage ss;
	socklen_t len;
	memset(&ss, 0, sizeof(ss));
	int port = atoi(argv[2]);
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, argv[1], &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		len = sizeof(*in4);
	} else if (inet_pton(AF_INET6, argv[1], &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		len = sizeof(*in6);
	} else {
		fprintf(stderr, "bad address\n");
		return 2;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		return 3;
	if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
		printf("err %d fd %d\n", errno, fd);
		return 0;
	}
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	getsockname(fd, (struct sockaddr *)&local, &llen);
	int lport = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&local)->sin_port
						 : ((struct sockaddr_in6 *)&local)->sin6_port);
	printf("ok %d fd %d\n", lport, fd);
	close(fd);
	return 0;
}
