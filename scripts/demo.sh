#!/usr/bin/env bash
# make demo: collect system-wide for a few seconds around a small built-in workload,
# then verify the signed evidence and print what was recorded.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "rtev: the demo loads BPF programs: run it as root (sudo make demo)" >&2
  exit 3
fi
out="${RTEV_DEMO_OUT:-$PWD/demo-evidence}"
rm -rf "$out"
workload() {
  sleep 1.5
  cat /etc/hostname /etc/os-release >/dev/null
  ls /usr/bin >/dev/null
  python3 - <<'PY' || true
import socket
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(1)
client = socket.create_connection(server.getsockname()); conn, _ = server.accept()
client.close(); conn.close(); server.close()
PY
  openssl version >/dev/null
}
workload &
./bin/rtev collect --out "$out" --duration 4s --probes file_open,process_exec,tcp_state,net_connect
wait
echo
./bin/rtev verify "$out" || true
echo
echo "records per type:"
cat "$out"/*.ndjson 2>/dev/null | grep -o '"type":"[a-z_]*"}' | sort | uniq -c | sed 's/"type":"\(.*\)"}/\1/' || true
echo
echo "evidence: $out (query it with: cat $out/*.ndjson | head)"
