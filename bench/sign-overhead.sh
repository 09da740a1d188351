#!/usr/bin/env bash
# What signing costs on top of --stdout, per event and per run, in one run (docs/benchmarks.md,
# "Session 5 (h27)"). For each round and build, alternating:
#   stdout_true / signed_true     rtev collect --stdout | --out DIR --key K -- true (the fixed cost)
#   stdout_storm / signed_storm   the same over an open storm of N opens of one file (bench/openstorm.c)
#   stdout_mixed / signed_mixed   with MIXED=1: over `cat` of the first M regular files under /usr
#                                 (M = MIXED_FILES, default 20000): distinct paths, so package
#                                 attribution resolves each one, and lines of varying length
# The collector's CPU is its rusage less the workload's own (the storm prints it; the mixed
# workload runs under /usr/bin/time). Per event = (CPU - the same build's *_true median) / events.
# Run as root after `make build`:
#   [MIXED=1] bench/sign-overhead.sh N ROUNDS NAME=DIR [NAME=DIR ...]   (N=0: no storm)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:?N}; ROUNDS=${2:?ROUNDS}; shift 2
BUILDS=("$@")
[ ${#BUILDS[@]} -gt 0 ] || BUILDS=("this=$PWD")
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
WORK=$(mktemp -d /tmp/rtev-sign-overhead.XXXXXX)
export RTEV_KEY_DIR=$WORK/keys
gcc -O2 -Wall -o "$WORK/openstorm" bench/openstorm.c
echo x > "$WORK/storm-target"
FIRST=${BUILDS[0]#*=}
node "$FIRST/bin/rtev" keygen --out "$WORK/key" >/dev/null 2>&1
MIXED=${MIXED:-}
if [ -n "$MIXED" ]; then
  find /usr -xdev -type f -size -1024k 2>/dev/null | head -n "${MIXED_FILES:-20000}" > "$WORK/files" || true # (find ends on SIGPIPE)
  xargs -a "$WORK/files" -d '\n' cat > /dev/null 2>&1 || true # warm the page cache
fi
echo "sign overhead: N=$N rounds=$ROUNDS date=$(date -u +%FT%TZ) commit=$(git rev-parse --short HEAD) builds=${BUILDS[*]} load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'round\tbuild\tvariant\tcollector_cpu_s\tevents\tpeak_rss_kb\tlost\n' | tee "$WORK/runs.tsv"
one() { # round build dir mode workload
  local r=$1 b=$2 dir=$3 mode=$4 w=$5 out events own lost
  if [ "$mode" = signed ]; then out=(--out "$WORK/ev" --key "$WORK/key"); else out=(--stdout); fi
  rm -rf "$WORK/ev"
  cso=$WORK/cmd.out
  case $w in
    true) cmd=(true) ;;
    storm) cmd=("$WORK/openstorm" "$N" "$WORK/storm-target") ;;
    mixed) cmd=(/usr/bin/time -f '%U %S' -o "$WORK/wtime" xargs -a "$WORK/files" -d '\n' cat); cso=/dev/null ;;
  esac
  /usr/bin/time -f '%U %S %M' -o "$WORK/time" node "$dir/bin/rtev" collect "${out[@]}" --command-stdout "$cso" -- "${cmd[@]}" > "$WORK/out.ndjson" 2> "$WORK/err" || true
  read -r u s m < <(tail -1 "$WORK/time")
  own=0
  case $w in
    storm) read -r _ _ _ su ss < <(tail -1 "$WORK/cmd.out"); own=$(awk -v a="$su" -v b="$ss" 'BEGIN { printf "%.3f", (a + b) / 1e6 }') ;;
    mixed) read -r wu ws < <(tail -1 "$WORK/wtime"); own=$(awk -v a="$wu" -v b="$ws" 'BEGIN { printf "%.3f", a + b }') ;;
  esac
  if [ "$mode" = signed ]; then events=$(cat "$WORK"/ev/chunk-*.ndjson | wc -l); else events=$(wc -l < "$WORK/out.ndjson"); fi
  lost=$(sed -n 's/.* \([0-9]*\) lost,.*/\1/p' "$WORK/err" | tail -1)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$b" "${mode}_$w" "$(awk -v u="$u" -v s="$s" -v o="$own" 'BEGIN { printf "%.3f", u + s - o }')" "$events" "$m" "${lost:-?}" | tee -a "$WORK/runs.tsv"
}
for r in $(seq "$ROUNDS"); do
  for spec in "${BUILDS[@]}"; do
    name=${spec%%=*} dir=${spec#*=}
    # each build its own dpkg index cache: builds whose index code differs would otherwise
    # invalidate each other's (src/packages/dpkg-cache.ts keys it by the code's hash)
    export RTEV_CACHE_DIR=$WORK/cache-$name
    mkdir -p -m 700 "$RTEV_CACHE_DIR"
    # alternate the order of the modes from round to round
    if [ $((r % 2)) -eq 1 ]; then modes=(stdout signed); else modes=(signed stdout); fi
    for mode in "${modes[@]}"; do
      one "$r" "$name" "$dir" "$mode" true
      if [ "$N" -gt 0 ]; then one "$r" "$name" "$dir" "$mode" storm; fi
      if [ -n "$MIXED" ]; then one "$r" "$name" "$dir" "$mode" mixed; fi
    done
  done
done
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").slice(1).map((l) => l.split("\t"));
const med = (v) => { v = v.map(Number).sort((a, b) => a - b); const m = v.length >> 1; return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2; };
const get = (b, v) => rows.filter((r) => r[1] === b && r[2] === v);
const builds = [...new Set(rows.map((r) => r[1]))];
console.log("| build | workload | stdout fixed s | signed fixed s | stdout µs/event w/o fixed | signed µs/event w/o fixed | signed − stdout µs/event | peak RSS MB stdout / signed |");
console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
for (const b of builds) {
  const fs_ = med(get(b, "stdout_true").map((r) => r[3])), fg = med(get(b, "signed_true").map((r) => r[3]));
  for (const w of ["storm", "mixed"]) {
    const so = get(b, `stdout_${w}`), sg = get(b, `signed_${w}`);
    if (so.length === 0) continue;
    const per = (rs, f) => med(rs.map((r) => ((Number(r[3]) - f) * 1e6) / Number(r[4])));
    const a = per(so, fs_), c = per(sg, fg);
    console.log(`| ${b} | ${w} | ${fs_.toFixed(2)} | ${fg.toFixed(2)} | ${a.toFixed(3)} | ${c.toFixed(3)} | ${(c - a).toFixed(3)} | ${(med(so.map((r) => r[5])) / 1024).toFixed(0)} / ${(med(sg.map((r) => r[5])) / 1024).toFixed(0)} |`);
  }
}
' "$WORK/runs.tsv"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg); raw: $WORK/runs.tsv"
rm -rf "$WORK/ev" "$WORK/out.ndjson"
