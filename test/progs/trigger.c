/*
 * trigger: does known things for the kernel tests and prints what it did as
 * "key value" lines on stdout, so the test can match records exactly.
 * usage: trigger DIR
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void touch(int dfd, const char *path, int flags, mode_t mode)
{
	int fd = openat(dfd, path, flags, mode);
	if (fd < 0) {
		perror(path);
		exit(2);
	}
	close(fd);
}

static int listener(int family, int *port)
{
	int s = socket(family, SOCK_STREAM, 0);
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		len = sizeof(*a);
	}
	if (bind(s, (struct sockaddr *)&ss, len) || listen(s, 4)) {
		perror("listen");
		exit(2);
	}
	getsockname(s, (struct sockaddr *)&ss, &len);
	*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return s;
}

static void connect_and_accept(int family)
{
	int port;
	int l = listener(family, &port);
	int c = socket(family, SOCK_STREAM, 0);
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		a->sin6_addr = in6addr_loopback;
		len = sizeof(*a);
	}
	if (connect(c, (struct sockaddr *)&ss, len)) {
		perror("connect");
		exit(2);
	}
	int a = accept(l, NULL, NULL);
	printf("%s_port %d\n", family == AF_INET ? "ipv4" : "ipv6", port);
	close(c);
	close(a);
	close(l);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *dir = argv[1];
	char path[8192];

	printf("pid %d\n", getpid());
	/* absolute, read-only */
	snprintf(path, sizeof(path), "%s/absolute.txt", dir);
	touch(AT_FDCWD, path, O_RDONLY | O_CREAT, 0644);
	/* relative to the working directory */
	if (chdir(dir))
		return 2;
	touch(AT_FDCWD, "relative.txt", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	/* relative to a directory fd */
	mkdir("sub", 0755);
	int dfd = open("sub", O_RDONLY | O_DIRECTORY);
	printf("dfd %d\n", dfd);
	touch(dfd, "dfd-relative.txt", O_RDWR | O_CREAT, 0640);
	close(dfd);
	/* hostile names: newline, quote, backslash, a byte that is not UTF-8 */
	touch(AT_FDCWD, "new\nline\"quote\\back\xff.txt", O_WRONLY | O_CREAT, 0600);
	/* a failed open is not recorded by default */
	int bad = open("/nonexistent/rtev-trigger", O_RDONLY);
	(void)bad;
	/* a path longer than 1024 bytes: nested 200-byte directory names */
	char name[201];
	memset(name, 'd', 200);
	name[200] = 0;
	if (chdir(dir))
		return 2;
	for (int i = 0; i < 6; i++) {
		mkdir(name, 0755);
		if (chdir(name))
			return 2;
	}
	touch(AT_FDCWD, "deep.txt", O_WRONLY | O_CREAT, 0600);
	if (chdir(dir))
		return 2;

	/* exec a known program with a known argv[0] (300 bytes long) */
	char argv0[301];
	memset(argv0, 'a', 300);
	argv0[300] = 0;
	memcpy(argv0, "custom-argv0-", 13);
	pid_t child = fork();
	if (child == 0) {
		char *args[] = { argv0, NULL };
		execv("/bin/true", args);
		_exit(127);
	}
	int status;
	waitpid(child, &status, 0);
	printf("child %d\n", child);

	connect_and_accept(AF_INET);
	connect_and_accept(AF_INET6);
	fflush(stdout);
	return 0;
}
