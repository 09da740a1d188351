#!/usr/bin/env bash
# The fixed cost of a collector run (docs/benchmarks.md, "Session 3" and "Session 4 (h22)"): CPU
# of runs that see no events, split into what they do. Alternating rounds of:
#   node_empty     node -e 0 (the runtime alone)
#   node_empty_no_extra_ca   the same without NODE_EXTRA_CA_CERTS, when the environment sets it: node 20
#                  parses that CA bundle at every start (0.05-0.09 s here), before any rtev code runs
#   cli_load       node -e 'require(dist/src/cli/commands/collect.js)' (module loading from dist/)
#   collect_help   rtev collect --help (node, bin/rtev and the collect command's modules as the CLI loads
#                  them: from the bundle dist/bundle/main.js where there is one)
#   stdout_true    rtev collect --stdout -- true (+ BPF load and attach, the rings, exit)
#   signed_true    rtev collect --out DIR --key K -- true (+ the seal worker, package attribution of `true`)
#   signed_storm   with STORM=N: rtev collect --out DIR --key K -- openstorm N (the collector's CPU without
#                  the storm's own, its peak RSS and the records lost: what the fixed cost is at N events)
# Prints user and system CPU s and peak RSS per run and the medians; the BPF programs'
# verification is system time of the load (BPF_PROG_LOAD), listed per program once with
# strace -T at the end (for the first build).
# Run as root after `make build`:
#   [STORM=N] bench/fixed-cost.sh [ROUNDS] [NAME=DIR[:VAR=VALUE] ...]
# With NAME=DIR arguments (built trees: bin/, dist/, build/, native/build/), every round runs the
# variants of each build in turn (A/B alternating in one run, so a loaded host affects both alike);
# without, the tree this script is in, as "this". `:VAR=VALUE` runs that build's collector with
# environment variables set (e.g. the same tree with and without RTEV_CACHE_DIR=off; several as
# DIR:VAR=VALUE:VAR2=VALUE2, e.g. a dpkg cache directory per build, RTEV_CACHE_DIR=/tmp/x, so builds
# whose index code differs do not replace each other's cache file at every run).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
ROUNDS=${1:-5}
shift || true
BUILDS=("$@")
[ ${#BUILDS[@]} -gt 0 ] || BUILDS=("this=$REPO")
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
WORK=$(mktemp -d /tmp/rtev-fixed.XXXXXX)
export RTEV_KEY_DIR=$WORK/keys
FIRST=${BUILDS[0]#*=}
FIRST=${FIRST%%:*}
STORM=${STORM:-}
if [ -n "$STORM" ]; then
  gcc -O2 -Wall -o "$WORK/openstorm" bench/openstorm.c
  echo x > "$WORK/storm-target"
fi
node "$FIRST/bin/rtev" keygen --out "$WORK/key" >/dev/null 2>&1
echo "fixed cost: rounds=$ROUNDS date=$(date -u +%FT%TZ) commit=$(git rev-parse --short HEAD) node=$(node --version) builds=${BUILDS[*]}"
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)${NODE_EXTRA_CA_CERTS:+; NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS}"
printf 'round\tbuild\tvariant\tuser_s\tsys_s\ttotal_s\tpeak_rss_kb\n' | tee "$WORK/runs.tsv"
one() { # round build variant cmd...
  local r=$1 b=$2 v=$3; shift 3
  /usr/bin/time -f '%U %S %M' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; return 1; }
  read -r u s m < <(tail -1 "$WORK/time")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$b" "$v" "$u" "$s" "$(awk -v u="$u" -v s="$s" 'BEGIN{printf "%.2f", u+s}')" "$m" | tee -a "$WORK/runs.tsv"
}
for r in $(seq "$ROUNDS"); do
  one "$r" - node_empty node -e 0
  if [ -n "${NODE_EXTRA_CA_CERTS:-}" ]; then one "$r" - node_empty_no_extra_ca env -u NODE_EXTRA_CA_CERTS node -e 0; fi
  for spec in "${BUILDS[@]}"; do
    name=${spec%%=*} dir=${spec#*=} envs=()
    if [[ $dir == *:* ]]; then IFS=: read -r -a envs <<< "${dir#*:}"; dir=${dir%%:*}; fi
    one "$r" "$name" cli_load node -e "require('$dir/dist/src/cli/commands/collect.js')"
    one "$r" "$name" collect_help env "${envs[@]}" node "$dir/bin/rtev" collect --help
    one "$r" "$name" stdout_true env "${envs[@]}" node "$dir/bin/rtev" collect --stdout --quiet -- true
    rm -rf "$WORK/ev"
    one "$r" "$name" signed_true env "${envs[@]}" node "$dir/bin/rtev" collect --out "$WORK/ev" --key "$WORK/key" --quiet -- true
    rm -rf "$WORK/ev"
    if [ -n "$STORM" ]; then
      /usr/bin/time -f '%U %S %M' -o "$WORK/time" env "${envs[@]}" node "$dir/bin/rtev" collect --out "$WORK/ev" --key "$WORK/key" \
        --command-stdout "$WORK/storm.out" -- "$WORK/openstorm" "$STORM" "$WORK/storm-target" >/dev/null 2>"$WORK/err"
      read -r u s m < <(tail -1 "$WORK/time")
      # the storm prints "N elapsed_ns pid utime_us stime_us": its own CPU is not the collector's
      read -r _ _ _ su ss < <(tail -1 "$WORK/storm.out")
      lost=$(sed -n 's/.* \([0-9]*\) lost,.*/\1/p' "$WORK/err" | tail -1)
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\tlost=%s\n' "$r" "$name" signed_storm "$(awk -v u="$u" -v x="$su" 'BEGIN{printf "%.2f", u-x/1e6}')" \
        "$(awk -v s="$s" -v x="$ss" 'BEGIN{printf "%.2f", s-x/1e6}')" "$(awk -v u="$u" -v s="$s" -v a="$su" -v b="$ss" 'BEGIN{printf "%.2f", u+s-(a+b)/1e6}')" "$m" "${lost:-?}" | tee -a "$WORK/runs.tsv"
      rm -rf "$WORK/ev"
    fi
  done
done
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").slice(1).map((l) => l.split("\t"));
const med = (v) => { v = v.map(Number).sort((a, b) => a - b); const m = v.length >> 1; return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2; };
const by = {};
for (const r of rows) (by[`${r[1]}\t${r[2]}`] ??= []).push(r);
console.log("| build | variant | user s | sys s | CPU s | peak RSS MB |\n| --- | --- | --- | --- | --- | --- |");
for (const [k, rs] of Object.entries(by)) {
  const [b, v] = k.split("\t");
  console.log(`| ${b} | ${v} | ${med(rs.map((r) => r[3])).toFixed(2)} | ${med(rs.map((r) => r[4])).toFixed(2)} | ${med(rs.map((r) => r[5])).toFixed(2)} | ${(med(rs.map((r) => r[6])) / 1024).toFixed(0)} |`);
}
' "$WORK/runs.tsv"
# BPF_PROG_LOAD per program (wall time of the syscall: the verifier), one run of the first build
strace -f -T -e trace=bpf -o "$WORK/strace" node "$FIRST/bin/rtev" collect --stdout --quiet -- true >/dev/null 2>&1 || true
echo "BPF_PROG_LOAD per program (s, wall; ${BUILDS[0]%%=*}):"
grep 'BPF_PROG_LOAD' "$WORK/strace" | sed -n 's/.*prog_name="\([^"]*\)".*<\([0-9.]*\)>$/\2\t\1/p' | sort -rn | awk '{s+=$1; print} END {printf "total\t%.3f s in %d loads\n", s, NR}'
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$WORK"
