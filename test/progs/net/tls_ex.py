"""One process, two threads: a TLS server thread reads K bytes that the main thread writes.
Python's ssl module calls SSL_read_ex/SSL_write_ex (OpenSSL >= 1.1.1), the variants that report
their byte counts through an out-parameter. Usage: tls_ex.py CERT KEY K"""
import socket
import ssl
import sys
import threading

cert, key, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server_ctx.load_cert_chain(cert, key)
client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
client_ctx.check_hostname = False
client_ctx.verify_mode = ssl.CERT_NONE

listener = socket.create_server(("127.0.0.1", 0))
port = listener.getsockname()[1]
received = []


def serve():
    conn, _ = listener.accept()
    with server_ctx.wrap_socket(conn, server_side=True) as tls:
        total = 0
        while total < k:
            chunk = tls.recv(65536)
            if not chunk:
                break
            total += len(chunk)
        received.append(total)
        tls.sendall(b"done")


t = threading.Thread(target=serve)
t.start()
with client_ctx.wrap_socket(socket.create_connection(("127.0.0.1", port))) as tls:
    tls.sendall(b"x" * k)
    assert tls.recv(4) == b"done"
t.join()
assert received == [k], received
print(port)
