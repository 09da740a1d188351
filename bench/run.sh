#!/usr/bin/env bash
# Open storm benchmark (GitHub issue 2; results in docs/benchmarks.md, "Open storm").
# Alternating rounds of: base | rtev --stdout | bpftrace | rtev filtered out in the kernel |
# rtev --out (signed chunks) | both rtev runs again with the fast path off (REFERENCE=0 skips them).
# Run as root after `make build`:
#   bench/run.sh [--smoke] [N] [ROUNDS]       (defaults: N=1000000, ROUNDS=3; --smoke: N=20000)
# Prints one line per run and a table of medians; raw numbers are kept in $WORK/runs.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
SMOKE=0
if [ "${1:-}" = "--smoke" ]; then SMOKE=1; shift; fi
N=${1:-$([ $SMOKE = 1 ] && echo 20000 || echo 1000000)}
ROUNDS=${2:-3}
[ "$(id -u)" -eq 0 ] || { echo "bench/run.sh needs root" >&2; exit 1; }
WORK=$(mktemp -d /tmp/rtev-openstorm.XXXXXX)
STORM=$WORK/openstorm
TARGET=$WORK/storm-target          # only the storm opens this file: records for it == storm opens
echo x > "$TARGET"
gcc -O2 -Wall -o "$STORM" bench/openstorm.c
RTEV=(node "$REPO/bin/rtev")
export RTEV_KEY_DIR=$WORK/keys
"${RTEV[@]}" keygen --out "$WORK/key" >/dev/null 2>&1
CLK=$(getconf CLK_TCK)
RUNS=$WORK/runs.tsv
printf 'round\tscenario\tus_per_open\tdelivered\texpected\tdrops\tcollector_cpu_s\tcpu_us_per_event\tpeak_rss_kb\tstorm_sys_us_per_open\n' > "$RUNS"

# storm prints "N elapsed_ns pid utime_us stime_us" (the last two: its own rusage)
us_per_open() { awk -v n="$N" '{printf "%.3f", $2/1000/n}' <<<"$1"; }
# the storm's own system time per open: the syscall plus what the BPF programs and the ring write add
# to it (CPU time: steadier than wall time on a loaded host)
sys_us_per_open() { awk -v n="$N" '{printf "%.3f", $5/n}' <<<"$1"; }
storm_cpu_s() { awk '{printf "%.6f", ($4+$5)/1e6}' <<<"$1"; }
proc_cpu_s() { awk -v clk="$CLK" '{sub(/.*\) /,""); printf "%.6f", ($12+$13)/clk}' "/proc/$1/stat"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
lost_of() { sed -n 's/.* \([0-9]*\) lost,.*/\1/p' "$1" | tail -1; }
wait_links() { # until the collector/bpftrace holds a bpf link (probes attached)
  for _ in $(seq 200); do
    local fds; fds=$(ls -l "/proc/$1/fd" 2>/dev/null || true)
    if grep -q 'bpf_link\|bpf-link\|perf_event' <<<"$fds"; then sleep 0.5; return 0; fi
    sleep 0.05
  done
  echo "probes never attached for pid $1" >&2; return 1
}
row() { # round scenario storm_line delivered drops cpu_s rss
  local us; us=$(us_per_open "$3")
  local per; per=$(awk -v c="$6" -v d="$4" 'BEGIN{ if (d>0) printf "%.3f", c*1e6/d; else printf "-" }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$us" "$4" "$N" "$5" "$6" "$per" "$7" "$(sys_us_per_open "$3")" | tee -a "$RUNS"
}

run_base() {
  local line; line=$("$STORM" "$N" "$TARGET")
  row "$1" base "$line" 0 0 0 0
}
run_rtev_cmd() { # rtev collect <output args> -- openstorm   (scenario name, output args...)
  local r=$1 name=$2; shift 2
  local out=$WORK/out.ndjson
  /usr/bin/time -f '%U %S %M' -o "$WORK/time" env RTEV_FAST_PATH="${FAST_PATH:-1}" "${RTEV[@]}" collect "$@" --command-stdout "$WORK/storm.out" -- "$STORM" "$N" "$TARGET" > "$out" 2> "$WORK/err"
  local line delivered total storm cpu
  line=$(tail -1 "$WORK/storm.out")
  if [ -d "$WORK/ev" ]; then delivered=$(cat "$WORK"/ev/chunk-*.ndjson | grep -cF "\"path\":\"$TARGET\"" || true)
  else delivered=$(grep -cF "\"path\":\"$TARGET\"" "$out" || true); fi
  read -r u s m < <(tail -1 "$WORK/time")
  storm=$(storm_cpu_s "$line")
  cpu=$(awk -v u="$u" -v s="$s" -v st="$storm" 'BEGIN{printf "%.3f", u+s-st}')  # time counts the storm too: subtract its own rusage
  row "$r" "$name" "$line" "$delivered" "$(lost_of "$WORK/err")" "$cpu" "$m"
  rm -rf "$out" "$WORK/ev"
}
run_rtev_stdout() { run_rtev_cmd "$1" rtev_stdout --stdout; }
run_rtev_signed() { run_rtev_cmd "$1" rtev_out_signed --out "$WORK/ev" --key "$WORK/key"; }
# the same with the fast path off (RTEV_FAST_PATH=0): every record through decode -> record -> encode
run_rtev_stdout_ref() { FAST_PATH=0 run_rtev_cmd "$1" rtev_stdout_reference --stdout; }
run_rtev_signed_ref() { FAST_PATH=0 run_rtev_cmd "$1" rtev_out_signed_reference --out "$WORK/ev" --key "$WORK/key"; }
run_rtev_filtered() { # system-wide, but only pid 1: every storm open is dropped by the kernel-side filter
  "${RTEV[@]}" collect --stdout --pid 1 > "$WORK/filtered.ndjson" 2> "$WORK/err" &
  local c=$!
  wait_links $c
  local line; line=$("$STORM" "$N" "$TARGET")
  local cpu rss; cpu=$(proc_cpu_s $c); rss=$(hwm_kb $c)
  kill -INT $c; wait $c || true
  row "$1" rtev_filtered_out "$line" "$(grep -cF "\"path\":\"$TARGET\"" "$WORK/filtered.ndjson" || true)" "$(lost_of "$WORK/err")" "$cpu" "$rss"
}
run_bpftrace() { # the peer: enter/exit pairing like rtev's, every successful openat, printf to a file
  local prog='tracepoint:syscalls:sys_enter_openat { @p[tid] = args->filename; @f[tid] = args->flags; }
tracepoint:syscalls:sys_exit_openat /@p[tid]/ { if (args->ret >= 0) { printf("%llu %d %d %s %d %s\n", nsecs, pid, tid, comm, @f[tid], str(@p[tid])); } delete(@p[tid]); delete(@f[tid]); }'
  bpftrace -e "$prog" -o "$WORK/bt.txt" > /dev/null 2> "$WORK/bt.err" &
  local b=$!
  wait_links $b
  local line; line=$("$STORM" "$N" "$TARGET")
  sleep 0.2
  local cpu rss; cpu=$(proc_cpu_s $b); rss=$(hwm_kb $b)
  kill -INT $b; wait $b || true
  local lost; lost=$( { grep -ho 'Lost [0-9]* events' "$WORK/bt.txt" "$WORK/bt.err" || true; } | awk '{s+=$2} END{print s+0}')
  row "$1" bpftrace "$line" "$(grep -cF " $TARGET" "$WORK/bt.txt" || true)" "$lost" "$cpu" "$rss"
  rm -f "$WORK/bt.txt"
}

echo "open storm: N=$N rounds=$ROUNDS work=$WORK"
echo "date=$(date -u +%FT%TZ) commit=$(git rev-parse --short HEAD) kernel=$(uname -r) node=$(node --version) bpftrace=$(bpftrace --version | awk '{print $2}')"
echo "cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo) x $(nproc)"
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
"$STORM" 20000 "$TARGET" >/dev/null   # warm-up
# fixed cost of a collector run (node start, BPF load/attach, drain, exit): `rtev collect --stdout -- true`
STARTUP=$(for _ in 1 2 3; do /usr/bin/time -f '%U %S' -o "$WORK/time" "${RTEV[@]}" collect --stdout --quiet -- true >/dev/null; awk '{print $1+$2}' "$WORK/time"; done | sort -n | sed -n 2p)
# the signed run's own: the seal worker, and package attribution reading the host's dpkg database
STARTUP_SIGNED=$(for i in 1 2 3; do /usr/bin/time -f '%U %S' -o "$WORK/time" "${RTEV[@]}" collect --out "$WORK/ev-true$i" --key "$WORK/key" --quiet -- true >/dev/null; awk '{print $1+$2}' "$WORK/time"; done | sort -n | sed -n 2p)
rm -rf "$WORK"/ev-true*
echo "collector fixed cost per run (median of 3, CPU s): --stdout $STARTUP, signed --out $STARTUP_SIGNED"
for r in $(seq "$ROUNDS"); do
  run_base "$r"; run_rtev_stdout "$r"; run_bpftrace "$r"; run_rtev_filtered "$r"; run_rtev_signed "$r"
  if [ "${REFERENCE:-1}" = 1 ]; then run_rtev_stdout_ref "$r"; run_rtev_signed_ref "$r"; fi
done

echo
echo "medians over $ROUNDS rounds (N=$N opens per run):"
STARTUP=$STARTUP STARTUP_SIGNED=$STARTUP_SIGNED node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => l.split("\t"));
const head = rows.shift();
const med = (xs) => { const v = xs.filter((x) => x !== "-").map(Number).sort((a, b) => a - b); if (!v.length) return NaN; const m = v.length >> 1; return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2; };
const by = {};
for (const r of rows) (by[r[1]] ??= []).push(r);
const base = med(by.base.map((r) => r[2]));
const startup = (name) => Number(name.startsWith("rtev_out_signed") ? process.env.STARTUP_SIGNED : process.env.STARTUP);
const sysBase = med(by.base.map((r) => r[9]));
console.log("| scenario | µs/open | added µs/open | slowdown | storm sys µs/open (added) | delivered/expected | drops | collector CPU s | CPU µs/event | CPU µs/event w/o fixed cost | peak RSS MB |");
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const [name, rs] of Object.entries(by)) {
  const us = med(rs.map((r) => r[2]));
  const col = (i) => med(rs.map((r) => r[i]));
  console.log(`| ${name} | ${us.toFixed(2)} | ${(us - base).toFixed(2)} | ${(us / base).toFixed(2)}x | ${col(9).toFixed(2)} (+${(col(9) - sysBase).toFixed(2)}) | ${col(3)}/${rs[0][4]} | ${rs.map((r) => r[5]).join("/")} | ${col(6).toFixed(2)} | ${isNaN(col(7)) ? "-" : col(7).toFixed(2)} | ${name.startsWith("rtev") && col(3) > 0 ? ((col(6) - startup(name)) * 1e6 / col(3)).toFixed(2) : "-"} | ${(col(8) / 1024).toFixed(0)} |`);
}
const cpu = (name) => med((by[name] ?? []).map((r) => r[7]));
const ratio = (a, b) => (isNaN(cpu(a)) || isNaN(cpu(b)) ? "-" : (cpu(a) / cpu(b)).toFixed(2) + "x");
const net = (name) => { const rs = by[name] ?? []; const c = med(rs.map((r) => r[6])), d = med(rs.map((r) => r[3])); return d > 0 ? (c - startup(name)) / d : NaN; };
console.log(`CPU per event without the fixed cost of each mode, signed / stdout: ${(net("rtev_out_signed") / net("rtev_stdout")).toFixed(2)}x`);
console.log(`\nCPU per event, ratios of medians: bpftrace / rtev --stdout ${ratio("bpftrace", "rtev_stdout")}, bpftrace / rtev signed ${ratio("bpftrace", "rtev_out_signed")}, signed / stdout ${ratio("rtev_out_signed", "rtev_stdout")}, reference / fast path: stdout ${ratio("rtev_stdout_reference", "rtev_stdout")}, signed ${ratio("rtev_out_signed_reference", "rtev_out_signed")}`);' "$RUNS"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "raw: $RUNS"
