#!/usr/bin/env bash
# Runs every test tier. Kernel and end-to-end tiers need root; in CI (CI=true) they
# must run, so a non-root CI run fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
export RTEV_REPO="$PWD"
status=0
run() { echo "== $1"; shift; "$@" || status=1; }

# the unit tier, as nobody when run as root (scripts/unit-tests.sh), on the main runtime (Node 20)
# and again on Node 22 (`make node22` installs it from the npm registry; make test passes RTEV_NODE22)
run "unit tests (unprivileged)" ./scripts/unit-tests.sh node --test-reporter=spec
if [ -n "${RTEV_NODE22:-}" ] && [ -x "$RTEV_NODE22" ]; then
  run "unit tests on Node 22 (unprivileged)" ./scripts/unit-tests.sh "$RTEV_NODE22" --test-reporter=spec
elif [ "${CI:-}" = "true" ]; then
  echo "Node 22 is missing (RTEV_NODE22=${RTEV_NODE22:-}): 'make test' installs it (make node22)" >&2
  status=1
else
  echo "== unit tests on Node 22 not run: run them with 'make test' or 'make test-unit' (make node22 installs Node 22)"
fi
if [ "$(id -u)" -eq 0 ]; then
  mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing || true
  if compgen -G "dist/test/kernel/*.test.js" >/dev/null; then
    run "kernel tests (root)" node --test --test-concurrency=1 --test-reporter=spec dist/test/kernel/
    # the addon's load, attach, ring and teardown paths and a refused program again, on the
    # ASan+UBSan build of the addon (make native-asan). node itself is not instrumented, so
    # libasan is preloaded and leak checks are off (node's own allocations at exit are not ours).
    if [ -f native/build-asan/rtev_native.node ]; then
      run "kernel tests on the sanitizer build of the addon (root)" env \
        RTEV_NATIVE_ADDON="$PWD/native/build-asan/rtev_native.node" RTEV_EXPECT_ASAN=1 \
        LD_PRELOAD="$(gcc -print-file-name=libasan.so)" \
        ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        node --test --test-concurrency=1 --test-reporter=spec dist/test/kernel/addon.kernel.test.js dist/test/kernel/collect.kernel.test.js dist/test/kernel/ring-wrap.kernel.test.js
    elif [ "${CI:-}" = "true" ]; then
      echo "native/build-asan/rtev_native.node is missing: 'make test' builds it (make native-asan)" >&2
      status=1
    fi
  fi
  if compgen -G "dist/test/reliability/*.test.js" >/dev/null; then
    run "reliability tests (root)" node --test --test-concurrency=1 --test-reporter=spec dist/test/reliability/
  fi
  if compgen -G "dist/test/e2e/*.test.js" >/dev/null; then
    run "end-to-end tests (root)" node --test --test-concurrency=1 --test-reporter=spec dist/test/e2e/
    # the uprobe tests again with the perf-event uprobes that kernels before 6.13 get
    run "end-to-end uprobe tests, classic attach mode (root)" env RTEV_UPROBE_MODE=classic \
      node --test --test-concurrency=1 --test-reporter=spec dist/test/e2e/net-connect.e2e.test.js dist/test/e2e/ssl-openssl.e2e.test.js \
      dist/test/e2e/function-call.e2e.test.js
  fi
else
  if [ "${CI:-}" = "true" ]; then
    echo "kernel and end-to-end tests need root, and CI must run them: run CI as root" >&2
    exit 1
  fi
  echo "== kernel and end-to-end tests skipped: they need root (run 'sudo make test')"
fi
exit $status
