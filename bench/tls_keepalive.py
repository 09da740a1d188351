"""Keep-alive TLS round trips on loopback for bench/tls.bench.ts: one connection, a server thread
echoing SIZE-byte messages back to the client, N round trips (SSL_write_ex/SSL_read_ex on each
side per trip). Prints the microseconds per round trip. Usage: tls_keepalive.py CERT KEY N SIZE"""
import socket
import ssl
import sys
import threading
import time

cert, key, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server_ctx.load_cert_chain(cert, key)
client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
client_ctx.check_hostname = False
client_ctx.verify_mode = ssl.CERT_NONE
listener = socket.create_server(("127.0.0.1", 0))


def read_exactly(tls, count):
    got = 0
    while got < count:
        chunk = tls.recv(count - got)
        if not chunk:
            raise EOFError
        got += len(chunk)


def echo():
    conn, _ = listener.accept()
    with server_ctx.wrap_socket(conn, server_side=True) as tls:
        for _ in range(n):
            read_exactly(tls, size)
            tls.sendall(b"r" * size)


server = threading.Thread(target=echo)
server.start()
message = b"q" * size
with client_ctx.wrap_socket(socket.create_connection(("127.0.0.1", listener.getsockname()[1]))) as tls:
    start = time.perf_counter()
    for _ in range(n):
        tls.sendall(message)
        read_exactly(tls, size)
    elapsed = time.perf_counter() - start
server.join()
print(f"{elapsed / n * 1e6:.3f}")
