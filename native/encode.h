/*
 * The fast path: ring records to canonical NDJSON lines in C, in the consumer thread
 * (docs/benchmarks.md, "Fast path"). It writes exactly the bytes of the reference path
 * (src/decode/decode.ts -> src/encode/record.ts); test/unit/fast-path.test.ts holds it
 * to them. A record it cannot encode the same way (unknown cgroup, unusual path, a record
 * that decoding would reject) is left to the reference path.
 *
 * Pure C: no N-API, no libbpf.
 */
#ifndef RTEV_ENCODE_H
#define RTEV_ENCODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A slot frame's second word: what the frame holds. */
#define FRAME_RECORD 0u  /* one raw ring record, for the reference path */
#define FRAME_SEGMENT 1u /* a segment of encoded lines */

/*
 * A segment frame's body: struct segment_header, then `lines_bytes` bytes of NDJSON lines
 * (each ending in '\n'), padding to 8, then `count` struct segment_line entries.
 */
struct segment_header {
	uint32_t count;
	uint32_t lines_bytes;
	uint32_t index_offset; /* from the start of the body */
	uint32_t invalid_utf8; /* strings that were not valid UTF-8 (DecodeStats.invalidUtf8) */
	uint32_t unresolved_relative_paths;
	/* lines whose ts is below the previous line's: 0 means the lines are in ts order, and JS
	 * (src/ingest/order.ts, src/store/chunk-writer.ts) needs no per-line scan of them */
	uint32_t descents;
	uint32_t by_probe[6];
	uint64_t first_ts;
	uint64_t last_ts;
	uint64_t min_ts;
	uint64_t max_ts;
}; /* 80 bytes */

/* segment_line.flags: the line's key equals the previous line's in the same segment (the chunk
 * writer then skips its file-key lookup: src/store/chunk-writer.ts #noteLines) */
#define LINE_SAME_KEY 0x1u

struct segment_line {
	uint32_t end;   /* end of the line (after its '\n'), from the start of the lines */
	uint8_t probe;  /* enum probe_id */
	uint8_t v1;     /* the cgroup below is a v1 memory cgroup id */
	uint16_t flags; /* LINE_* */
	uint64_t ts;
	uint64_t cgroup; /* the attribution key */
	uint64_t key;    /* a hash of (cgroup, v1, the path as written): which lines name the same file */
};                       /* 32 bytes */

/* What encode_file_open tells about a line besides its bytes. */
struct line_info {
	uint64_t ts;
	uint64_t cgroup;
	uint8_t v1;
	uint64_t key;
	uint32_t invalid_utf8;
	uint32_t unresolved_relative_paths;
};

struct cgroup_entry {
	uint64_t id;
	uint8_t state; /* 0: empty, 1: used, 3: forgotten (records go to the reference path) */
	uint8_t v1;
	uint16_t container_len, digest_len;
	char *container; /* `,"container_id":"…"` or NULL */
	char *digest;    /* `,"image_digest":"…"` or NULL */
};

#define CGROUP_TABLE_SIZE 8192 /* power of two */
#define CGROUP_TABLE_MAX 6144  /* cleared when fuller (the reference path refills it) */

struct cgroup_update {
	struct cgroup_update *next;
	struct cgroup_entry entry; /* state 1: set, 2: clear the whole table, 3: forget */
};

struct encoder {
	bool file_open; /* encode file_open records */
	bool attribute; /* container attribution is on: only cgroups in the table are encoded */
	struct cgroup_entry table[CGROUP_TABLE_SIZE]; /* touched by the encoding thread only */
	uint32_t table_count;
	pthread_mutex_t lock; /* guards pending */
	struct cgroup_update *pending;
	uint64_t encoded, declined;
};

struct encoder *encoder_new(void);
void encoder_free(struct encoder *enc);
/* from any thread: queue a table change (container/digest NULL: host cgroup, no fields) */
bool encoder_set_cgroup(struct encoder *enc, uint64_t id, bool v1, const char *container, size_t container_len,
			const char *digest, size_t digest_len);
bool encoder_clear_cgroups(struct encoder *enc);
bool encoder_forget_cgroup(struct encoder *enc, uint64_t id, bool v1);
/* on the encoding thread: apply queued table changes */
void encoder_apply_pending(struct encoder *enc);

/* the most bytes encode_record may write for a record of `size` bytes */
size_t encode_bound(const struct encoder *enc, size_t size);

/*
 * encode_record writes one line (with its '\n') into out and returns its length, or 0 when the
 * reference path must take the record. out must hold encode_bound(size) bytes.
 */
size_t encode_record(struct encoder *enc, const uint8_t *rec, size_t size, uint8_t *out, struct line_info *info);

#endif
