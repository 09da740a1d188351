/*
 * Ring buffers: one consumer thread per ring buffer. Ring records reach JS in batches: the consumer thread copies records into
 * one of SLOT_COUNT JS-owned Buffers framed as [u32 len][u32 0][bytes][pad to 8]
 * and makes one threadsafe-function call per full (or drained) slot. The slot
 * is reused when the JS callback returns, so there is no allocation per batch.
 * When every slot is in flight the consumer waits; the kernel ring then fills
 * and the BPF side counts the lost records. Memory stays bounded.
 */
#include "rtev.h"

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
	int current; /* slot being filled by the consumer thread, -1 if none */
	size_t used; /* bytes used in the current slot */
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
napi_value js_start_ring(napi_env env, napi_callback_info info)
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
