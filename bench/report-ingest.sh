#!/bin/sh
# Index build speed (issue 15), before/after in one run: builds the evidence index of the first
# K chunks of the report benchmark's evidence (copied) with two rtev builds, turn
# about (A B A B ...), each into a fresh index file, and prints seconds and records/s with the
# load average. CPU (user + system, all threads) is the number to compare under load. A build is a checkout's bin/rtev (e.g. /work/main/bin/rtev and ./bin/rtev).
#
#   nice -n 10 bench/report-ingest.sh A_RTEV B_RTEV [K=8] [REPS=2] [EVIDENCE=/var/tmp/rtev-bench-report/ev-10000000]
#
# The evidence comes from bench/report.bench.ts (signed synthetic chunks of 62,500 records).
set -eu
A=$1
B=$2
K=${3:-8}
REPS=${4:-2}
EV=${5:-/var/tmp/rtev-bench-report/ev-10000000}
KEY=$(dirname "$EV")/keys/signing.key.pub
WORK=$(mktemp -d /var/tmp/rtev-ingest-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/ev"
i=1
while [ "$i" -le "$K" ]; do
  f=$(printf 'chunk-%012d' "$i")
  # copies, not hard links: a link changes the inode's ctime, which makes every index of the
  # evidence directory re-verify and re-ingest that chunk on its next open
  cp "$EV/$f.ndjson" "$EV/$f.dsse.json" "$WORK/ev/"
  i=$((i + 1))
done
records=$(cat "$WORK"/ev/*.ndjson | wc -l)
echo "index build: $K chunks, $records records; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
r=1
while [ "$r" -le "$REPS" ]; do
  for which in A B; do
    if [ "$which" = A ]; then bin=$A; else bin=$B; fi
    rm -f "$WORK/idx.duckdb" "$WORK/idx.duckdb.wal"
    t0=$(date +%s.%N)
    /usr/bin/time -f '%U %S' -o "$WORK/cpu" node "$bin" query "$WORK/ev" --pubkey "$KEY" --index "$WORK/idx.duckdb" --limit 0 >/dev/null
    t1=$(date +%s.%N)
    size=$(du -m "$WORK/idx.duckdb" | cut -f1)
    cpu=$(awk '{ print $1 + $2 }' "$WORK/cpu")
    echo "$which rep $r: wall $(echo "$t1 - $t0" | bc) s, CPU $cpu s ($(echo "$records / $cpu" | bc) records per CPU-second), index $size MiB (load $(cut -d' ' -f1-3 /proc/loadavg)) [$bin]"
  done
  r=$((r + 1))
done
