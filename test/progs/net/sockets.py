"""Loopback socket scenario for test/e2e/net-connect: prints one JSON line describing what it did."""
import json
import select
import socket
import sys

closed_port = int(sys.argv[1])
out = {}

srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.bind(("127.0.0.1", 0))
srv.listen(8)
open_port = srv.getsockname()[1]
out["open_port"] = open_port

c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
c.connect(("127.0.0.1", open_port))
out["client_port"] = c.getsockname()[1]
conn, peer = srv.accept()
out["accept_peer"] = [peer[0], peer[1]]
out["accept_fd"] = conn.fileno()
conn.close()
c.close()

c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
    c.connect(("127.0.0.1", closed_port))
    out["closed"] = "connected"
except OSError as e:
    out["closed"] = e.errno
c.close()

# non-blocking connects: the records carry the handshake's outcome, not EINPROGRESS
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
c.setblocking(False)
out["nb_open_ret"] = c.connect_ex(("127.0.0.1", open_port))
out["nb_client_port"] = c.getsockname()[1]
conn, peer = srv.accept()
conn.close()
c.close()
unused = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
unused.bind(("127.0.0.1", 0))  # bound, not listening: a connect to it is refused
out["nb_closed_port"] = unused.getsockname()[1]
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
c.setblocking(False)
out["nb_closed_ret"] = c.connect_ex(("127.0.0.1", out["nb_closed_port"]))
select.select([], [c], [], 5)
out["nb_closed_err"] = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
c.close()
unused.close()

srv6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
srv6.bind(("::1", 0))
srv6.listen(1)
port6 = srv6.getsockname()[1]
out["port6"] = port6
c = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
c.connect(("::1", port6))
out["client_port6"] = c.getsockname()[1]
conn, peer = srv6.accept()
out["accept_peer6"] = [peer[0], peer[1]]
conn.close()
c.close()

u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    u.connect("/nonexistent-rtev-socket")
except OSError:
    pass
u.close()
print(json.dumps(out), flush=True)
