/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The one BPF object rtev loads. Each probe family lives in its own header. */
#include "common.h"
#include "file_open.h"
#include "process.h"
#include "tcp_state.h"
#include "net_connect.h"
#include "ssl_op.h"
#include "function_call.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
