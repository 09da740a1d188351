#!/usr/bin/env bash
# A/B of builds under the open storm, in alternating rounds of one run (docs/benchmarks.md,
# "Signed path"). A build is an addon (NAME=FILE.node: this checkout with RTEV_NATIVE_ADDON=FILE)
# or a whole built checkout (NAME=DIR: DIR/bin/rtev). For each round and build: `rtev collect
# --stdout` (or the MODE given) of an open storm of N opens, and
#   - the collector's CPU (its rusage, the storm's own subtracted), per event;
#   - the storm's system time per open (the kernel side: syscall, the BPF programs, the ring write);
#   - the storm's wall time per open; drops; peak RSS.
# Run as root after `make build`:
#   bench/addon-ab.sh N ROUNDS NAME=ADDON.node|DIR NAME=ADDON.node|DIR ...   (MODE=signed: --out --key)
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
"$WORK/openstorm" 20000 "$TARGET" >/dev/null
for r in $(seq "$ROUNDS"); do
  for spec in "$@"; do
    name=${spec%%=*}; addon=${spec#*=}
    if [ "$MODE" = signed ]; then out=(--out "$WORK/ev" --key "$WORK/key"); else out=(--stdout); fi
    if [ -d "$addon" ]; then run=(env node "$addon/bin/rtev"); else run=(env RTEV_NATIVE_ADDON="$addon" node "$REPO/bin/rtev"); fi
    /usr/bin/time -f '%U %S %M' -o "$WORK/time" "${run[@]}" collect "${out[@]}" \
      --command-stdout "$WORK/storm.out" -- "$WORK/openstorm" "$N" "$TARGET" > "$WORK/out.ndjson" 2> "$WORK/err"
    if [ -d "$WORK/ev" ]; then delivered=$(cat "$WORK"/ev/chunk-*.ndjson | grep -cF "\"path\":\"$TARGET\"" || true)
    else delivered=$(grep -cF "\"path\":\"$TARGET\"" "$WORK/out.ndjson" || true); fi
    lost=$(sed -n 's/.* \([0-9]*\) lost,.*/\1/p' "$WORK/err" | tail -1)
    read -r u s m < <(tail -1 "$WORK/time")
    read -r _ ns _ su ss < <(tail -1 "$WORK/storm.out")
    awk -v r="$r" -v a="$name" -v u="$u" -v s="$s" -v su="$su" -v ss="$ss" -v ns="$ns" -v n="$N" -v d="$delivered" -v l="$lost" -v m="$m" \
      'BEGIN { printf "%s\t%s\t%.3f\t%.3f\t%.3f\t%s\t%s\t%s\n", r, a, ((u + s) * 1e6 - su - ss) / (d > 0 ? d : 1), ss / n, ns / 1000 / n, d, l, m }' | tee -a "$WORK/runs.tsv"
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
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg); raw: $WORK/runs.tsv"
