#!/usr/bin/env bash
# A CPython >= 3.12 built with the perf trampoline (`python -X perf`), for the Python case of
# test/unit/symbolize-runtimes.test.ts, at DIR/bin/python3 (make python-perf: DIR=.cache/python3).
# DIR/installed (make's target) names it once it has been checked to run.
#
#   scripts/install-python-perf.sh DIR
#
# - A python3 on PATH that has it (Debian 13's python3 is 3.13): DIR/bin/python3 links to it.
# - Else (Debian 12's python3 is 3.11): Debian 13's own python3.13, from the Debian archive this
#   machine's apt already uses (suite trixie, checked against the Debian archive keyring like any
#   apt download). The packages are unpacked under DIR/root, not installed: the system's packages
#   do not change. Debian 13's python3.13 needs glibc 2.38, so Debian 13's libc6 is unpacked next
#   to it, and patchelf points the binary at that loader and libc. The loader path written into
#   the binary is relative (the kernel resolves it against the working directory), so the tree
#   works wherever it is mounted (scripts/unit-tests.sh may bind-mount the checkout elsewhere for
#   the user nobody); DIR/bin/python3 is a wrapper that runs it from DIR/root. The process's
#   executable is python3.13 itself, as for any installed Python (runtime detection sees that).
# Nothing is downloaded from anywhere but the Debian archive; the npm registry's portable Python
# packages fetch their binaries elsewhere at install time, so they cannot be used here.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
mkdir -p "$1"
dir=$(cd "$1" && pwd -P)
bin=$dir/bin/python3
probe='import sys, sysconfig; print(sys.version_info >= (3, 12) and sysconfig.get_config_var("PY_HAVE_PERF_TRAMPOLINE") == 1)'
ok() { [ "$("$1" -c "$probe" 2>/dev/null)" = True ]; }

rm -rf "$dir/bin" "$dir/root" "$dir/apt" "$dir/installed"
mkdir -p "$dir/bin"
# only Debian's own (apt-installed) Pythons: a Python under a home directory (pyenv) is neither
# reproducible nor reachable by nobody
for p in /usr/bin/python3.14 /usr/bin/python3.13 /usr/bin/python3.12; do
  if [ -x "$p" ] && ok "$p"; then
    ln -s "$(readlink -f "$p")" "$bin"
    echo "$("$bin" --version) with the perf trampoline: $p" | tee "$dir/installed"
    exit 0
  fi
done

case $(dpkg --print-architecture) in
  amd64) triplet=x86_64-linux-gnu loader=ld-linux-x86-64.so.2 ;;
  arm64) triplet=aarch64-linux-gnu loader=ld-linux-aarch64.so.1 ;;
  *) echo "python-perf: no recipe for $(dpkg --print-architecture)" >&2; exit 1 ;;
esac
command -v patchelf >/dev/null || { echo "python-perf: patchelf is missing: make deps (Makefile APT_PACKAGES)" >&2; exit 1; }
# the URI of the Debian archive that apt uses here (a mirror or a snapshot): the source whose
# suite is this system's codename (bookworm), as written in the apt sources (--no-release-info: no
# downloaded lists needed)
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
uri=$(apt-get indextargets --no-release-info --format '$(REPO_URI) $(RELEASE) $(TARGET_OF)' 'Created-By: Packages' 2>/dev/null |
  awk -v c="$codename" '$2 == c && $3 == "deb" { print $1; exit }')
[ -n "$uri" ] || { echo "python-perf: apt has no Debian archive configured (apt-get indextargets)" >&2; exit 1; }
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || { echo "python-perf: $keyring is missing (Debian package debian-archive-keyring)" >&2; exit 1; }

a=$dir/apt
mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/debs"
echo "deb [signed-by=$keyring] ${uri%/} trixie main" >"$a/sources.list"
: >"$a/status"
apt=(-o "Dir::Etc::SourceList=$a/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::Etc::Preferences=/dev/null"
  -o Dir::Etc::PreferencesParts=/dev/null -o "Dir::State::Lists=$a/lists" -o "Dir::Cache=$a/cache" -o "Dir::State::Status=$a/status"
  -o APT::Sandbox::User=root -o Acquire::Languages=none -o Debug::NoLocking=1)
echo "python-perf: Debian 13 python3.13 and libc6 from ${uri%/} (suite trixie), unpacked in $dir/root"
apt-get "${apt[@]}" -qq update
(cd "$a/debs" && apt-get "${apt[@]}" -qq download python3.13-minimal libpython3.13-minimal libc6)
mkdir -p "$dir/root"
for deb in "$a/debs"/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
py=$dir/root/usr/bin/python3.13
libdir=usr/lib/$triplet
[ -x "$py" ] && [ -e "$dir/root/$libdir/$loader" ] || { echo "python-perf: the unpacked packages have no $py or $libdir/$loader" >&2; exit 1; }
patchelf --set-interpreter "$libdir/$loader" --set-rpath "\$ORIGIN/../lib/$triplet" "$py"
cat >"$bin" <<'EOF'
#!/bin/sh
# Debian 13's python3.13 on its own glibc (scripts/install-python-perf.sh). Its ELF interpreter
# is the relative path usr/lib/<triplet>/ld-linux*.so, which the kernel resolves against the
# working directory: so it runs from the unpacked root (the working directory of the Python
# process is that root).
root=$(cd "$(dirname "$0")/../root" && pwd -P) || exit 127
cd "$root" && exec "$root/usr/bin/python3.13" "$@"
EOF
chmod 0755 "$bin"
ok "$bin" || { echo "python-perf: $bin does not run, or has no perf trampoline:" >&2; "$bin" -c "$probe" >&2 || true; exit 1; }
# readable by every user (the unit tier runs as nobody), __pycache__ of the probe's imports included
chmod -R a+rX "$dir"
echo "$("$bin" --version) with the perf trampoline: Debian 13 python3.13 $(dpkg-deb -f "$a/debs"/python3.13-minimal_*.deb Version) on libc6 $(dpkg-deb -f "$a/debs"/libc6_*.deb Version)" | tee "$dir/installed"
rm -rf "$a"
