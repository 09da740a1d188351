/*
 * rtev_native: the N-API addon over the system libbpf. It is the only code
 * in rtev that links libbpf. It loads the BPF object, attaches programs,
 * gives access to maps and runs one consumer thread per ring buffer.
 *
 * This header is internal to the addon: what its files (log.c, object.c,
 * links.c, maps.c, ring.c, init.c) share.
 */
#ifndef RTEV_NATIVE_H
#define RTEV_NATIVE_H

#define NAPI_VERSION 8
#include <node_api.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SLOT_COUNT 4
#define SLOT_SIZE (1u << 20)
#define MAX_LINKS 4096
#define POLL_TIMEOUT_MS 10

/* ---------- log and errors (log.c) ---------- */

#define CHECK_NAPI(env, call)                                                          \
	do {                                                                           \
		if ((call) != napi_ok) {                                               \
			throw_error(env, "RTEV_NAPI", "N-API call failed: " #call, 0); \
			return NULL;                                                   \
		}                                                                      \
	} while (0)

extern char libbpf_log[65536];
extern size_t libbpf_log_len;
extern bool libbpf_log_echo;

/* libbpf's print callback: keeps the tail of the log for error messages */
int capture_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args);
/* the same, serialized on a mutex, for calls that log from several threads */
int locked_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args);
void clear_libbpf_log(void);
/* throw_error throws an Error with .code, .errno and .libbpfLog; the TS side maps it. */
void throw_error(napi_env env, const char *code, const char *message, int err);

bool arg_string(napi_env env, napi_value value, char *out, size_t size);
bool arg_buffer(napi_env env, napi_value value, void **data, size_t *len);
napi_value get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv);

/* ---------- the BPF object (object.c) ---------- */

/* An attachment is a libbpf link, or the fd of a link created with the bpf() syscall directly
 * (uprobe_multi links: libbpf 1.1 has no API for them). fd is 0 when unused: a link fd is never 0. */
struct attachment {
	struct bpf_link *link;
	int fd;
};

struct object_handle {
	struct bpf_object *obj;
	struct attachment links[MAX_LINKS];
	bool loaded;
};

struct object_handle *get_object(napi_env env, napi_value value);
struct bpf_program *program_arg(napi_env env, napi_value *argv, struct object_handle **h);

napi_value js_open_object(napi_env env, napi_callback_info info);
napi_value js_set_global(napi_env env, napi_callback_info info);
napi_value js_set_map_max_entries(napi_env env, napi_callback_info info);
napi_value js_set_autoload(napi_env env, napi_callback_info info);
napi_value js_programs(napi_env env, napi_callback_info info);
napi_value js_load(napi_env env, napi_callback_info info);

/* ---------- links (links.c) ---------- */

bool attachment_used(const struct attachment *a);
void destroy_attachment(struct attachment *a);

napi_value js_attach(napi_env env, napi_callback_info info);
napi_value js_attach_tracepoint(napi_env env, napi_callback_info info);
napi_value js_attach_uprobe(napi_env env, napi_callback_info info);
napi_value js_set_expected_attach_type(napi_env env, napi_callback_info info);
napi_value js_attach_uprobe_multi(napi_env env, napi_callback_info info);
napi_value js_uprobe_session_supported(napi_env env, napi_callback_info info);
napi_value js_run_iterator(napi_env env, napi_callback_info info);
napi_value js_detach(napi_env env, napi_callback_info info);
napi_value js_detach_many(napi_env env, napi_callback_info info);

/* ---------- maps (maps.c) ---------- */

struct bpf_map *find_map(napi_env env, struct object_handle *h, napi_value name_value);

napi_value js_map_update(napi_env env, napi_callback_info info);
napi_value js_map_delete(napi_env env, napi_callback_info info);
napi_value js_map_lookup(napi_env env, napi_callback_info info);

/* ---------- ring buffers (ring.c) ---------- */

napi_value js_start_ring(napi_env env, napi_callback_info info);
napi_value js_stop_ring(napi_env env, napi_callback_info info);
napi_value js_release_slot(napi_env env, napi_callback_info info);

/* the fast path's encoder (encode.h), used by ring consumers */
struct encoder;
struct encoder *get_encoder(napi_env env, napi_value value);
napi_value js_create_encoder(napi_env env, napi_callback_info info);
napi_value js_encoder_set_cgroup(napi_env env, napi_callback_info info);
napi_value js_encoder_clear_cgroups(napi_env env, napi_callback_info info);
napi_value js_encoder_forget_cgroup(napi_env env, napi_callback_info info);
napi_value js_encode_frames(napi_env env, napi_callback_info info);

#endif
