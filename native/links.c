/* Links: attach and detach programs (tracepoints, uprobes, uprobe_multi, iterators). */
#include "rtev.h"

bool attachment_used(const struct attachment *a)
{
	return a->link != NULL || a->fd > 0;
}

void destroy_attachment(struct attachment *a)
{
	if (a->link)
		bpf_link__destroy(a->link);
	else if (a->fd > 0)
		close(a->fd);
	a->link = NULL;
	a->fd = 0;
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
napi_value js_attach(napi_env env, napi_callback_info info)
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

/* attachTracepoint(handle, program, "category/name") -> link id: a tracepoint program attached to a
 * tracepoint other than its section's (one sys_exit program for openat, openat2, open and creat:
 * verified once instead of four times, docs/benchmarks.md "Session 3") */
napi_value js_attach_tracepoint(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	if (!get_args(env, info, 3, argv))
		return NULL;
	struct object_handle *h;
	struct bpf_program *prog = program_arg(env, argv, &h);
	if (!prog)
		return NULL;
	char tp[256];
	if (!arg_string(env, argv[2], tp, sizeof(tp)))
		return NULL;
	char *slash = strchr(tp, '/');
	if (!slash || slash == tp || slash[1] == '\0') {
		throw_error(env, "RTEV_ARG", "tracepoint must be category/name", EINVAL);
		return NULL;
	}
	*slash = '\0';
	return link_result(env, h, (struct attachment){ .link = bpf_program__attach_tracepoint(prog, tp, slash + 1) },
			   "cannot attach");
}

/* attachUprobe(handle, program, retprobe, pid, binaryPath, fileOffset: bigint, cookie: bigint) -> link id */
napi_value js_attach_uprobe(napi_env env, napi_callback_info info)
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
	return link_result(
		env, h, (struct attachment){ .link = bpf_program__attach_uprobe_opts(prog, pid, path, offset, &opts) },
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

napi_value js_set_expected_attach_type(napi_env env, napi_callback_info info)
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
napi_value js_attach_uprobe_multi(napi_env env, napi_callback_info info)
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
napi_value js_uprobe_session_supported(napi_env env, napi_callback_info info)
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
napi_value js_run_iterator(napi_env env, napi_callback_info info)
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
napi_value js_detach(napi_env env, napi_callback_info info)
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
napi_value js_detach_many(napi_env env, napi_callback_info info)
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
		if (napi_get_element(env, argv[1], i, &v) != napi_ok ||
		    napi_get_value_int32(env, v, &ids[i]) != napi_ok) {
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
