/*
 * gnutls-range PORT K M: a GnuTLS client (Debian's libgnutls28-dev) that connects to 127.0.0.1:PORT,
 * sends K bytes only with gnutls_record_send_range (length hiding, TLS 1.3 padding) and receives M
 * bytes only with gnutls_record_recv_packet (zero-copy packets), then says bye. Prints one JSON
 * line: its pid, the bytes and calls as the library returned them (for test/e2e/tls-gnutls.e2e.test.ts).
 * The server's certificate is not verified (a throwaway self-signed one on loopback).
 */
#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK 4000

static void die(const char *what, int err)
{
	fprintf(stderr, "gnutls-range: %s: %s\n", what, err < 0 ? gnutls_strerror(err) : "failed");
	exit(1);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: gnutls-range PORT K M\n");
		return 2;
	}
	int port = atoi(argv[1]);
	long k = atol(argv[2]);
	long m = atol(argv[3]);

	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		die("connect", 0);

	gnutls_certificate_credentials_t cred;
	gnutls_session_t s;
	int r;
	if ((r = gnutls_certificate_allocate_credentials(&cred)) < 0)
		die("credentials", r);
	if ((r = gnutls_init(&s, GNUTLS_CLIENT)) < 0)
		die("init", r);
	/* TLS 1.3: its record padding is what lets any cipher hide lengths */
	if ((r = gnutls_priority_set_direct(s, "NORMAL:-VERS-ALL:+VERS-TLS1.3", NULL)) < 0)
		die("priority", r);
	if ((r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred)) < 0)
		die("credentials_set", r);
	gnutls_transport_set_int(s, fd);
	do {
		r = gnutls_handshake(s);
	} while (r < 0 && !gnutls_error_is_fatal(r));
	if (r < 0)
		die("handshake", r);
	if (!gnutls_record_can_use_length_hiding(s))
		die("no length hiding in this session", 0);

	static char buf[CHUNK];
	memset(buf, 'r', sizeof(buf));
	long sent = 0, send_calls = 0;
	while (sent < k) {
		size_t n = k - sent < CHUNK ? (size_t)(k - sent) : CHUNK;
		gnutls_range_st range = { .low = n, .high = n + 200 };
		ssize_t w = gnutls_record_send_range(s, buf, n, &range);
		send_calls++;
		if (w < 0 && !gnutls_error_is_fatal(w))
			continue;
		if (w <= 0)
			die("send_range", (int)w);
		sent += w;
	}

	long received = 0, recv_calls = 0, returned = 0;
	while (received < m) {
		gnutls_packet_t packet;
		ssize_t n = gnutls_record_recv_packet(s, &packet);
		recv_calls++;
		if (n < 0 && !gnutls_error_is_fatal(n))
			continue;
		if (n < 0)
			die("recv_packet", (int)n);
		if (n == 0)
			break; /* the server closed first */
		gnutls_datum_t d;
		gnutls_packet_get(packet, &d, NULL);
		received += d.size;
		returned += n;
		gnutls_packet_deinit(packet);
	}
	printf("{\"pid\":%d,\"sent\":%ld,\"send_calls\":%ld,\"received\":%ld,\"returned\":%ld,\"recv_calls\":%ld}\n", getpid(),
	       sent, send_calls, received, returned, recv_calls);
	fflush(stdout);
	gnutls_bye(s, GNUTLS_SHUT_WR);
	close(fd);
	gnutls_deinit(s);
	gnutls_certificate_free_credentials(cred);
	return received == m ? 0 : 1;
}
