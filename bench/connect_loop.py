"""Connect/accept loop on loopback for bench/tls.bench.ts: N blocking TCP connects to a listener
in the same process, each accepted and closed. Prints the microseconds per connection.
Usage: connect_loop.py N"""
import socket
import sys
import time

n = int(sys.argv[1])
listener = socket.create_server(("127.0.0.1", 0), backlog=128)
address = listener.getsockname()
start = time.perf_counter()
for _ in range(n):
    client = socket.create_connection(address)
    conn, _ = listener.accept()
    conn.close()
    client.close()
print(f"{(time.perf_counter() - start) / n * 1e6:.3f}")
