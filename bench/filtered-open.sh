#!/usr/bin/env bash
# What a filtered-out open costs, and what the attach options would cost (docs/benchmarks.md,
# "Filtered-out open"). Alternating rounds of an open storm of N opens (bench/openstorm.c) under:
#   none          nothing attached
#   rtev          rtev collect --stdout --pid 1: every storm open is dropped by rtev's kernel filter
#                 (sys_enter/sys_exit of openat, openat2, open, creat: 8 syscall tracepoints)
#   tp8_empty     bpftrace, the same 8 syscall tracepoints, each program a pid compare that fails
#   raw_empty     bpftrace, the raw_syscalls sys_enter/sys_exit tracepoints (every syscall of the host
#                 runs them: the storm's close() too), a syscall-number check first, then the pid compare
# and prints the storm's system time per open (CPU time: what the kernel adds to the syscall) and
# its wall time per open. Run as root after `make build`: bench/filtered-open.sh [N] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
N=${1:-1000000}; ROUNDS=${2:-3}
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
WORK=$(mktemp -d /tmp/rtev-filtered-open.XXXXXX)
TARGET=$WORK/storm-target
echo x > "$TARGET"
gcc -O2 -Wall -o "$WORK/openstorm" bench/openstorm.c
echo "filtered-out open: N=$N rounds=$ROUNDS date=$(date -u +%FT%TZ) commit=$(git rev-parse --short HEAD) kernel=$(uname -r) load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'round\tvariant\tstorm_sys_us_per_open\tstorm_wall_us_per_open\n' | tee "$WORK/runs.tsv"
wait_links() {
  for _ in $(seq 400); do
    if ls -l "/proc/$1/fd" 2>/dev/null | grep -q 'bpf_link\|bpf-link\|perf_event'; then sleep 0.5; return 0; fi
    sleep 0.05
  done
  echo "probes never attached for pid $1" >&2; return 1
}
storm() { # round variant
  local line; line=$("$WORK/openstorm" "$N" "$TARGET")
  awk -v r="$1" -v v="$2" -v n="$N" '{printf "%s\t%s\t%.3f\t%.3f\n", r, v, $5/n, $2/1000/n}' <<<"$line" | tee -a "$WORK/runs.tsv"
}
TP8=''
for sc in openat openat2 open creat; do
  TP8="$TP8 tracepoint:syscalls:sys_enter_$sc /pid == 1/ { @e = count(); } tracepoint:syscalls:sys_exit_$sc /pid == 1/ { @x = count(); }"
done
# x86-64 numbers: open 2, creat 85, openat 257, openat2 437
RAW='tracepoint:raw_syscalls:sys_enter { $id = args->id; if ($id == 257 || $id == 2 || $id == 437 || $id == 85) { if (pid == 1) { @e = count(); } } }
tracepoint:raw_syscalls:sys_exit { $id = args->id; if ($id == 257 || $id == 2 || $id == 437 || $id == 85) { if (pid == 1) { @x = count(); } } }'
with_bg() { # round variant cmd...
  local r=$1 v=$2; shift 2
  "$@" > "$WORK/bg.out" 2> "$WORK/bg.err" &
  local p=$!
  wait_links $p
  storm "$r" "$v"
  # bpftrace can miss a SIGINT that comes while it still attaches: ask again until it exits
  for _ in $(seq 30); do kill -INT $p 2>/dev/null || break; sleep 1; kill -0 $p 2>/dev/null || break; done
  wait $p || true
}
"$WORK/openstorm" 20000 "$TARGET" >/dev/null
for r in $(seq "$ROUNDS"); do
  storm "$r" none
  with_bg "$r" rtev node "$REPO/bin/rtev" collect --stdout --quiet --pid 1
  with_bg "$r" tp8_empty bpftrace -e "$TP8"
  with_bg "$r" raw_empty bpftrace -e "$RAW"
done
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").slice(1).map((l) => l.split("\t"));
const med = (v) => { v = v.map(Number).sort((a, b) => a - b); const m = v.length >> 1; return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2; };
const by = {};
for (const r of rows) (by[r[1]] ??= []).push(r);
const base = med(by.none.map((r) => r[2]));
for (const [v, rs] of Object.entries(by)) console.log(`${v}: storm sys ${med(rs.map((r) => r[2])).toFixed(3)} µs/open (+${(med(rs.map((r) => r[2])) - base).toFixed(3)}), wall ${med(rs.map((r) => r[3])).toFixed(3)} µs/open`);
' "$WORK/runs.tsv"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg); raw: $WORK/runs.tsv"
