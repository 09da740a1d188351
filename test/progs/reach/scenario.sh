#!/bin/bash
# scenario.sh DIR PORT ZAPP GOAPP IMAGE: the workload of test/e2e/report.e2e.test.ts, run under
# 'rtev collect -- bash scenario.sh ...': zlib calls in a C program, curl over HTTPS (libssl3),
# a Go program (net/url), and the C program again inside a podman container of IMAGE.
set -eu
DIR=$1 PORT=$2 ZAPP=$3 GOAPP=$4 IMAGE=$5
"$ZAPP" 5
"$GOAPP" 4
bash "$(dirname "$0")/../net/https-www.sh" "$DIR" "$PORT" f.txt
podman --runtime /usr/sbin/runc run --rm --ulimit nofile=1024:1024 --ulimit nproc=1000:1000 --network none "$IMAGE" /usr/bin/zapp 2
