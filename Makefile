# rtev build and test entry points. `make demo` and `make test` bootstrap a fresh
# Debian machine (packages, npm ci, build) before doing their job.
SHELL := /bin/bash
.DELETE_ON_ERROR:

CLANG ?= clang
BPFTOOL ?= bpftool
BUILD := build
# one package per line, so concurrent changes merge cleanly
APT_PACKAGES := \
	clang \
	llvm \
	libbpf-dev \
	bpftool \
	libelf-dev \
	zlib1g-dev \
	pkg-config \
	libssl-dev \
	openssl \
	curl \
	gcc \
	binutils \
	dpkg \
	libasan8 \
	libubsan1 \
	python3 \
	golang-go \
	busybox-static \
	podman \
	runc \
	containerd \
	bpftrace \
	xz-utils \
	clang-format \
	nats-server \
	postgresql-15 \
	postgresql-client-15 \
	systemd \
	chromium \
	libnss3 \
	gnutls-bin \
	libgnutls28-dev \
	liburing-dev \
	patchelf \
	# end of APT_PACKAGES

BPF_SOURCES := $(wildcard bpf/*.bpf.c)
BPF_HEADERS := $(wildcard bpf/*.h)
NATIVE_SOURCES := $(wildcard native/*.c)
NATIVE_HEADERS := $(wildcard native/*.h)
CLANG_FORMAT ?= clang-format

.PHONY: all deps build bpf native native-asan node22 python-perf ts test test-unit test-kernel test-e2e demo bench clean format format-check

all: build

## deps: install the Debian packages and npm modules rtev needs (idempotent)
deps: .deps-stamp node_modules/.package-lock.json
.deps-stamp: Makefile scripts/install-deps.sh
	@./scripts/install-deps.sh $(APT_PACKAGES)
	@touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

build: deps bpf native ts

## bpf: compile the CO-RE programs against the running kernel's BTF
# (and build/rtev-compat.bpf.o, walking the task through its trusted pointer, for kernels < 6.2
# without bpf_rdonly_cast: bpf/common.h walk_task, src/platform/paths.ts)
bpf: $(BUILD)/rtev.bpf.o $(BUILD)/rtev-compat.bpf.o
$(BUILD)/vmlinux.h:
	@mkdir -p $(BUILD)
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@
$(BUILD)/rtev.bpf.o: $(BPF_SOURCES) $(BPF_HEADERS) $(BUILD)/vmlinux.h
	$(CLANG) -target bpf -D__TARGET_ARCH_x86 -g -O2 -Wall -Werror -I$(BUILD) -Ibpf -c bpf/rtev.bpf.c -o $@
$(BUILD)/rtev-compat.bpf.o: $(BPF_SOURCES) $(BPF_HEADERS) $(BUILD)/vmlinux.h
	$(CLANG) -target bpf -D__TARGET_ARCH_x86 -DRTEV_TRUSTED_WALK -g -O2 -Wall -Werror -I$(BUILD) -Ibpf -c bpf/rtev.bpf.c -o $@

## native: the N-API addon, the only code that links libbpf
native: native/build/Release/rtev_native.node
native/build/Release/rtev_native.node: $(NATIVE_SOURCES) $(NATIVE_HEADERS) native/binding.gyp bpf/events.h
	cd native && npx --no-install node-gyp rebuild --nodedir=/usr >/dev/null

## native-asan: the addon built with AddressSanitizer and UBSan, for scripts/run-tests.sh's sanitizer
## run (RTEV_NATIVE_ADDON points the session at it; node needs libasan preloaded)
native-asan: native/build-asan/rtev_native.node
native/build-asan/rtev_native.node: $(NATIVE_SOURCES) $(NATIVE_HEADERS) bpf/events.h
	@mkdir -p native/build-asan
	gcc -shared -fPIC -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	  -Wall -Wextra -Wno-unused-parameter -std=gnu11 -I/usr/include/node -o $@ $(NATIVE_SOURCES) -lbpf -lelf -lz -lpthread

## ts: tsc (type check; dist/ for the tests), then the CLI bundles bin/rtev runs: src/cli/main.ts (every
## command), src/cli/collect-main.ts (`rtev collect` alone) and the seal worker, bundled from the same
## sources by esbuild into dist/bundle/ (one file each instead of ~60-90 modules: docs/architecture.md,
## "The CLI bundle"; npm packages stay in node_modules)
ts:
	npx --no-install tsc -p tsconfig.json
	npx --no-install esbuild src/cli/main.ts src/cli/collect-main.ts src/cli/compile-cache.ts src/store/seal-worker.ts --bundle --platform=node --target=node20 \
	  --format=cjs --packages=external --outdir=dist/bundle --entry-names='[name]' --sourcemap --sources-content=false \
	  --log-level=warning

## node22: Node 22 (the current LTS) from the npm registry's `node` package, for the second unit
## run in `make test` (Node 20 stays the main runtime). Cached in .cache/ (gitignored), which
## `make clean` keeps: repeated runs do not download it again.
NODE22_DIR ?= .cache/node22
NODE22 := $(NODE22_DIR)/node_modules/node/bin/node
node22: $(NODE22)
$(NODE22):
	@mkdir -p $(NODE22_DIR)
	npm install --no-audit --no-fund --no-save --prefix $(NODE22_DIR) node@22 >/dev/null
	@$@ --version | grep -q '^v22\.' || { echo "$@ is not Node 22" >&2; rm -f $@; exit 1; }

## python-perf: a CPython >= 3.12 with the perf trampoline (`-X perf`) for the Python case of
## test/unit/symbolize-runtimes.test.ts (Debian 12's python3 is 3.11). On Debian 12,
## scripts/install-python-perf.sh unpacks Debian 13's python3.13 and libc6 from the Debian archive
## apt uses into .cache/python3 (nothing installed system-wide); on Debian 13 it links /usr/bin's.
## Kept by `make clean`, like node22.
PYPERF_DIR ?= .cache/python3
python-perf: $(PYPERF_DIR)/installed
$(PYPERF_DIR)/installed: scripts/install-python-perf.sh | .deps-stamp
	./scripts/install-python-perf.sh $(PYPERF_DIR)

## format-check: bpf/ and native/ follow .clang-format (`make format` rewrites them)
format-check: deps
	$(CLANG_FORMAT) --dry-run -Werror $(BPF_SOURCES) $(BPF_HEADERS) $(NATIVE_SOURCES) $(NATIVE_HEADERS)

format: deps
	$(CLANG_FORMAT) -i $(BPF_SOURCES) $(BPF_HEADERS) $(NATIVE_SOURCES) $(NATIVE_HEADERS)

## test: every tier (scripts/run-tests.sh). The unit tier runs twice, on Node 20 and on Node 22,
## each time as the unprivileged user nobody when make runs as root (scripts/unit-tests.sh).
test: build native-asan node22 python-perf format-check
	RTEV_NODE22=$(abspath $(NODE22)) ./scripts/run-tests.sh

## test-unit: the unit tier alone, on Node 20 and Node 22, unprivileged
test-unit: build node22 python-perf
	./scripts/unit-tests.sh node
	./scripts/unit-tests.sh $(abspath $(NODE22))

demo: build
	./scripts/demo.sh

bench: build
	./bench/run.sh

clean:
	rm -rf $(BUILD) dist native/build native/build-asan .deps-stamp
