/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The one BPF object rtev loads. Each probe family lives in its own header. */
#include "common.h"
#include "file_open.h"
#include "process.h"
#include "tcp_state.h"
#include "net_connect.h"
/* RTEV_NO_IO_URING: an object without the io_uring programs, for the A/B of bench/io-uring.bench.ts */
#ifndef RTEV_NO_IO_URING
#include "io_uring.h"
#endif
#include "ssl_op.h"
#include "function_call.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Never used: it makes BTF describe every wire struct, so that test/unit/layout.test.ts can
 * check the decoder's offsets (src/decode/layout.ts) against what the compiler laid out. */
struct wire_structs {
	struct evt_file_open file_open;
	struct evt_process_exec process_exec;
	struct evt_tcp_state tcp_state;
	struct evt_net_connect net_connect;
	struct evt_ssl_op ssl_op;
	struct evt_function_call function_call;
};
const volatile struct wire_structs *wire_structs_btf = (void *)0;
