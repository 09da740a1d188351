#!/usr/bin/env bash
# A/B of builds under the open storm, in alternating rounds of one run (docs/benchmarks.md,
# "Signed path"). A build is an addon (NAME=FILE.node: this checkout with RTEV_NATIVE_ADDON=FILE)
# or a whole built checkout (NAME=DIR: DIR/bin/rtev). For each round and build: `rtev collect
# --stdout` (or the MODE given) of an open storm of N opens, and
#   - the collector's CPU (its rusage, the storm's own subtracted), per event;
#   - the storm's system time per open (the kernel side: syscall, the BPF programs, the ring write);
#   - the storm's wall time per open; drops; peak RSS.
# Every round keeps its files in WORK/rounds/R-NAME.* (printed at the end): the collector's stderr
# (.err), /usr/bin/time (.time), the storm's line (.storm), and a sampler's view of the collector
# every 0.2 s: the last /proc/PID/task/*/stat of each thread (.tasks: per-thread CPU near exit,
# summed per thread name into WORK/threads.tsv) and a timeline of its memory and thread CPU
# (.timeline: elapsed s, VmRSS, RssAnon, RssFile kB, the host's MemAvailable kB and I/O pressure
# total µs (/proc/pressure/io "some"), then name=utime+stime ticks per thread, main = the main thread).
# Run as root after `make build`:
#   bench/addon-ab.sh N ROUNDS NAME=ADDON.node|DIR NAME=ADDON.node|DIR ...   (MODE=signed: --out --key;
#   VERBOSE=1: collect --verbose, the order and enrichment counters at the end of each .err)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
N=${1:?N}; ROUNDS=${2:?ROUNDS}; shift 2
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
WORK=$(mktemp -d /tmp/rtev-addon-ab.XXXXXX)
TARGET=$WORK/storm-target
echo x > "$TARGET"
gcc -O2 -Wall -o "$WORK/openstorm" bench/openstorm.c
export RTEV_KEY_DIR=$WORK/keys
node "$REPO/bin/rtev" keygen --out "$WORK/key" >/dev/null 2>&1
MODE=${MODE:-stdout}
echo "addon A/B: N=$N rounds=$ROUNDS mode=$MODE date=$(date -u +%FT%TZ) commit=$(git rev-parse --short HEAD) load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'round\taddon\tcollector_cpu_us_per_event\tstorm_sys_us_per_open\tstorm_wall_us_per_open\tdelivered\tdrops\tpeak_rss_kb\n' | tee "$WORK/runs.tsv"
printf 'round\taddon\tthread\tthreads\tcpu_s\n' > "$WORK/threads.tsv"
mkdir -p "$WORK/rounds"
CLK=$(getconf CLK_TCK)
# sample PID PREFIX: until PID exits, every 0.2 s: the last stat line seen of each of its threads,
# those that exited included (PREFIX.tasks), and a timeline row (PREFIX.timeline). Builtins only,
# but for one mv per sample.
sample() {
  local pid=$1 prefix=$2 t0=${EPOCHREALTIME/./} line rss anon file avail iopsi k v now zombie=0 tid
  local -A last=()
  while [ -d "/proc/$pid" ]; do
    local row="" comm
    for t in /proc/"$pid"/task/*; do
      read -r line 2>/dev/null < "$t/stat" || continue
      comm=${line#*(}; comm=${comm%%)*}; comm=${comm// /_}
      local rest=${line##*) }; local f=($rest)
      # exited, not yet reaped: what is left is the leader alone, keep the last live view
      [ "${f[0]}" = Z ] && { zombie=1; break; }
      tid=${t##*/}
      last[$tid]=$line
      [ "$tid" = "$pid" ] && comm=main
      row+=" $comm=$(( f[11] + f[12] ))"
    done
    [ $zombie = 1 ] && break
    rss=0; anon=0; file=0; avail=0; iopsi=-
    while read -r k v _; do
      case $k in VmRSS:) rss=$v ;; RssAnon:) anon=$v ;; RssFile:) file=$v ;; esac
    done 2>/dev/null < "/proc/$pid/status" || true
    while read -r k v _; do [ "$k" = MemAvailable: ] && { avail=$v; break; }; done < /proc/meminfo
    # the host's I/O pressure (the total µs some task stalled on I/O; its growth between rows)
    [ -r /proc/pressure/io ] && { read -r _ _ _ _ v < /proc/pressure/io; iopsi=${v#total=}; }
    printf '%s\n' "${last[@]}" > "$prefix.tasks.tmp" && mv -f "$prefix.tasks.tmp" "$prefix.tasks"
    now=${EPOCHREALTIME/./}
    printf '%d.%d %s %s %s %s %s%s\n' $(( (now - t0) / 1000000 )) $(( (now - t0) / 100000 % 10 )) "$rss" "$anon" "$file" "$avail" "$iopsi" "$row" >> "$prefix.timeline"
    sleep 0.2
  done
  rm -f "$prefix.tasks.tmp"
}
"$WORK/openstorm" 20000 "$TARGET" >/dev/null
for r in $(seq "$ROUNDS"); do
  for spec in "$@"; do
    name=${spec%%=*}; addon=${spec#*=}
    if [ "$MODE" = signed ]; then out=(--out "$WORK/ev" --key "$WORK/key"); else out=(--stdout); fi
    if [ -d "$addon" ]; then run=(env node "$addon/bin/rtev"); else run=(env RTEV_NATIVE_ADDON="$addon" node "$REPO/bin/rtev"); fi
    verbose=(); [ "${VERBOSE:-0}" = 1 ] && verbose=(--verbose)
    P=$WORK/rounds/$r-$name
    /usr/bin/time -f '%U %S %M' -o "$P.time" "${run[@]}" collect "${out[@]}" "${verbose[@]}" \
      --command-stdout "$P.storm" -- "$WORK/openstorm" "$N" "$TARGET" > "$WORK/out.ndjson" 2> "$P.err" &
    tpid=$!
    cpid=""
    for _ in $(seq 100); do
      read -r cpid _ < "/proc/$tpid/task/$tpid/children" 2>/dev/null || true
      [ -n "$cpid" ] && break
      sleep 0.01
    done
    [ -n "$cpid" ] && sample "$cpid" "$P" &
    spid=$!
    wait "$tpid" || echo "round $r $name: the collector exited with status $? (see $P.err)" >&2
    wait "$spid" 2>/dev/null || true
    if [ -d "$WORK/ev" ]; then delivered=$(cat "$WORK"/ev/chunk-*.ndjson | grep -cF "\"path\":\"$TARGET\"" || true)
    else delivered=$(grep -cF "\"path\":\"$TARGET\"" "$WORK/out.ndjson" || true); fi
    lost=$(sed -n 's/.* \([0-9]*\) lost,.*/\1/p' "$P.err" | tail -1)
    read -r u s m < <(tail -1 "$P.time")
    read -r _ ns _ su ss < <(tail -1 "$P.storm")
    awk -v r="$r" -v a="$name" -v u="$u" -v s="$s" -v su="$su" -v ss="$ss" -v ns="$ns" -v n="$N" -v d="$delivered" -v l="$lost" -v m="$m" \
      'BEGIN { printf "%s\t%s\t%.3f\t%.3f\t%.3f\t%s\t%s\t%s\n", r, a, ((u + s) * 1e6 - su - ss) / (d > 0 ? d : 1), ss / n, ns / 1000 / n, d, l, m }' | tee -a "$WORK/runs.tsv"
    # per-thread CPU near exit: the main thread, rtev-ring, the busiest other thread (the seal
    # worker's, in a signed run) and all other threads together (V8 platform workers, libuv)
    [ -s "$P.tasks" ] && awk -v r="$r" -v a="$name" -v clk="$CLK" -v pid="$cpid" '
      { tid = $1; line = $0; sub(/^[0-9]+ \(/, "", line); comm = line; sub(/\) .*/, "", comm); sub(/.*\) /, "", line)
        split(line, f, " "); cpu = (f[12] + f[13]) / clk
        if (tid == pid) k = "main"; else if (comm == "rtev-ring") k = "rtev-ring"; else { other += cpu; if (cpu > top) top = cpu; nother++; next }
        c[k] += cpu; n[k]++ }
      END { for (k in c) printf "%s\t%s\t%s\t%d\t%.2f\n", r, a, k, n[k], c[k]
            printf "%s\t%s\tbusiest-other\t1\t%.2f\n%s\t%s\tother\t%d\t%.2f\n", r, a, top, r, a, nother, other }' "$P.tasks" >> "$WORK/threads.tsv"
    if [ -n "$lost" ] && [ "$lost" != 0 ]; then echo "round $r $name LOST $lost: $P.*" | tee -a "$WORK/lossy.txt"; fi
    rm -rf "$WORK/ev" "$WORK/out.ndjson"
  done
done
echo "medians:"
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").slice(1).map((l) => l.split("\t"));
const med = (v) => { v = v.map(Number).sort((a, b) => a - b); const m = v.length >> 1; return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2; };
const by = {};
for (const r of rows) (by[r[1]] ??= []).push(r);
for (const [a, rs] of Object.entries(by)) console.log(`${a}: collector CPU ${med(rs.map((r) => r[2])).toFixed(3)} µs/event, storm sys ${med(rs.map((r) => r[3])).toFixed(3)} µs/open, wall ${med(rs.map((r) => r[4])).toFixed(3)} µs/open, drops ${rs.map((r) => r[6]).join("/")}, peak RSS ${(med(rs.map((r) => r[7])) / 1024).toFixed(0)} MB`);
' "$WORK/runs.tsv"
echo "per-thread CPU (s, near exit; medians over rounds):"
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").slice(1).map((l) => l.split("\t"));
const med = (v) => { v = v.map(Number).sort((a, b) => a - b); const m = v.length >> 1; return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2; };
const by = {};
for (const r of rows) ((by[r[1]] ??= {})[r[2]] ??= []).push(r[4]);
for (const [a, threads] of Object.entries(by)) console.log(`${a}: ` + Object.entries(threads).map(([t, v]) => [t, med(v)]).sort((x, y) => y[1] - x[1]).filter(([, v]) => v >= 0.01).map(([t, v]) => `${t} ${v.toFixed(2)}`).join(", "));
' "$WORK/threads.tsv"
[ -s "$WORK/lossy.txt" ] && { echo "rounds with losses:"; cat "$WORK/lossy.txt"; }
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg); raw: $WORK/runs.tsv, per thread $WORK/threads.tsv, per round $WORK/rounds/"
