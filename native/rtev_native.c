/*
 * rtev_native: the N-API addon over the system libbpf. It is the only code
 * in rtev that links libbpf. It loads the BPF object, attaches programs,
 * gives access to maps and runs one consumer thread per ring buffer.
 *
 * Ring records reach JS in batches: the consumer thread copies records into
 * one of SLOT_COUNT JS-owned Buffers framed as [u32 len][u32 0][bytes][pad to 8]
 * and makes one threadsafe-function call per full (or drained) slot. The slot
 * is reused when the JS callback returns, so there is no allocation per batch.
 * When every slot is in flight the consumer waits; the kernel ring then fills
 * and the BPF side counts the lost records. Memory stays bounded.
 */
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SLOT_COUNT 4
#define SLOT_SIZE (1u << 20)
#define MAX_LINKS 4096
#define POLL_TIMEOUT_MS 10

/* ---------- error helpers ---------- */

#define CHECK_NAPI(env, call)                                                                      \
	do {                                                                                       \
		if ((call) != napi_ok) {                                                           \
			throw_error(env, "RTEV_NAPI", "N-API call failed: " #call, 0);            \
			return NULL;                                                               \
		}                                                                                  \
	} while (0)

static char libbpf_log[65536];
static size_t libbpf_log_len;
static bool libbpf_log_echo;

static int capture_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	/* the verifier log arrives as one message of up to a few hundred KiB */
	static char line[262144];
	va_list copy;
	va_copy(copy, args);
	int n = vsnprintf(line, sizeof(line), fmt, args);
	const char *text = line;
	char *big = NULL;
	if (n >= 0 && (size_t)n >= sizeof(line)) {
		/* longer than line: format it whole, so the tail (the verdict) is not cut off */
		big = malloc((size_t)n + 1);
		if (big != NULL && vsnprintf(big, (size_t)n + 1, fmt, copy) == n)
			text = big;
		else
			n = sizeof(line) - 1;
	}
	va_end(copy);
	if (n < 0) {
		free(big);
		return 0;
	}
	if (libbpf_log_echo)
		fputs(text, stderr);
	/* keep the tail of the log: the verifier's verdict is at the end. One message may be
	 * longer than the whole buffer (a refused program's verifier log): keep its tail then. */
	const size_t cap = sizeof(libbpf_log) - 1;
	size_t len = (size_t)n;
	if (len > cap) {
		text += len - cap;
		len = cap;
	}
	if (libbpf_log_len + len > cap) {
		size_t keep = cap - len;
		if (keep > cap / 2)
			keep = cap / 2;
		if (keep > libbpf_log_len)
			keep = libbpf_log_len;
		memmove(libbpf_log, libbpf_log + libbpf_log_len - keep, keep);
		libbpf_log_len = keep;
	}
	memcpy(libbpf_log + libbpf_log_len, text, len);
	libbpf_log_len += len;
	libbpf_log[libbpf_log_len] = 0;
	free(big);
	return 0;
}

/* throw_error throws an Error with .code and .errno; the TS side maps it. */
static void throw_error(napi_env env, const char *code, const char *message, int err)
{
	bool pending = false;
	napi_is_exception_pending(env, &pending);
	if (pending)
		return;
	char text[512];
	if (err)
		snprintf(text, sizeof(text), "%s: %s", message, strerror(err));
	else
		snprintf(text, sizeof(text), "%s", message);
	napi_value msg, code_value, error, errno_value, log_value;
	napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
	napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value);
	napi_create_error(env, code_value, msg, &error);
	napi_create_int32(env, err, &errno_value);
	napi_set_named_property(env, error, "errno", errno_value);
	napi_create_string_utf8(env, libbpf_log, libbpf_log_len, &log_value);
	napi_set_named_property(env, error, "libbpfLog", log_value);
	napi_throw(env, error);
}

/* ---------- argument helpers ---------- */

static bool arg_string(napi_env env, napi_value value, char *out, size_t size)
{
	size_t len = 0;
	if (napi_get_value_string_utf8(env, value, out, size, &len) != napi_ok) {
		throw_error(env, "RTEV_ARG", "expected a string argument", 0);
		return false;
	}
	return true;
}

static bool arg_buffer(napi_env env, napi_value value, void **data, size_t *len)
{
	bool is_buffer = false;
	napi_is_buffer(env, value, &is_buffer);
	if (!is_buffer || napi_get_buffer_info(env, value, data, len) != napi_ok) {
		throw_error(env, "RTEV_ARG", "expected a Buffer argument", 0);
		return false;
	}
	return true;
}

/* ---------- BPF object handle ---------- */

/* An attachment is a libbpf link, or the fd of a link created with the bpf() syscall directly
 * (uprobe_multi links: libbpf 1.1 has no API for them). fd is 0 when unused: a link fd is never 0. */
struct attachment {
	struct bpf_link *link;
	int fd;
};

static bool attachment_used(const struct attachment *a)
{
	return a->link != NULL || a->fd > 0;
}

static void destroy_attachment(struct attachment *a)
{
	if (a->link)
		bpf_link__destroy(a->link);
	else if (a->fd > 0)
		close(a->fd);
	a->link = NULL;
	a->fd = 0;
}

struct object_handle {
	struct bpf_object *obj;
	struct attachment links[MAX_LINKS];
	bool loaded;
};

static void finalize_object(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)hint;
	struct object_handle *h = data;
	for (int i = 0; i < MAX_LINKS; i++)
		destroy_attachment(&h->links[i]);
	if (h->obj)
		bpf_object__close(h->obj);
	free(h);
}

static struct object_handle *get_object(napi_env env, napi_value value)
{
	struct object_handle *h = NULL;
	if (napi_get_value_external(env, value, (void **)&h) != napi_ok || !h || !h->obj) {
		throw_error(env, "RTEV_ARG", "expected an open BPF object", 0);
		return NULL;
	}
	return h;
}

static napi_value get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv)
{
	size_t argc = want;
	napi_value self;
	if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok || argc < want) {
		throw_error(env, "RTEV_ARG", "missing arguments", 0);
		return NULL;
	}
	return self;
}

/* program_arg reads the (handle, program name) arguments most calls start with: argv[0] and
 * argv[1]. Returns the program (and the handle in *h), or NULL with a JS error pending. */
static struct bpf_program *program_arg(napi_env env, napi_value *argv, struct object_handle **h)
{
	char name[256];
	*h = get_object(env, argv[0]);
	if (!*h || !arg_string(env, argv[1], name, sizeof(name)))
		return NULL;
	struct bpf_program *prog = bpf_object__find_program_by_name((*h)->obj, name);
	if (!prog)
		throw_error(env, "RTEV_ARG", "no such BPF program", ENOENT);
	return prog;
}

/* openObject(path) -> handle */
static napi_value js_open_object(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	if (!get_args(env, info, 1, argv))
		return NULL;
	char path[4096];
	if (!arg_string(env, argv[0], path, sizeof(path)))
		return NULL;
	libbpf_log_len = 0;
	libbpf_log[0] = 0;
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	if (!obj) {
		throw_error(env, "BPF_OPEN", "cannot open BPF object", errno);
		return NULL;
	}
	struct object_handle *h = calloc(1, sizeof(*h));
	if (!h) {
		bpf_object__close(obj);
		throw_error(env, "RTEV_NOMEM", "out of memory", ENOMEM);
		return NULL;
	}
	h->obj = obj;
	napi_value result;
	CHECK_NAPI(env, napi_create_external(env, h, finalize_object, NULL, &result));
	return result;
}

/* setGlobal(handle, name, bytes): write a const volatile global before load. */
static napi_value js_set_global(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	if (!get_args(env, info, 3, argv))
		return NULL;
	struct object_handle *h = get_object(env, argv[0]);
	char name[256];
	void *data;
	size_t len;
	if (!h || !arg_string(env, argv[1], name, sizeof(name)) || !arg_buffer(env, argv[2], &data, &len))
		return NULL;
	struct btf *btf = bpf_object__btf(h->obj);
	struct bpf_map *map;
	bpf_object__for_each_map(map, h->obj)
	{
		const char *map_name = bpf_map__name(map);
		const char *dot = strrchr(map_name, '.');
		if (!bpf_map__is_internal(map) || !dot)
			continue;
		int sec_id = btf__find_by_name_kind(btf, dot, BTF_KIND_DATASEC);
		if (sec_id < 0)
			continue;
		const struct btf_type *sec = btf__type_by_id(btf, sec_id);
		const struct btf_var_secinfo *var = btf_var_secinfos(sec);
		for (int i = 0; i < btf_vlen(sec); i++, var++) {
			const struct btf_type *t = btf__type_by_id(btf, var->type);
			if (strcmp(btf__name_by_offset(btf, t->name_off), name) != 0)
				continue;
			if (var->size != len) {
				throw_error(env, "RTEV_LAYOUT", "global size differs from the BPF object's", 0);
				return NULL;
			}
			size_t total = 0;
			char *initial = (char *)bpf_map__initial_value(map, &total);
			if (!initial || var->offset + len > total) {
				throw_error(env, "RTEV_LAYOUT", "global is not writable", 0);
				return NULL;
			}
			memcpy(initial + var->offset, data, len);
			return NULL;
		}
	}
	throw_error(env, "RTEV_ARG", "no such global in the BPF object", ENOENT);
	return NULL;
}

/* setMapMaxEntries(handle, map, n) */
static napi_value js_set_map_max_entries(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	if (!get_args(env, info, 3, argv))
		return NULL;
	struct object_handle *h = get_object(env, argv[0]);
	char name[256];
	uint32_t n;
	if (!h || !arg_string(env, argv[1], name, sizeof(name)))
		return NULL;
	CHECK_NAPI(env, napi_get_value_uint32(env, argv[2], &n));
	struct bpf_map *map = bpf_object__find_map_by_name(h->obj, name);
	if (!map || bpf_map__set_max_entries(map, n)) {
		throw_error(env, "RTEV_ARG", "cannot resize map", map ? errno : ENOENT);
		return NULL;
	}
	return NULL;
}

/* setAutoload(handle, program, bool) */
static napi_value js_set_autoload(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	if (!get_args(env, info, 3, argv))
		return NULL;
	struct object_handle *h;
	struct bpf_program *prog = program_arg(env, argv, &h);
	bool on;
	if (!prog)
		return NULL;
	CHECK_NAPI(env, napi_get_value_bool(env, argv[2], &on));
	bpf_program__set_autoload(prog, on);
	return NULL;
}

/* programs(handle) -> [{name, section}] */
static napi_value js_programs(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	if (!get_args(env, info, 1, argv))
		return NULL;
	struct object_handle *h = get_object(env, argv[0]);
	if (!h)
		return NULL;
	napi_value list;
	CHECK_NAPI(env, napi_create_array(env, &list));
	struct bpf_program *prog;
	uint32_t i = 0;
	bpf_object__for_each_program(prog, h->obj)
	{
		napi_value item, name, section;
		napi_create_object(env, &item);
		napi_create_string_utf8(env, bpf_program__name(prog), NAPI_AUTO_LENGTH, &name);
		napi_create_string_utf8(env, bpf_program__section_name(prog), NAPI_AUTO_LENGTH, &section);
		napi_set_named_property(env, item, "name", name);
		napi_set_named_property(env, item, "section", section);
		napi_set_element(env, list, i++, item);
	}
	return list;
}

/* load(handle, echoLog) */
static napi_value js_load(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	if (!get_args(env, info, 2, argv))
		return NULL;
	struct object_handle *h = get_object(env, argv[0]);
	if (!h)
		return NULL;
	CHECK_NAPI(env, napi_get_value_bool(env, argv[1], &libbpf_log_echo));
	libbpf_log_len = 0;
	libbpf_log[0] = 0;
	int err = bpf_object__load(h->obj);
	if (err) {
		throw_error(env, "BPF_LOAD", "cannot load BPF programs", -err);
		return NULL;
	}
	h->loaded = true;
	return NULL;
}

static int store_link(struct object_handle *h, struct attachment a)
{
	for (int i = 0; i < MAX_LINKS; i++) {
		if (!attachment_used(&h->links[i])) {
			h->links[i] = a;
			return i;
		}
	}
	destroy_attachment(&a);
	return -1;
}

/* link_result stores a new link (a libbpf link, or else a link fd > 0) and returns its id to JS,
 * or throws with what failed (errno is the cause). */
static napi_value link_result(napi_env env, struct object_handle *h, struct attachment a, const char *what)
{
	if (!attachment_used(&a)) {
		throw_error(env, "BPF_ATTACH", what, errno);
		return NULL;
	}
	int id = store_link(h, a);
	if (id < 0) {
		throw_error(env, "BPF_ATTACH", "too many attachments", ENOSPC);
		return NULL;
	}
	napi_value result;
	CHECK_NAPI(env, napi_create_int32(env, id, &result));
	return result;
}

/* attach(handle, program) -> link id */
static napi_value js_attach(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	if (!get_args(env, info, 2, argv))
		return NULL;
	struct object_handle *h;
	struct bpf_program *prog = program_arg(env, argv, &h);
	if (!prog)
		return NULL;
	return link_result(env, h, (struct attachment){ .link = bpf_program__attach(prog) }, "cannot attach");
}

/* attachUprobe(handle, program, retprobe, pid, binaryPath, fileOffset: bigint, cookie: bigint) -> link id */
static napi_value js_attach_uprobe(napi_env env, napi_callback_info info)
{
	napi_value argv[7];
	if (!get_args(env, info, 7, argv))
		return NULL;
	struct object_handle *h;
	struct bpf_program *prog = program_arg(env, argv, &h);
	char path[4096];
	bool retprobe, lossless;
	int32_t pid;
	uint64_t offset, cookie;
	if (!prog || !arg_string(env, argv[4], path, sizeof(path)))
		return NULL;
	CHECK_NAPI(env, napi_get_value_bool(env, argv[2], &retprobe));
	CHECK_NAPI(env, napi_get_value_int32(env, argv[3], &pid));
	CHECK_NAPI(env, napi_get_value_bigint_uint64(env, argv[5], &offset, &lossless));
	CHECK_NAPI(env, napi_get_value_bigint_uint64(env, argv[6], &cookie, &lossless));
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = retprobe, .bpf_cookie = cookie);
	return link_result(env, h, (struct attachment){ .link = bpf_program__attach_uprobe_opts(prog, pid, path, offset, &opts) },
			   "cannot attach uprobe");
}

/* ---------- uprobe_multi links (kernel >= 6.6; sessions >= 6.13) ---------- */

/* Attach types and flags of the kernel's uapi (include/uapi/linux/bpf.h), absent from the
 * Debian 12 headers this addon may be built with. */
#define RTEV_BPF_TRACE_UPROBE_MULTI 48
#define RTEV_BPF_TRACE_UPROBE_SESSION 57
#define RTEV_BPF_F_UPROBE_MULTI_RETURN 1
#define RTEV_BPF_LINK_CREATE 28

/* The BPF_LINK_CREATE part of union bpf_attr used for uprobe_multi, as laid out in the uapi. */
struct link_create_uprobe_multi {
	uint32_t prog_fd;
	uint32_t target_fd;
	uint32_t attach_type;
	uint32_t flags;
	uint64_t path;
	uint64_t offsets;
	uint64_t ref_ctr_offsets;
	uint64_t cookies;
	uint32_t cnt;
	uint32_t multi_flags;
	uint32_t pid;
	uint32_t _pad;
};

/* setExpectedAttachType(handle, program, kind): before load, for programs attached as
 * uprobe_multi links ("uprobe_multi", "uretprobe_multi", "uprobe_session"): the kernel checks it */
static int multi_attach_type(const char *kind, uint32_t *flags)
{
	*flags = 0;
	if (strcmp(kind, "uprobe_session") == 0)
		return RTEV_BPF_TRACE_UPROBE_SESSION;
	if (strcmp(kind, "uretprobe_multi") == 0)
		*flags = RTEV_BPF_F_UPROBE_MULTI_RETURN;
	else if (strcmp(kind, "uprobe_multi") != 0)
		return -1;
	return RTEV_BPF_TRACE_UPROBE_MULTI;
}

static napi_value js_set_expected_attach_type(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	if (!get_args(env, info, 3, argv))
		return NULL;
	struct object_handle *h;
	struct bpf_program *prog = program_arg(env, argv, &h);
	char kind[32];
	uint32_t flags;
	if (!prog || !arg_string(env, argv[2], kind, sizeof(kind)))
		return NULL;
	int type = multi_attach_type(kind, &flags);
	if (type < 0) {
		throw_error(env, "RTEV_ARG", "unknown attach kind", EINVAL);
		return NULL;
	}
	if (bpf_program__set_expected_attach_type(prog, (enum bpf_attach_type)type)) {
		throw_error(env, "RTEV_ARG", "cannot set the attach type (already loaded?)", EBUSY);
		return NULL;
	}
	return NULL;
}

/* attachUprobeMulti(handle, program, kind, binaryPath, fileOffsets: bigint[], cookies: bigint[], pid)
 * -> link id. One link for all the offsets: attached and detached with one kernel call each,
 * where perf-event uprobes take one (serialized) unregistration per function. */
static napi_value js_attach_uprobe_multi(napi_env env, napi_callback_info info)
{
	napi_value argv[7];
	if (!get_args(env, info, 7, argv))
		return NULL;
	struct object_handle *h;
	struct bpf_program *prog = program_arg(env, argv, &h);
	char kind[32], path[4096];
	int32_t pid;
	uint32_t n = 0, n_cookies = 0, flags;
	bool is_array = false, cookies_array = false;
	if (!prog || !arg_string(env, argv[2], kind, sizeof(kind)) || !arg_string(env, argv[3], path, sizeof(path)))
		return NULL;
	CHECK_NAPI(env, napi_is_array(env, argv[4], &is_array));
	CHECK_NAPI(env, napi_is_array(env, argv[5], &cookies_array));
	CHECK_NAPI(env, napi_get_value_int32(env, argv[6], &pid));
	if (!is_array || !cookies_array) {
		throw_error(env, "RTEV_ARG", "expected arrays of offsets and cookies", 0);
		return NULL;
	}
	CHECK_NAPI(env, napi_get_array_length(env, argv[4], &n));
	CHECK_NAPI(env, napi_get_array_length(env, argv[5], &n_cookies));
	int type = multi_attach_type(kind, &flags);
	if (type < 0 || n == 0 || n > 64 || n_cookies != n) {
		throw_error(env, "RTEV_ARG", "bad uprobe_multi arguments", EINVAL);
		return NULL;
	}
	uint64_t offsets[64], cookies[64];
	for (uint32_t i = 0; i < n; i++) {
		napi_value v;
		bool lossless;
		CHECK_NAPI(env, napi_get_element(env, argv[4], i, &v));
		CHECK_NAPI(env, napi_get_value_bigint_uint64(env, v, &offsets[i], &lossless));
		CHECK_NAPI(env, napi_get_element(env, argv[5], i, &v));
		CHECK_NAPI(env, napi_get_value_bigint_uint64(env, v, &cookies[i], &lossless));
	}
	union {
		struct link_create_uprobe_multi attr;
		char bytes[128]; /* the kernel wants the tail of union bpf_attr zeroed */
	} u;
	memset(&u, 0, sizeof(u));
	u.attr.prog_fd = (uint32_t)bpf_program__fd(prog);
	u.attr.attach_type = (uint32_t)type;
	u.attr.path = (uint64_t)(uintptr_t)path;
	u.attr.offsets = (uint64_t)(uintptr_t)offsets;
	u.attr.cookies = (uint64_t)(uintptr_t)cookies;
	u.attr.cnt = n;
	u.attr.multi_flags = flags;
	u.attr.pid = pid > 0 ? (uint32_t)pid : 0;
	int fd = (int)syscall(__NR_bpf, RTEV_BPF_LINK_CREATE, &u, sizeof(u));
	return link_result(env, h, (struct attachment){ .fd = fd > 0 ? fd : 0 }, "cannot attach uprobe_multi");
}

/* uprobeSessionSupported() -> bool: the running kernel knows BPF_TRACE_UPROBE_SESSION and the
 * session kfuncs (its BTF says so; nothing is loaded) */
static napi_value js_uprobe_session_supported(napi_env env, napi_callback_info info)
{
	(void)info;
	bool found = false;
	struct btf *vmlinux = btf__load_vmlinux_btf();
	if (vmlinux && !libbpf_get_error(vmlinux)) {
		bool has_enum = false;
		int id = btf__find_by_name_kind(vmlinux, "bpf_attach_type", BTF_KIND_ENUM);
		if (id > 0) {
			const struct btf_type *t = btf__type_by_id(vmlinux, id);
			const struct btf_enum *e = btf_enum(t);
			for (int i = 0; i < btf_vlen(t); i++, e++)
				if (strcmp(btf__name_by_offset(vmlinux, e->name_off), "BPF_TRACE_UPROBE_SESSION") == 0)
					has_enum = true;
		}
		found = has_enum && btf__find_by_name_kind(vmlinux, "bpf_session_cookie", BTF_KIND_FUNC) > 0 &&
			btf__find_by_name_kind(vmlinux, "bpf_session_is_return", BTF_KIND_FUNC) > 0;
		btf__free(vmlinux);
	}
	napi_value result;
	CHECK_NAPI(env, napi_get_boolean(env, found, &result));
	return result;
}

/* runIterator(handle, program) -> bytes the iterator wrote: attaches a BPF iterator program, reads
 * it to the end (which runs the program over every element), and detaches it. */
static napi_value js_run_iterator(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	if (!get_args(env, info, 2, argv))
		return NULL;
	struct object_handle *h;
	struct bpf_program *prog = program_arg(env, argv, &h);
	if (!prog)
		return NULL;
	struct bpf_link *link = bpf_program__attach_iter(prog, NULL);
	if (!link) {
		throw_error(env, "BPF_ATTACH", "cannot attach the iterator", errno);
		return NULL;
	}
	int fd = bpf_iter_create(bpf_link__fd(link));
	if (fd < 0) {
		int err = errno;
		bpf_link__destroy(link);
		throw_error(env, "BPF_ATTACH", "cannot create the iterator", err);
		return NULL;
	}
	char buf[4096];
	double total = 0;
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		total += n > 0 ? (double)n : 0;
	int err = n < 0 ? errno : 0;
	close(fd);
	bpf_link__destroy(link);
	if (err) {
		throw_error(env, "BPF_ITER", "reading the iterator failed", err);
		return NULL;
	}
	napi_value result;
	CHECK_NAPI(env, napi_create_double(env, total, &result));
	return result;
}

/* detach(handle, linkId) */
static napi_value js_detach(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	if (!get_args(env, info, 2, argv))
		return NULL;
	struct object_handle *h = get_object(env, argv[0]);
	int32_t id;
	if (!h)
		return NULL;
	CHECK_NAPI(env, napi_get_value_int32(env, argv[1], &id));
	if (id >= 0 && id < MAX_LINKS)
		destroy_attachment(&h->links[id]);
	return NULL;
}

/* ---------- detachMany: parallel link teardown ---------- */

/*
 * Why: destroying a perf-event uprobe link (close of the perf event) makes the kernel unregister
 * the uprobe and wait for grace periods (uprobe_unregister_sync: RCU tasks-trace and the
 * uretprobe SRCU) before close() returns: tens of ms per link, ~90 ms on the 6.x kernel we
 * measured. The waits of concurrent callers share grace periods, so closing the links from
 * several threads at once costs about one wait in total instead of one per link.
 *
 * Threading hazards, and how they are handled:
 *  - h->links is only touched on the JS thread: the entries are taken out of the table here,
 *    before any worker starts, and workers only see their own private array of bpf_link *.
 *  - bpf_link__destroy of distinct links shares no libbpf state (it closes fds, frees the link).
 *  - libbpf may log from a worker (legacy tracefs probe removal errors); capture_libbpf_print
 *    writes static buffers and is not thread-safe, so for the duration of the call the print
 *    callback is swapped for one that serializes on a mutex (any thread that logs meanwhile,
 *    e.g. a ring consumer, goes through the same lock), and restored before returning.
 *  - The JS thread blocks until every worker has been joined: nothing outlives the call, and
 *    the handle cannot be finalized while workers run.
 */
#define DETACH_MAX_THREADS 64

struct detach_work {
	struct attachment *links;
	size_t count;
	atomic_size_t next;
};

static pthread_mutex_t detach_print_lock = PTHREAD_MUTEX_INITIALIZER;

static int locked_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	pthread_mutex_lock(&detach_print_lock);
	int r = capture_libbpf_print(level, fmt, args);
	pthread_mutex_unlock(&detach_print_lock);
	return r;
}

static void *detach_worker(void *arg)
{
	struct detach_work *w = arg;
	for (;;) {
		size_t i = atomic_fetch_add(&w->next, 1);
		if (i >= w->count)
			break;
		destroy_attachment(&w->links[i]);
	}
	return NULL;
}

/* detachMany(handle, linkIds: number[]): detaches the links from parallel threads; returns when all are gone */
static napi_value js_detach_many(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	if (!get_args(env, info, 2, argv))
		return NULL;
	struct object_handle *h = get_object(env, argv[0]);
	if (!h)
		return NULL;
	bool is_array = false;
	uint32_t n = 0;
	CHECK_NAPI(env, napi_is_array(env, argv[1], &is_array));
	if (!is_array) {
		throw_error(env, "RTEV_ARG", "expected an array of link ids", 0);
		return NULL;
	}
	CHECK_NAPI(env, napi_get_array_length(env, argv[1], &n));
	if (n == 0)
		return NULL;
	int32_t *ids = calloc(n, sizeof(*ids));
	struct attachment *links = calloc(n, sizeof(*links));
	if (!ids || !links) {
		free(ids);
		free(links);
		throw_error(env, "RTEV_NOMEM", "out of memory", ENOMEM);
		return NULL;
	}
	/* validate every id before taking any link out of the table */
	for (uint32_t i = 0; i < n; i++) {
		napi_value v;
		if (napi_get_element(env, argv[1], i, &v) != napi_ok || napi_get_value_int32(env, v, &ids[i]) != napi_ok) {
			free(ids);
			free(links);
			throw_error(env, "RTEV_ARG", "expected an array of link ids", 0);
			return NULL;
		}
	}
	size_t count = 0;
	for (uint32_t i = 0; i < n; i++) {
		int32_t id = ids[i];
		if (id >= 0 && id < MAX_LINKS && attachment_used(&h->links[id])) {
			links[count++] = h->links[id];
			h->links[id] = (struct attachment){ 0 }; /* an id given twice is destroyed once */
		}
	}
	free(ids);
	struct detach_work work = { .links = links, .count = count };
	atomic_init(&work.next, 0);
	size_t want = count < DETACH_MAX_THREADS ? count : DETACH_MAX_THREADS;
	pthread_t threads[DETACH_MAX_THREADS];
	size_t started = 0;
	libbpf_print_fn_t previous = libbpf_set_print(locked_libbpf_print);
	for (; started + 1 < want; started++) {
		if (pthread_create(&threads[started], NULL, detach_worker, &work) != 0)
			break; /* fewer threads: the rest is done by those running and by this thread */
	}
	detach_worker(&work);
	for (size_t i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	libbpf_set_print(previous);
	free(links);
	return NULL;
}

static struct bpf_map *find_map(napi_env env, struct object_handle *h, napi_value name_value)
{
	char name[256];
	if (!arg_string(env, name_value, name, sizeof(name)))
		return NULL;
	struct bpf_map *map = bpf_object__find_map_by_name(h->obj, name);
	if (!map)
		throw_error(env, "RTEV_ARG", "no such map", ENOENT);
	return map;
}

/* map_and_key reads the (handle, map name, key) arguments every map call starts with and
 * checks the key's size against the map's; argv must hold at least 3 values. */
static struct bpf_map *map_and_key(napi_env env, napi_value *argv, void **key)
{
	struct object_handle *h = get_object(env, argv[0]);
	if (!h)
		return NULL;
	struct bpf_map *map = find_map(env, h, argv[1]);
	size_t key_len;
	if (!map || !arg_buffer(env, argv[2], key, &key_len))
		return NULL;
	if (key_len != bpf_map__key_size(map)) {
		throw_error(env, "RTEV_LAYOUT", "key size differs from the map's", 0);
		return NULL;
	}
	return map;
}

/* mapUpdate(handle, map, key, value) */
static napi_value js_map_update(napi_env env, napi_callback_info info)
{
	napi_value argv[4];
	if (!get_args(env, info, 4, argv))
		return NULL;
	void *key, *value;
	size_t value_len;
	struct bpf_map *map = map_and_key(env, argv, &key);
	if (!map || !arg_buffer(env, argv[3], &value, &value_len))
		return NULL;
	if (value_len != bpf_map__value_size(map)) {
		throw_error(env, "RTEV_LAYOUT", "value size differs from the map's", 0);
		return NULL;
	}
	if (bpf_map_update_elem(bpf_map__fd(map), key, value, BPF_ANY)) {
		throw_error(env, "BPF_MAP", "cannot update map", errno);
		return NULL;
	}
	return NULL;
}

/* mapDelete(handle, map, key) -> bool (whether it existed) */
static napi_value js_map_delete(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	if (!get_args(env, info, 3, argv))
		return NULL;
	void *key;
	struct bpf_map *map = map_and_key(env, argv, &key);
	if (!map)
		return NULL;
	int err = bpf_map_delete_elem(bpf_map__fd(map), key);
	if (err && errno != ENOENT) {
		throw_error(env, "BPF_MAP", "cannot delete from map", errno);
		return NULL;
	}
	napi_value result;
	CHECK_NAPI(env, napi_get_boolean(env, err == 0, &result));
	return result;
}

/* mapLookup(handle, map, key) -> Buffer | null. Per-CPU maps give one
 * 8-byte-aligned value per possible CPU, back to back. */
static napi_value js_map_lookup(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	if (!get_args(env, info, 3, argv))
		return NULL;
	void *key;
	struct bpf_map *map = map_and_key(env, argv, &key);
	if (!map)
		return NULL;
	enum bpf_map_type type = bpf_map__type(map);
	size_t value_size = bpf_map__value_size(map);
	bool per_cpu = type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_PERCPU_HASH ||
		       type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
	if (per_cpu)
		value_size = ((value_size + 7) & ~(size_t)7) * libbpf_num_possible_cpus();
	void *out;
	napi_value result;
	CHECK_NAPI(env, napi_create_buffer(env, value_size, &out, &result));
	if (bpf_map_lookup_elem(bpf_map__fd(map), key, out)) {
		if (errno == ENOENT) {
			napi_get_null(env, &result);
			return result;
		}
		throw_error(env, "BPF_MAP", "cannot read map", errno);
		return NULL;
	}
	return result;
}

/* ---------- ring buffer consumer ---------- */

struct ring_consumer {
	struct ring_buffer *rb;
	pthread_t thread;
	napi_threadsafe_function tsfn;
	napi_ref slot_refs[SLOT_COUNT];
	uint8_t *slot_data[SLOT_COUNT];
	bool slot_busy[SLOT_COUNT]; /* owned by JS until its callback returns */
	pthread_mutex_t lock;
	pthread_cond_t slot_freed;
	int current;     /* slot being filled by the consumer thread, -1 if none */
	size_t used;     /* bytes used in the current slot */
	atomic_bool stop;
	uint64_t oversized; /* records larger than a slot (cannot happen with our layouts) */
};

/* A batch handed to JS: slot index, or END_OF_STREAM after the final drain. */
#define END_OF_STREAM ((uintptr_t)SLOT_COUNT)
#define BATCH(slot, used) ((void *)(((uintptr_t)(used) << 8) | (uintptr_t)(slot)))

static int acquire_slot(struct ring_consumer *rc)
{
	pthread_mutex_lock(&rc->lock);
	for (;;) {
		for (int i = 0; i < SLOT_COUNT; i++) {
			if (!rc->slot_busy[i]) {
				rc->slot_busy[i] = true;
				pthread_mutex_unlock(&rc->lock);
				return i;
			}
		}
		/* every slot is with JS: wait, and let the kernel ring absorb the burst */
		pthread_cond_wait(&rc->slot_freed, &rc->lock);
	}
}

static void release_slot(struct ring_consumer *rc, int slot)
{
	pthread_mutex_lock(&rc->lock);
	rc->slot_busy[slot] = false;
	pthread_cond_signal(&rc->slot_freed);
	pthread_mutex_unlock(&rc->lock);
}

static void flush_slot(struct ring_consumer *rc)
{
	if (rc->current < 0 || rc->used == 0)
		return;
	napi_call_threadsafe_function(rc->tsfn, BATCH(rc->current, rc->used), napi_tsfn_blocking);
	rc->current = -1;
	rc->used = 0;
}

static int on_sample(void *ctx, void *data, size_t size)
{
	struct ring_consumer *rc = ctx;
	size_t framed = 8 + ((size + 7) & ~(size_t)7);
	if (framed > SLOT_SIZE) {
		rc->oversized++;
		return 0;
	}
	if (rc->current >= 0 && rc->used + framed > SLOT_SIZE)
		flush_slot(rc);
	if (rc->current < 0) {
		rc->current = acquire_slot(rc);
		rc->used = 0;
	}
	uint8_t *dst = rc->slot_data[rc->current] + rc->used;
	uint32_t header[2] = { (uint32_t)size, 0 };
	memcpy(dst, header, 8);
	memcpy(dst + 8, data, size);
	rc->used += framed;
	return 0;
}

static void *consume_loop(void *arg)
{
	struct ring_consumer *rc = arg;
	while (!atomic_load(&rc->stop)) {
		/* poll only consumes rings that signalled; with batched wake-ups
		 * (BPF_RB_NO_WAKEUP below the threshold) the timeout is what finds
		 * records, so consume explicitly after every wait */
		int n = ring_buffer__poll(rc->rb, POLL_TIMEOUT_MS);
		if (n < 0 && n != -EINTR)
			break;
		ring_buffer__consume(rc->rb);
		flush_slot(rc);
	}
	/* the programs are detached by now: drain what is left, then say so */
	while (ring_buffer__consume(rc->rb) > 0)
		;
	flush_slot(rc);
	/* end of stream only once JS gave every slot back: after it the consumer is freed */
	pthread_mutex_lock(&rc->lock);
	for (int i = 0; i < SLOT_COUNT; i++)
		while (rc->slot_busy[i])
			pthread_cond_wait(&rc->slot_freed, &rc->lock);
	pthread_mutex_unlock(&rc->lock);
	napi_call_threadsafe_function(rc->tsfn, (void *)END_OF_STREAM, napi_tsfn_blocking);
	napi_release_threadsafe_function(rc->tsfn, napi_tsfn_release);
	return NULL;
}

/* Runs on the JS thread for each batch. The slot stays with JS until JS calls
 * releaseSlot: JS does that from setImmediate, so the event loop turns (timers,
 * file I/O completions) between batches instead of being held by a stream of
 * batches that a fast consumer thread would otherwise queue without end. */
static void deliver_batch(napi_env env, napi_value callback, void *context, void *data)
{
	struct ring_consumer *rc = context;
	uintptr_t batch = (uintptr_t)data;
	if (batch == END_OF_STREAM) {
		if (env) {
			napi_value undefined, null_value;
			napi_get_undefined(env, &undefined);
			napi_get_null(env, &null_value);
			napi_value args[3] = { null_value, null_value, null_value };
			napi_call_function(env, undefined, callback, 3, args, NULL);
		}
		return;
	}
	int slot = batch & 0xff;
	size_t used = batch >> 8;
	if (!env) {
		release_slot(rc, slot);
		return;
	}
	napi_value undefined, buffer, length, slot_value;
	napi_get_undefined(env, &undefined);
	napi_get_reference_value(env, rc->slot_refs[slot], &buffer);
	napi_create_uint32(env, (uint32_t)used, &length);
	napi_create_uint32(env, (uint32_t)slot, &slot_value);
	napi_value args[3] = { buffer, length, slot_value };
	napi_call_function(env, undefined, callback, 3, args, NULL);
}

/* Runs on the JS thread once the consumer thread has released the function. */
static void finalize_consumer(napi_env env, void *data, void *hint)
{
	(void)hint;
	struct ring_consumer *rc = data;
	pthread_join(rc->thread, NULL);
	ring_buffer__free(rc->rb);
	for (int i = 0; i < SLOT_COUNT; i++)
		napi_delete_reference(env, rc->slot_refs[i]);
	pthread_mutex_destroy(&rc->lock);
	pthread_cond_destroy(&rc->slot_freed);
	free(rc);
}

/* startRing(handle, map, callback(buffer|null, usedBytes|null, slot|null)) -> consumer;
 * every batch must be given back with releaseSlot(consumer, slot). */
static napi_value js_start_ring(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	if (!get_args(env, info, 3, argv))
		return NULL;
	struct object_handle *h = get_object(env, argv[0]);
	if (!h)
		return NULL;
	struct bpf_map *map = find_map(env, h, argv[1]);
	if (!map)
		return NULL;
	struct ring_consumer *rc = calloc(1, sizeof(*rc));
	if (!rc) {
		throw_error(env, "RTEV_NOMEM", "out of memory", ENOMEM);
		return NULL;
	}
	rc->current = -1;
	pthread_mutex_init(&rc->lock, NULL);
	pthread_cond_init(&rc->slot_freed, NULL);
	rc->rb = ring_buffer__new(bpf_map__fd(map), on_sample, rc, NULL);
	if (!rc->rb) {
		int err = errno;
		free(rc);
		throw_error(env, "RINGBUF", "cannot open ring buffer", err);
		return NULL;
	}
	for (int i = 0; i < SLOT_COUNT; i++) {
		napi_value buffer;
		CHECK_NAPI(env, napi_create_buffer(env, SLOT_SIZE, (void **)&rc->slot_data[i], &buffer));
		CHECK_NAPI(env, napi_create_reference(env, buffer, 1, &rc->slot_refs[i]));
	}
	napi_value name;
	napi_create_string_utf8(env, "rtev-ring", NAPI_AUTO_LENGTH, &name);
	CHECK_NAPI(env, napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, rc, finalize_consumer, rc,
							deliver_batch, &rc->tsfn));
	if (pthread_create(&rc->thread, NULL, consume_loop, rc)) {
		throw_error(env, "RINGBUF", "cannot start consumer thread", errno);
		return NULL;
	}
	napi_value result;
	CHECK_NAPI(env, napi_create_external(env, rc, NULL, NULL, &result));
	return result;
}

/* stopRing(consumer): the thread drains the ring and ends with callback(null, null). */
static napi_value js_stop_ring(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	if (!get_args(env, info, 1, argv))
		return NULL;
	struct ring_consumer *rc = NULL;
	CHECK_NAPI(env, napi_get_value_external(env, argv[0], (void **)&rc));
	atomic_store(&rc->stop, true);
	return NULL;
}

/* releaseSlot(consumer, slot): JS is done with a batch's Buffer. */
static napi_value js_release_slot(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	if (!get_args(env, info, 2, argv))
		return NULL;
	struct ring_consumer *rc = NULL;
	uint32_t slot;
	CHECK_NAPI(env, napi_get_value_external(env, argv[0], (void **)&rc));
	CHECK_NAPI(env, napi_get_value_uint32(env, argv[1], &slot));
	if (!rc || slot >= SLOT_COUNT) {
		throw_error(env, "RTEV_ARG", "no such slot", EINVAL);
		return NULL;
	}
	release_slot(rc, (int)slot);
	return NULL;
}

/* numPossibleCpus() */
static napi_value js_num_possible_cpus(napi_env env, napi_callback_info info)
{
	(void)info;
	napi_value result;
	CHECK_NAPI(env, napi_create_int32(env, libbpf_num_possible_cpus(), &result));
	return result;
}

static napi_value init(napi_env env, napi_value exports)
{
	libbpf_set_print(capture_libbpf_print);
	napi_property_descriptor props[] = {
		{ "openObject", NULL, js_open_object, NULL, NULL, NULL, napi_default, NULL },
		{ "setGlobal", NULL, js_set_global, NULL, NULL, NULL, napi_default, NULL },
		{ "setMapMaxEntries", NULL, js_set_map_max_entries, NULL, NULL, NULL, napi_default, NULL },
		{ "setAutoload", NULL, js_set_autoload, NULL, NULL, NULL, napi_default, NULL },
		{ "programs", NULL, js_programs, NULL, NULL, NULL, napi_default, NULL },
		{ "load", NULL, js_load, NULL, NULL, NULL, napi_default, NULL },
		{ "attach", NULL, js_attach, NULL, NULL, NULL, napi_default, NULL },
		{ "attachUprobe", NULL, js_attach_uprobe, NULL, NULL, NULL, napi_default, NULL },
		{ "attachUprobeMulti", NULL, js_attach_uprobe_multi, NULL, NULL, NULL, napi_default, NULL },
		{ "setExpectedAttachType", NULL, js_set_expected_attach_type, NULL, NULL, NULL, napi_default, NULL },
		{ "uprobeSessionSupported", NULL, js_uprobe_session_supported, NULL, NULL, NULL, napi_default, NULL },
		{ "runIterator", NULL, js_run_iterator, NULL, NULL, NULL, napi_default, NULL },
		{ "detach", NULL, js_detach, NULL, NULL, NULL, napi_default, NULL },
		{ "detachMany", NULL, js_detach_many, NULL, NULL, NULL, napi_default, NULL },
		{ "mapUpdate", NULL, js_map_update, NULL, NULL, NULL, napi_default, NULL },
		{ "mapDelete", NULL, js_map_delete, NULL, NULL, NULL, napi_default, NULL },
		{ "mapLookup", NULL, js_map_lookup, NULL, NULL, NULL, napi_default, NULL },
		{ "startRing", NULL, js_start_ring, NULL, NULL, NULL, napi_default, NULL },
		{ "stopRing", NULL, js_stop_ring, NULL, NULL, NULL, napi_default, NULL },
		{ "releaseSlot", NULL, js_release_slot, NULL, NULL, NULL, napi_default, NULL },
		{ "numPossibleCpus", NULL, js_num_possible_cpus, NULL, NULL, NULL, napi_default, NULL },
	};
	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
