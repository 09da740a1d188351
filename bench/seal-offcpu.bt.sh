#!/usr/bin/env bash
# Where the collector's main thread waits (off CPU) inside syscalls, by syscall and kernel stack
# (docs/benchmarks.md, "Session 6 (h31)"). Usage: bench/seal-offcpu.bt.sh PID SECONDS
set -euo pipefail
PID=${1:?pid}; SECS=${2:?seconds}
timeout -s INT "$SECS" bpftrace -q -e "
tracepoint:raw_syscalls:sys_enter /tid == $PID/ { @sc = args->id; @ent = nsecs; }
tracepoint:raw_syscalls:sys_exit /tid == $PID && @ent/ { @sys_us[@sc] = sum((nsecs - @ent) / 1000); @calls[@sc] = count(); @ent = 0; @sc = -1; }
tracepoint:sched:sched_switch /args->prev_pid == $PID/ { @out = nsecs; @stk = kstack(8); @osc = @sc; }
tracepoint:sched:sched_switch /args->next_pid == $PID && @out/ { @off_us[@osc, @stk] = sum((nsecs - @out) / 1000); @offtotal = sum((nsecs - @out) / 1000); @out = 0; }
END { print(@sys_us); print(@calls); print(@offtotal); print(@off_us, 12); clear(@sc); clear(@ent); clear(@out); clear(@stk); clear(@osc); }
" 2>&1
