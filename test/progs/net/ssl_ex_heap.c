/*
 * SSL_write_ex/SSL_read_ex with the byte count written to heap memory, over a BIO pair in one
 * thread (client and server SSL objects of one process). The out-parameter is far from the stack
 * pointer, so rtev's session program cannot keep it in the call cookie and goes through task
 * storage (bpf/ssl_op.h). Writes TOTAL bytes in WRITE_SIZE pieces; the server reads them all.
 * Usage: ssl_ex_heap CERT KEY TOTAL WRITE_SIZE
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what)
{
	fprintf(stderr, "ssl_ex_heap: %s\n", what);
	ERR_print_errors_fp(stderr);
	return 1;
}

/* pump runs both handshakes until they are done */
static int handshake(SSL *client, SSL *server)
{
	for (int i = 0; i < 1000; i++) {
		int c = SSL_do_handshake(client), s = SSL_do_handshake(server);
		if (c == 1 && s == 1)
			return 0;
		int ce = SSL_get_error(client, c), se = SSL_get_error(server, s);
		if ((c != 1 && ce != SSL_ERROR_WANT_READ && ce != SSL_ERROR_WANT_WRITE) ||
		    (s != 1 && se != SSL_ERROR_WANT_READ && se != SSL_ERROR_WANT_WRITE))
			return -1;
	}
	return -1;
}

int main(int argc, char **argv)
{
	if (argc != 5)
		return fail("usage: ssl_ex_heap CERT KEY TOTAL WRITE_SIZE");
	size_t total = strtoul(argv[3], NULL, 10), piece = strtoul(argv[4], NULL, 10);
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
	if (!sctx || !cctx || SSL_CTX_use_certificate_file(sctx, argv[1], SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_use_PrivateKey_file(sctx, argv[2], SSL_FILETYPE_PEM) != 1)
		return fail("cannot set up the contexts");
	SSL *server = SSL_new(sctx), *client = SSL_new(cctx);
	BIO *cbio, *sbio;
	if (!server || !client || BIO_new_bio_pair(&cbio, 1 << 20, &sbio, 1 << 20) != 1)
		return fail("cannot create the SSL objects");
	SSL_set_bio(client, cbio, cbio);
	SSL_set_bio(server, sbio, sbio);
	SSL_set_connect_state(client);
	SSL_set_accept_state(server);
	if (handshake(client, server) != 0)
		return fail("handshake failed");
	size_t *written = malloc(sizeof(*written)); /* heap: far from the stack pointer */
	char *buf = calloc(1, piece);
	size_t sent = 0, received = 0;
	if (!written || !buf)
		return fail("out of memory");
	while (sent < total) {
		size_t n = total - sent < piece ? total - sent : piece;
		if (SSL_write_ex(client, buf, n, written) != 1)
			return fail("SSL_write_ex failed");
		sent += *written;
		while (received < sent) {
			size_t got; /* on the stack: the cookie path */
			if (SSL_read_ex(server, buf, piece, &got) != 1)
				return fail("SSL_read_ex failed");
			received += got;
		}
	}
	printf("%zu %zu\n", sent, received);
	return sent == total && received == total ? 0 : 1;
}
