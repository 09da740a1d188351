#!/usr/bin/env bash
# The unit tier: `node --test dist/test/unit/*.test.js`, run as an unprivileged user.
#
#   scripts/unit-tests.sh [NODE] [node --test options...]     (NODE defaults to `node` on PATH)
#
# As root it drops to `nobody` (setpriv: no supplementary groups, no capabilities) with a fresh
# HOME and TMPDIR that only it can write, so a unit test that silently needs root (a mount, a
# file under /root, a port below 1024, a bpf() call) fails here and not on a developer's machine.
# The checkout stays read-only for that user: a unit test must not write into it either.
# Where `nobody` cannot reach the checkout (a clone under /root, mode 0700), the checkout is
# bind-mounted read-only at a reachable path in a private mount namespace for the run.
# As a non-root user it simply runs the tier as that user.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
node=node
if [ $# -gt 0 ] && [[ $1 != -* ]]; then node=$1; shift; fi
node=$(command -v "$node") || { echo "unit-tests.sh: no node binary '$node'" >&2; exit 2; }
shopt -s nullglob
files=(dist/test/unit/*.test.js)
[ ${#files[@]} -gt 0 ] || { echo "unit-tests.sh: no dist/test/unit/*.test.js: run make build" >&2; exit 2; }
echo "unit tier: $("$node" --version) ($node), ${#files[@]} files, as $(if [ "$(id -u)" -eq 0 ]; then echo "nobody (dropped from root)"; else id -un; fi)"
if [ "$(id -u)" -ne 0 ]; then
  exec "$node" --test "$@" "${files[@]}"
fi

user=nobody
group=$(id -gn "$user")
home=$(mktemp -d /tmp/rtev-unit-home.XXXXXX)
mnt=""
cleanup() {
  rm -rf -- "$home"
  if [ -n "$mnt" ]; then rmdir -- "$mnt" 2>/dev/null || true; fi # rmdir only: never a recursive delete of a mount point
}
trap cleanup EXIT
chown "$user:$group" "$home"
drop=(setpriv --reuid="$user" --regid="$group" --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs
  env -u XDG_RUNTIME_DIR -u XDG_CONFIG_HOME -u XDG_CACHE_HOME -u GOCACHE -u GOPATH HOME="$home" TMPDIR="$home" USER="$user" LOGNAME="$user")
# the node binary must be reachable too (a Node 22 under a cache dir of root's)
if "${drop[@]}" test -r "$repo/package.json" -a -x "$repo/dist/test/unit" -a -x "$node"; then
  "${drop[@]}" bash -c 'cd "$1" && shift && exec "$@"' _ "$repo" "$node" --test "$@" "${files[@]}"
  exit
fi
# not reachable as nobody: the same checkout, bind-mounted read-only where nobody can reach it
mnt=$(mktemp -d /tmp/rtev-unit-repo.XXXXXX)
chmod 0755 "$mnt"
nodebin=$node
case $node in "$repo"/*) nodebin=$mnt/${node#"$repo"/} ;; esac
unshare --mount --propagation private -- bash -c '
  set -e
  mount --bind "$1" "$2" && mount -o remount,bind,ro "$2"
  cd "$2" && shift 2 && exec "$@"' _ "$repo" "$mnt" "${drop[@]}" "$nodebin" --test "$@" "${files[@]}"
