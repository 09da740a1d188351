#!/usr/bin/env bash
# A mixed workload under `rtev collect --stdout` (docs/benchmarks.md, "Session 5 (h28)"): N rounds of
# `ls -la /usr/lib`, `cat` of two files, a `find` and a python3 loopback TCP connection (execs on the
# rare ring, opens of many paths on the bulk ring, tcp_state), alternating builds per round. The
# collector's CPU is rtev's rusage minus the workload's own (measured by /usr/bin/time inside the command).
# Run as root after `make build`:
#   [MIXED_N=10] bench/mixed-workload.sh ROUNDS NAME=DIR [NAME=DIR ...]
set -euo pipefail
ROUNDS=${1:?ROUNDS}; shift
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
WORK=$(mktemp -d /tmp/rtev-mixed.XXXXXX)
cat > "$WORK/mixed.sh" <<'SH'
#!/bin/sh
i=0
while [ $i -lt "${MIXED_N:-10}" ]; do
  ls -la /usr/lib > /dev/null
  cat /etc/os-release /etc/hostname > /dev/null
  find /usr/share/doc -maxdepth 1 -name 'lib*' > /dev/null
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); c=socket.create_connection(s.getsockname()); a,_=s.accept(); c.close(); a.close(); s.close()'
  i=$((i+1))
done
SH
chmod +x "$WORK/mixed.sh"
echo "mixed workload: rounds=$ROUNDS MIXED_N=${MIXED_N:-10} date=$(date -u +%FT%TZ) load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'round\tbuild\trecords\tcollector_cpu_s\tpeak_rss_kb\n'
for r in $(seq "$ROUNDS"); do
  for spec in "$@"; do
    name=${spec%%=*} dir=${spec#*=}
    /usr/bin/time -f '%U %S %M' -o "$WORK/time" node "$dir/bin/rtev" collect --stdout --quiet -- \
      /usr/bin/time -f '%U %S' -o "$WORK/work" "$WORK/mixed.sh" > "$WORK/out.ndjson" 2>/dev/null
    read -r u s m < "$WORK/time"
    read -r wu ws < "$WORK/work"
    printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$name" "$(wc -l < "$WORK/out.ndjson")" "$(awk -v a="$u" -v b="$s" -v c="$wu" -v d="$ws" 'BEGIN{printf "%.2f", a+b-c-d}')" "$m"
  done
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$WORK"
