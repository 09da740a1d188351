#!/usr/bin/env bash
# Seal throughput under an open storm (docs/benchmarks.md, "Session 6 (h31)"). For each round,
# chunk size and build, alternating: an open storm (bench/openstorm.c) runs, `rtev collect --out
# DIR --key K --tree PID --chunk-size CS` observes it for SECONDS, and the evidence directory is
# sampled every second: sealed chunks (with an envelope), unsealed ones (.partial, or a chunk
# without its envelope) and sealed bytes. With bpftrace present, the collector main thread's
# openat(2) calls are timed as well (the create of the next chunk-S.ndjson.partial: the call the
# seal's fsyncs and renames in the same directory slow down). Run as root after `make build`:
#   bench/seal-throughput.sh SECONDS ROUNDS "128K 16M" NAME=DIR [NAME=DIR ...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:?SECONDS}; ROUNDS=${2:?ROUNDS}; SIZES=${3:?chunk sizes}; shift 3
BUILDS=("$@")
[ ${#BUILDS[@]} -gt 0 ] || BUILDS=("this=$PWD")
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
WORK=$(mktemp -d /tmp/rtev-seal-throughput.XXXXXX)
export RTEV_KEY_DIR=$WORK/keys
gcc -O2 -Wall -o "$WORK/openstorm" bench/openstorm.c
echo x > "$WORK/storm-target"
node "${BUILDS[0]#*=}/bin/rtev" keygen --out "$WORK/key" >/dev/null 2>&1
BPFTRACE=$(command -v bpftrace || true)
echo "seal throughput: ${SECS}s rounds=$ROUNDS sizes=$SIZES date=$(date -u +%FT%TZ) commit=$(git rev-parse --short HEAD) builds=${BUILDS[*]} load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'round\tbuild\tchunk_size\tsecs\tsealed\tunsealed_end\tunsealed_max\tsealed_mb\tseals_per_s\tmade_per_s\topen_us_p50\topen_us_p99\topen_calls\n' | tee "$WORK/runs.tsv"
count() { # dir -> "sealed unsealed sealed_bytes"
  (cd "$1" 2>/dev/null && ls -1 2>/dev/null) | awk -v d="$1" '
    /^chunk-[0-9]+\.ndjson\.partial$/ { u[substr($0, 7, 12)] = 1; next }
    /^chunk-[0-9]+\.ndjson$/ { c[substr($0, 7, 12)] = 1; next }
    /^chunk-[0-9]+\.dsse\.json$/ { e[substr($0, 7, 12)] = 1 }
    END { s = 0; n = 0; for (k in c) { if (k in e) s++; else u[k] = 1 } for (k in u) n++; print s, n }'
}
# a failed step (set -e) must not leave the storm or a collector running
RUNNING=()
trap 'for p in "${RUNNING[@]}"; do kill -KILL "$p" 2>/dev/null || true; done' EXIT
one() { # round build dir size
  local r=$1 b=$2 dir=$3 cs=$4 ev=$WORK/ev
  rm -rf "$ev"
  "$WORK/openstorm" 2000000000 "$WORK/storm-target" >/dev/null &
  local storm=$!
  RUNNING+=("$storm")
  node "$dir/bin/rtev" collect --out "$ev" --key "$WORK/key" --tree "$storm" --chunk-size "$cs" --quiet 2>"$WORK/err" &
  local c=$!
  RUNNING+=("$c")
  # from the first chunk on (the probes are attached and the storm is recorded)
  for _ in $(seq 400); do [ -e "$ev/chunk-000000000001.ndjson.partial" ] || [ -e "$ev/chunk-000000000001.ndjson" ] && break; sleep 0.05; done
  local tr=""
  if [ -n "$BPFTRACE" ]; then
    # (timeout delivers the SIGINT: a background job of a script ignores SIGINT sent to it by kill)
    timeout -s INT "$((SECS + 1))" "$BPFTRACE" -q -e "tracepoint:syscalls:sys_enter_openat /tid == $c/ { @s[tid] = nsecs; }
      tracepoint:syscalls:sys_exit_openat /tid == $c && @s[tid] != 0/ { @all[(nsecs - @s[tid]) / 1000] = count(); delete(@s[tid]); }
      END { print(@all); clear(@all); clear(@s); }" > "$WORK/bt.out" 2>/dev/null &
    tr=$!
    RUNNING+=("$tr")
    sleep 1
  fi
  local s0 u0 umax=0 s u
  read -r s0 u0 < <(count "$ev")
  local t0; t0=$(date +%s.%N)
  for _ in $(seq "$SECS"); do
    sleep 1
    read -r s u < <(count "$ev")
    [ "$u" -gt "$umax" ] && umax=$u
  done
  local t1; t1=$(date +%s.%N)
  read -r s u < <(count "$ev")
  local bytes; bytes=$( (cd "$ev" && for f in chunk-*.dsse.json; do echo "${f%.dsse.json}.ndjson"; done | xargs -r stat -c %s 2>/dev/null) | awk '{t += $1} END {print t + 0}' || true)
  [ -n "$tr" ] && { wait "$tr" || true; }
  kill -KILL "$c" "$storm" 2>/dev/null || true
  wait "$c" 2>/dev/null || true; wait "$storm" 2>/dev/null || true
  local p50=- p99=- calls=0
  if [ -n "$tr" ]; then
    read -r p50 p99 calls < <(sed -n 's/^@all\[\([0-9]*\)\]: \([0-9]*\)$/\1 \2/p' "$WORK/bt.out" | sort -n | awk '{v[NR] = $1; c[NR] = $2; n += $2} END {
      if (n == 0) { print "- - 0"; exit } a = 0; p = "-"; q = "-"; for (i = 1; i <= NR; i++) { a += c[i]; if (p == "-" && a >= n * 0.5) p = v[i]; if (q == "-" && a >= n * 0.99) q = v[i] } print p, q, n }')
  fi
  awk -v r="$r" -v b="$b" -v cs="$cs" -v t0="$t0" -v t1="$t1" -v s0="$s0" -v u0="$u0" -v s="$s" -v u="$u" -v um="$umax" -v by="$bytes" -v p50="$p50" -v p99="$p99" -v calls="$calls" 'BEGIN {
    d = t1 - t0; printf "%s\t%s\t%s\t%.1f\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%s\t%s\t%s\n", r, b, cs, d, s, u, um, by / 1048576, (s - s0) / d, (s + u - s0 - u0) / d, p50, p99, calls }' | tee -a "$WORK/runs.tsv"
}
for r in $(seq "$ROUNDS"); do
  for cs in $SIZES; do
    for spec in "${BUILDS[@]}"; do
      one "$r" "${spec%%=*}" "${spec#*=}" "$cs"
    done
  done
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg); raw: $WORK/runs.tsv"
rm -rf "$WORK/ev"
