/*
 * Ring buffers: one consumer thread per ring buffer. Ring records reach JS in batches: the consumer thread copies records into
 * one of SLOT_COUNT JS-owned Buffers framed as [u32 len][u32 0][bytes][pad to 8]
 * and makes one threadsafe-function call per full (or drained) slot. The slot
 * is reused when the JS callback returns, so there is no allocation per batch.
 * When every slot is in flight the consumer waits; the kernel ring then fills
 * and the BPF side counts the lost records. Memory stays bounded.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "rtev.h"
#include "encode.h"
#include <poll.h>
#include <sys/mman.h>

/* ---------- slot writer: raw record frames and segments of encoded lines ---------- */

/*
 * With an encoder (the fast path, encode.h), records it encodes go into segment frames
 * [u32 len][u32 FRAME_SEGMENT][struct segment_header][lines][pad][struct segment_line x count];
 * every other record keeps its raw frame [u32 len][u32 FRAME_RECORD][record][pad]. Frames stay
 * in ring order: a raw record closes the open segment.
 */
#define SEGMENT_LINES_MAX 16384

struct slot_writer {
	uint8_t *data;
	size_t used;      /* bytes of closed frames */
	long seg;         /* offset of the open segment's frame, -1 if none */
	size_t lines_end; /* end of the open segment's lines */
	struct segment_header hdr;
	struct segment_line *index;
};

static void sw_reset(struct slot_writer *sw, uint8_t *data)
{
	sw->data = data;
	sw->used = 0;
	sw->seg = -1;
}

static void sw_close_segment(struct slot_writer *sw)
{
	if (sw->seg < 0)
		return;
	size_t seg = (size_t)sw->seg;
	sw->seg = -1;
	if (sw->hdr.count == 0)
		return;
	size_t lines = sw->lines_end - (seg + 8 + sizeof(struct segment_header));
	size_t pad = (8 - lines % 8) % 8;
	memset(sw->data + sw->lines_end, 0, pad);
	size_t index_offset = sizeof(struct segment_header) + lines + pad;
	size_t index_bytes = (size_t)sw->hdr.count * sizeof(struct segment_line);
	memcpy(sw->data + seg + 8 + index_offset, sw->index, index_bytes);
	sw->hdr.lines_bytes = (uint32_t)lines;
	sw->hdr.index_offset = (uint32_t)index_offset;
	memcpy(sw->data + seg + 8, &sw->hdr, sizeof(sw->hdr));
	uint32_t frame[2] = { (uint32_t)(index_offset + index_bytes), FRAME_SEGMENT };
	memcpy(sw->data + seg, frame, 8);
	sw->used = seg + 8 + index_offset + index_bytes;
}

/* sw_try_line: 1 when the record was encoded into the slot, 0 when it needs the reference
 * path, -1 when the slot has no room left for it (flush it and try again) */
static int sw_try_line(struct slot_writer *sw, struct encoder *enc, const uint8_t *rec, size_t size)
{
	size_t bound = encode_bound(enc, size);
	const size_t head = 8 + sizeof(struct segment_header), entry = sizeof(struct segment_line);
	if (sw->seg >= 0 && sw->hdr.count >= SEGMENT_LINES_MAX)
		sw_close_segment(sw);
	if (sw->seg >= 0) {
		if (sw->lines_end + bound + 8 + (sw->hdr.count + 1) * entry > SLOT_SIZE)
			return -1;
	} else {
		if (sw->used + head + bound + 8 + entry > SLOT_SIZE)
			return sw->used == 0 ? 0 : -1;
		sw->seg = (long)sw->used;
		sw->lines_end = sw->used + head;
		memset(&sw->hdr, 0, sizeof(sw->hdr));
	}
	struct line_info info;
	size_t start = sw->lines_end - ((size_t)sw->seg + head);
	size_t n = encode_record(enc, rec, size, sw->data + sw->lines_end, &info);
	if (n == 0) {
		if (sw->hdr.count == 0)
			sw->seg = -1;
		enc->declined++;
		return 0;
	}
	struct segment_header *h = &sw->hdr;
	struct segment_line *l = &sw->index[h->count];
	l->end = (uint32_t)(start + n);
	l->probe = 0; /* PROBE_FILE_OPEN: the only kind encoded so far */
	l->v1 = info.v1;
	l->flags = h->count > 0 && info.key == sw->index[h->count - 1].key ? LINE_SAME_KEY : 0;
	l->ts = info.ts;
	l->cgroup = info.cgroup;
	l->key = info.key;
	if (h->count == 0) {
		h->first_ts = h->min_ts = h->max_ts = info.ts;
	} else {
		if (info.ts < h->last_ts)
			h->descents++;
		if (info.ts < h->min_ts)
			h->min_ts = info.ts;
		if (info.ts > h->max_ts)
			h->max_ts = info.ts;
	}
	h->last_ts = info.ts;
	h->count++;
	h->by_probe[0]++;
	h->invalid_utf8 += info.invalid_utf8;
	h->unresolved_relative_paths += info.unresolved_relative_paths;
	sw->lines_end += n;
	return 1;
}

/* sw_add_raw: false when the record's frame does not fit in what is left of the slot */
static bool sw_add_raw(struct slot_writer *sw, const void *data, size_t size)
{
	sw_close_segment(sw);
	size_t framed = 8 + ((size + 7) & ~(size_t)7);
	if (sw->used + framed > SLOT_SIZE)
		return false;
	uint8_t *dst = sw->data + sw->used;
	uint32_t header[2] = { (uint32_t)size, FRAME_RECORD };
	memcpy(dst, header, 8);
	memcpy(dst + 8, data, size);
	sw->used += framed;
	return true;
}

/* ---------- the kernel ring, its data area mapped once ---------- */

/*
 * libbpf's ring_buffer maps a BPF ring's data area twice in a row, so that a record crossing its
 * end reads as one piece; the kernel maps every page at mmap time (remap_vmalloc_range), so the
 * second view costs RSS the size of the ring from the first second (2 x (16 + 4) MiB with the
 * default rings; docs/benchmarks.md, "Session 5 (h26)"). Here the data area is mapped once and
 * the few records that cross its end (one per lap of the ring at most) are joined in a buffer.
 * Otherwise this is libbpf's ringbuf_process_ring: the same header bits, the same acquire/release
 * order on the positions.
 */
struct kring {
	int fd;
	size_t page;
	size_t size; /* the data area: a power of 2, a multiple of the page size */
	size_t mask;
	unsigned long *consumer_pos;       /* the consumer page, the only writable one */
	const unsigned long *producer_pos; /* the producer page, read-only, followed by the data */
	const uint8_t *data;
	uint8_t *joined; /* a record that crosses the end of the data area, in one piece */
	size_t joined_cap;
	uint64_t joins; /* records joined */
};

static void kring_close(struct kring *r)
{
	if (r->consumer_pos)
		munmap(r->consumer_pos, r->page);
	if (r->producer_pos)
		munmap((void *)r->producer_pos, r->page + r->size);
	free(r->joined);
	memset(r, 0, sizeof(*r));
}

/* kring_open: 0, or an errno value */
static int kring_open(struct kring *r, int fd)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	memset(r, 0, sizeof(*r));
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return errno;
	if (info.type != BPF_MAP_TYPE_RINGBUF)
		return EINVAL;
	r->fd = fd;
	r->page = (size_t)sysconf(_SC_PAGESIZE);
	r->size = info.max_entries;
	r->mask = r->size - 1;
	if (r->size == 0 || (r->size & r->mask) != 0 || r->size % r->page != 0 || r->size > SIZE_MAX / 2)
		return EINVAL;
	void *cons = mmap(NULL, r->page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (cons == MAP_FAILED)
		return errno;
	r->consumer_pos = cons;
	/* the producer page and the data area once (libbpf: the data area twice, 2 x size) */
	void *prod = mmap(NULL, r->page + r->size, PROT_READ, MAP_SHARED, fd, (off_t)r->page);
	if (prod == MAP_FAILED) {
		int err = errno;
		kring_close(r);
		return err;
	}
	r->producer_pos = prod;
	r->data = (const uint8_t *)prod + r->page;
	return 0;
}

/* kring_sample: the record's bytes in one piece; NULL when it cannot be (no memory) */
static const uint8_t *kring_sample(struct kring *r, size_t start, size_t len)
{
	if (start + len <= r->size)
		return r->data + start;
	if (len > r->joined_cap) {
		uint8_t *grown = realloc(r->joined, len);
		if (!grown)
			return NULL;
		r->joined = grown;
		r->joined_cap = len;
	}
	size_t first = r->size - start;
	memcpy(r->joined, r->data + start, first);
	memcpy(r->joined + first, r->data, len - first);
	r->joins++;
	return r->joined;
}

typedef int (*kring_sample_fn)(void *ctx, void *data, size_t size);

/* kring_consume: hands every committed record to fn, in ring order; the number handed */
static int64_t kring_consume(struct kring *r, kring_sample_fn fn, void *ctx, uint64_t *unjoined)
{
	int64_t count = 0;
	unsigned long cons = __atomic_load_n(r->consumer_pos, __ATOMIC_ACQUIRE);
	bool got;
	do {
		got = false;
		unsigned long prod = __atomic_load_n(r->producer_pos, __ATOMIC_ACQUIRE);
		while (cons < prod) {
			/* records are 8-byte aligned and the size a power of 2: a header never wraps */
			size_t off = cons & r->mask;
			uint32_t hdr = __atomic_load_n((const uint32_t *)(r->data + off), __ATOMIC_ACQUIRE);
			if (hdr & BPF_RINGBUF_BUSY_BIT)
				return count; /* not committed yet */
			got = true;
			size_t len = hdr & ~(uint32_t)(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
			cons += (len + BPF_RINGBUF_HDR_SZ + 7) & ~(size_t)7;
			if (!(hdr & BPF_RINGBUF_DISCARD_BIT)) {
				if (len + BPF_RINGBUF_HDR_SZ > r->size) {
					(*unjoined)++; /* cannot come from the kernel */
				} else {
					const uint8_t *sample =
						kring_sample(r, (off + BPF_RINGBUF_HDR_SZ) & r->mask, len);
					if (sample)
						fn(ctx, (void *)sample, len);
					else
						(*unjoined)++;
				}
				count++;
			}
			__atomic_store_n(r->consumer_pos, cons, __ATOMIC_RELEASE);
		}
	} while (got);
	return count;
}

/* kring_wait: until the kernel signals records (a forced wake-up) or timeout_ms passed; <0 on error */
static int kring_wait(struct kring *r, int timeout_ms)
{
	struct pollfd pfd = { .fd = r->fd, .events = POLLIN };
	int n = poll(&pfd, 1, timeout_ms);
	return n < 0 ? -errno : n;
}

/* ---------- ring buffer consumer ---------- */

struct ring_consumer {
	struct kring ring;
	pthread_t thread;
	napi_threadsafe_function tsfn;
	napi_ref slot_refs[SLOT_COUNT];
	uint8_t *slot_data[SLOT_COUNT];
	bool slot_busy[SLOT_COUNT]; /* owned by JS until its callback returns */
	pthread_mutex_t lock;
	pthread_cond_t slot_freed;
	int current;           /* slot being filled by the consumer thread, -1 if none */
	struct slot_writer sw; /* writes the current slot */
	struct encoder *enc;   /* the fast path, or NULL */
	napi_ref enc_ref;      /* keeps the encoder alive while the consumer runs */
	atomic_bool stop;
	uint64_t oversized; /* records larger than a slot (cannot happen with our layouts) */
	uint64_t unjoined;  /* records that crossed the ring's end and could not be joined (no memory) */
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
	if (rc->current < 0)
		return;
	sw_close_segment(&rc->sw);
	if (rc->sw.used == 0)
		return;
	napi_call_threadsafe_function(rc->tsfn, BATCH(rc->current, rc->sw.used), napi_tsfn_blocking);
	rc->current = -1;
}

static void ensure_slot(struct ring_consumer *rc)
{
	if (rc->current < 0) {
		rc->current = acquire_slot(rc);
		sw_reset(&rc->sw, rc->slot_data[rc->current]);
	}
}

static int on_sample(void *ctx, void *data, size_t size)
{
	struct ring_consumer *rc = ctx;
	size_t framed = 8 + ((size + 7) & ~(size_t)7);
	if (framed > SLOT_SIZE) {
		rc->oversized++;
		return 0;
	}
	if (rc->enc) {
		for (int attempt = 0; attempt < 2; attempt++) {
			ensure_slot(rc);
			int r = sw_try_line(&rc->sw, rc->enc, data, size);
			if (r == 1)
				return 0;
			if (r == 0)
				break;
			flush_slot(rc);
		}
	}
	ensure_slot(rc);
	if (!sw_add_raw(&rc->sw, data, size)) {
		flush_slot(rc);
		ensure_slot(rc);
		sw_add_raw(&rc->sw, data, size);
	}
	return 0;
}

static void *consume_loop(void *arg)
{
	struct ring_consumer *rc = arg;
	while (!atomic_load(&rc->stop)) {
		/* poll only consumes rings that signalled; with batched wake-ups
		 * (BPF_RB_NO_WAKEUP below the threshold) the timeout is what finds
		 * records, so consume explicitly after every wait */
		int n = kring_wait(&rc->ring, POLL_TIMEOUT_MS);
		if (n < 0 && n != -EINTR)
			break;
		if (rc->enc)
			encoder_apply_pending(rc->enc);
		kring_consume(&rc->ring, on_sample, rc, &rc->unjoined);
		flush_slot(rc);
	}
	/* the programs are detached by now: drain what is left, then say so */
	while (kring_consume(&rc->ring, on_sample, rc, &rc->unjoined) > 0)
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
	kring_close(&rc->ring);
	for (int i = 0; i < SLOT_COUNT; i++)
		napi_delete_reference(env, rc->slot_refs[i]);
	if (rc->enc_ref)
		napi_delete_reference(env, rc->enc_ref);
	free(rc->sw.index);
	pthread_mutex_destroy(&rc->lock);
	pthread_cond_destroy(&rc->slot_freed);
	free(rc);
}

/* startRing(handle, map, callback(buffer|null, usedBytes|null, slot|null)) -> consumer;
 * every batch must be given back with releaseSlot(consumer, slot). */
napi_value js_start_ring(napi_env env, napi_callback_info info)
{
	napi_value argv[4];
	size_t argc = 4;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) {
		throw_error(env, "RTEV_ARG", "missing arguments", 0);
		return NULL;
	}
	struct object_handle *h = get_object(env, argv[0]);
	if (!h)
		return NULL;
	struct bpf_map *map = find_map(env, h, argv[1]);
	if (!map)
		return NULL;
	struct encoder *enc = NULL;
	if (argc >= 4) {
		napi_valuetype type;
		CHECK_NAPI(env, napi_typeof(env, argv[3], &type));
		if (type != napi_undefined && type != napi_null && !(enc = get_encoder(env, argv[3])))
			return NULL;
	}
	struct ring_consumer *rc = calloc(1, sizeof(*rc));
	struct segment_line *index = enc ? malloc(SEGMENT_LINES_MAX * sizeof(struct segment_line)) : NULL;
	if (!rc || (enc && !index)) {
		free(rc);
		free(index);
		throw_error(env, "RTEV_NOMEM", "out of memory", ENOMEM);
		return NULL;
	}
	rc->current = -1;
	rc->enc = enc;
	rc->sw.index = index;
	if (enc)
		CHECK_NAPI(env, napi_create_reference(env, argv[3], 1, &rc->enc_ref));
	pthread_mutex_init(&rc->lock, NULL);
	pthread_cond_init(&rc->slot_freed, NULL);
	int err = kring_open(&rc->ring, bpf_map__fd(map));
	if (err) {
		if (rc->enc_ref)
			napi_delete_reference(env, rc->enc_ref);
		free(rc->sw.index);
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
	/* named, so per-thread CPU (/proc/PID/task/TID/comm, perf, top -H) tells it from node's */
	pthread_setname_np(rc->thread, "rtev-ring");
	napi_value result;
	CHECK_NAPI(env, napi_create_external(env, rc, NULL, NULL, &result));
	return result;
}

/* stopRing(consumer): the thread drains the ring and ends with callback(null, null). */
napi_value js_stop_ring(napi_env env, napi_callback_info info)
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
napi_value js_release_slot(napi_env env, napi_callback_info info)
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

/* ---------- the fast path's encoder (encode.h) ---------- */

static void finalize_encoder(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)hint;
	encoder_free(data);
}

/* tells an encoder external apart from the addon's other externals */
static const napi_type_tag ENCODER_TAG = { 0x7274657665656e63ull, 0x6f6465722d763031ull };

struct encoder *get_encoder(napi_env env, napi_value value)
{
	struct encoder *enc = NULL;
	napi_valuetype type;
	bool tagged = false;
	if (napi_typeof(env, value, &type) != napi_ok || type != napi_external ||
	    napi_check_object_type_tag(env, value, &ENCODER_TAG, &tagged) != napi_ok || !tagged ||
	    napi_get_value_external(env, value, (void **)&enc) != napi_ok || !enc) {
		throw_error(env, "RTEV_ARG", "expected an encoder", 0);
		return NULL;
	}
	return enc;
}

/* createEncoder(fileOpen: boolean, attribute: boolean) -> encoder */
napi_value js_create_encoder(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	if (!get_args(env, info, 2, argv))
		return NULL;
	bool file_open, attribute;
	CHECK_NAPI(env, napi_get_value_bool(env, argv[0], &file_open));
	CHECK_NAPI(env, napi_get_value_bool(env, argv[1], &attribute));
	struct encoder *enc = encoder_new();
	if (!enc) {
		throw_error(env, "RTEV_NOMEM", "out of memory", ENOMEM);
		return NULL;
	}
	enc->file_open = file_open;
	enc->attribute = attribute;
	napi_value result;
	if (napi_create_external(env, enc, finalize_encoder, NULL, &result) != napi_ok) {
		encoder_free(enc);
		throw_error(env, "RTEV_NAPI", "cannot create the encoder", 0);
		return NULL;
	}
	/* on failure the external's finalizer frees the encoder */
	CHECK_NAPI(env, napi_type_tag_object(env, result, &ENCODER_TAG));
	return result;
}

static bool optional_buffer(napi_env env, napi_value value, void **data, size_t *len)
{
	napi_valuetype type;
	*data = NULL;
	*len = 0;
	if (napi_typeof(env, value, &type) != napi_ok)
		return false;
	if (type == napi_undefined || type == napi_null)
		return true;
	return arg_buffer(env, value, data, len);
}

/* encoderSetCgroup(encoder, id: bigint, v1: boolean, containerFragment: Buffer|null, digestFragment: Buffer|null)
 * -> boolean (false: not kept, e.g. a fragment too long; the reference path keeps handling it) */
napi_value js_encoder_set_cgroup(napi_env env, napi_callback_info info)
{
	napi_value argv[5];
	if (!get_args(env, info, 5, argv))
		return NULL;
	struct encoder *enc = get_encoder(env, argv[0]);
	uint64_t id;
	bool lossless, v1;
	void *container, *digest;
	size_t container_len, digest_len;
	if (!enc)
		return NULL;
	CHECK_NAPI(env, napi_get_value_bigint_uint64(env, argv[1], &id, &lossless));
	CHECK_NAPI(env, napi_get_value_bool(env, argv[2], &v1));
	if (!optional_buffer(env, argv[3], &container, &container_len) ||
	    !optional_buffer(env, argv[4], &digest, &digest_len))
		return NULL;
	bool ok = lossless && encoder_set_cgroup(enc, id, v1, container, container_len, digest, digest_len);
	napi_value result;
	CHECK_NAPI(env, napi_get_boolean(env, ok, &result));
	return result;
}

/* encoderClearCgroups(encoder) */
napi_value js_encoder_clear_cgroups(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	if (!get_args(env, info, 1, argv))
		return NULL;
	struct encoder *enc = get_encoder(env, argv[0]);
	if (!enc)
		return NULL;
	if (!encoder_clear_cgroups(enc))
		throw_error(env, "RTEV_NOMEM", "out of memory", ENOMEM);
	return NULL;
}

/* encoderForgetCgroup(encoder, id: bigint, v1: boolean): its records go to the reference path again */
napi_value js_encoder_forget_cgroup(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	if (!get_args(env, info, 3, argv))
		return NULL;
	struct encoder *enc = get_encoder(env, argv[0]);
	uint64_t id;
	bool lossless, v1;
	if (!enc)
		return NULL;
	CHECK_NAPI(env, napi_get_value_bigint_uint64(env, argv[1], &id, &lossless));
	CHECK_NAPI(env, napi_get_value_bool(env, argv[2], &v1));
	if (!encoder_forget_cgroup(enc, id, v1))
		throw_error(env, "RTEV_NOMEM", "out of memory", ENOMEM);
	return NULL;
}

/*
 * encodeFrames(encoder, frames: Buffer, used) -> Buffer[]: runs raw record frames
 * ([u32 len][u32 0][record][pad to 8]) through the consumer thread's slot writer, on the calling
 * thread, and returns the slots it filled (each `used` bytes long). For tests and benchmarks:
 * the bytes are those a consumer thread hands to JS for the same records.
 */
napi_value js_encode_frames(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	if (!get_args(env, info, 3, argv))
		return NULL;
	struct encoder *enc = get_encoder(env, argv[0]);
	void *frames;
	size_t frames_len;
	uint32_t used;
	if (!enc || !arg_buffer(env, argv[1], &frames, &frames_len))
		return NULL;
	CHECK_NAPI(env, napi_get_value_uint32(env, argv[2], &used));
	if (used > frames_len) {
		throw_error(env, "RTEV_ARG", "used exceeds the buffer", EINVAL);
		return NULL;
	}
	encoder_apply_pending(enc);
	struct slot_writer sw;
	uint8_t *slot = malloc(SLOT_SIZE);
	sw.index = malloc(SEGMENT_LINES_MAX * sizeof(struct segment_line));
	napi_value list;
	uint32_t slots = 0;
	if (!slot || !sw.index || napi_create_array(env, &list) != napi_ok) {
		free(slot);
		free(sw.index);
		throw_error(env, "RTEV_NOMEM", "out of memory", ENOMEM);
		return NULL;
	}
	sw_reset(&sw, slot);
	const uint8_t *in = frames;
	bool failed = false;
#define EMIT_SLOT()                                                                                   \
	do {                                                                                          \
		sw_close_segment(&sw);                                                                \
		if (sw.used > 0) {                                                                    \
			void *copy;                                                                   \
			napi_value buffer;                                                            \
			if (napi_create_buffer_copy(env, sw.used, slot, &copy, &buffer) != napi_ok || \
			    napi_set_element(env, list, slots++, buffer) != napi_ok)                  \
				failed = true;                                                        \
		}                                                                                     \
		sw_reset(&sw, slot);                                                                  \
	} while (0)
	for (size_t off = 0; off + 8 <= used && !failed;) {
		uint32_t len;
		memcpy(&len, in + off, 4);
		if (off + 8 + len > used || 8 + (((size_t)len + 7) & ~(size_t)7) > SLOT_SIZE)
			break;
		const uint8_t *rec = in + off + 8;
		int r = 0;
		for (int attempt = 0; attempt < 2; attempt++) {
			r = sw_try_line(&sw, enc, rec, len);
			if (r != -1)
				break;
			EMIT_SLOT();
		}
		if (r != 1 && !sw_add_raw(&sw, rec, len)) {
			EMIT_SLOT();
			sw_add_raw(&sw, rec, len);
		}
		off += 8 + (((size_t)len + 7) & ~(size_t)7);
	}
	EMIT_SLOT();
#undef EMIT_SLOT
	free(slot);
	free(sw.index);
	if (failed) {
		throw_error(env, "RTEV_NAPI", "cannot return the slots", 0);
		return NULL;
	}
	return list;
}
