/*
 * The fast path (encode.h): file_open ring records to canonical NDJSON lines. Every rule here
 * mirrors one of the reference path; the comments name it.
 */
#include "encode.h"

#include <stdlib.h>
#include <string.h>

/* bpf/events.h offsets (src/decode/layout.ts: Hdr, FileOpen) */
#define HDR_SIZE 56
#define OFF_TS 0
#define OFF_CGROUP 8
#define OFF_KIND 16
#define OFF_SIZE 20
#define OFF_PID 24
#define OFF_TID 28
#define OFF_COMM 32
#define COMM_LEN 16
#define OFF_CGROUP_V1 48
#define FO_RET 56
#define FO_FLAGS 64
#define FO_MODE 68
#define FO_DFD 72
#define FO_PATH_LEN 76
#define FO_DIR_LEN 78
#define FO_PATH_FLAGS 80
#define FO_SYSCALL 82
#define FO_SIZE 88
#define KIND_FILE_OPEN 1
#define PROBE_FILE_OPEN 0

#define STR_TRUNCATED 0x1
#define DIR_RESOLVED 0x4
#define DIR_INCOMPLETE 0x8

#define FRAGMENT_MAX 1024

static inline uint16_t rd16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

static inline uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static inline uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline uint8_t *put(uint8_t *o, const char *s, size_t n)
{
	memcpy(o, s, n);
	return o + n;
}

#define PUT_LIT(o, s) put(o, s, sizeof(s) - 1)

/* two digits per step (the ts_ns, pids and cgroup ids of every line: docs/benchmarks.md, "Session 4 (h21)") */
static const char DIGITS2[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
			      "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
			      "8081828384858687888990919293949596979899";

static uint8_t *put_u64(uint8_t *o, uint64_t v)
{
	char tmp[20];
	int n = 20;
	while (v >= 100) {
		uint64_t q = v / 100;
		unsigned r = (unsigned)(v - q * 100);
		n -= 2;
		memcpy(tmp + n, DIGITS2 + 2 * r, 2);
		v = q;
	}
	if (v >= 10) {
		n -= 2;
		memcpy(tmp + n, DIGITS2 + 2 * v, 2);
	} else {
		tmp[--n] = (char)('0' + v);
	}
	memcpy(o, tmp + n, (size_t)(20 - n));
	return o + (20 - n);
}

static uint8_t *put_i64(uint8_t *o, int64_t v)
{
	if (v < 0) {
		*o++ = '-';
		return put_u64(o, (uint64_t)0 - (uint64_t)v);
	}
	return put_u64(o, (uint64_t)v);
}

static const char HEX[] = "0123456789abcdef";

/* utf8_sequence: the length of the valid UTF-8 sequence at s[i] (a byte >= 0x80), or 0.
 * src/decode/text.ts readSequence: leads C2-DF, E0-EF, F0-F4; no overlong, surrogate or
 * > U+10FFFF code point. */
static size_t utf8_sequence(const uint8_t *s, size_t i, size_t len)
{
	uint8_t b0 = s[i];
	size_t need = b0 >= 0xc2 && b0 <= 0xdf ? 1 : b0 >= 0xe0 && b0 <= 0xef ? 2 : b0 >= 0xf0 && b0 <= 0xf4 ? 3 : 0;
	if (need == 0 || i + need >= len)
		return 0;
	uint32_t cp = b0 & (need == 1 ? 0x1f : need == 2 ? 0x0f : 0x07);
	for (size_t k = 1; k <= need; k++) {
		uint8_t b = s[i + k];
		if ((b & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (b & 0x3f);
	}
	uint32_t min = need == 1 ? 0x80 : need == 2 ? 0x800 : 0x10000;
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need + 1;
}

/*
 * put_text writes the bytes as the reference writes their decoded string: valid UTF-8 as is,
 * each other byte b as the lone surrogate U+DC00+b (text.ts decodeSurrogateEscape), then
 * escaped as JSON.stringify escapes (encode/record.ts quote). No quotes. Sets *invalid when a
 * byte was not valid UTF-8.
 */
/* plain8: none of the 8 bytes needs escaping: ASCII, not a control character, '"' or '\\'.
 * Exact (no false positives or negatives) once no byte has its high bit set: a borrow of the
 * subtraction can only start at a byte that is itself below the bound. */
static inline bool plain8(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
	uint64_t special = ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b);
	return ((w | special) & high) == 0;
}

static uint8_t *put_text(uint8_t *o, const uint8_t *s, size_t len, bool *invalid)
{
	size_t i = 0;
	while (i < len) {
		/* runs of plain ASCII (most paths) go 8 bytes at a time */
		uint64_t w;
		while (i + 8 <= len && (memcpy(&w, s + i, 8), plain8(w))) {
			memcpy(o, &w, 8);
			o += 8;
			i += 8;
		}
		if (i >= len)
			break;
		uint8_t b = s[i];
		if (b < 0x80) {
			if (b >= 0x20 && b != '"' && b != '\\') {
				*o++ = b;
			} else {
				*o++ = '\\';
				switch (b) {
				case '"':
					*o++ = '"';
					break;
				case '\\':
					*o++ = '\\';
					break;
				case '\b':
					*o++ = 'b';
					break;
				case '\f':
					*o++ = 'f';
					break;
				case '\n':
					*o++ = 'n';
					break;
				case '\r':
					*o++ = 'r';
					break;
				case '\t':
					*o++ = 't';
					break;
				default:
					o = PUT_LIT(o, "u00");
					*o++ = (uint8_t)HEX[b >> 4];
					*o++ = (uint8_t)HEX[b & 15];
				}
			}
			i++;
			continue;
		}
		size_t n = utf8_sequence(s, i, len);
		if (n) {
			memcpy(o, s + i, n);
			o += n;
			i += n;
		} else {
			*invalid = true;
			o = PUT_LIT(o, "\\udc");
			*o++ = (uint8_t)HEX[b >> 4];
			*o++ = (uint8_t)HEX[b & 15];
			i++;
		}
	}
	return o;
}

/* decode/errno.ts NAMES */
static const char *errno_name(uint32_t e)
{
	switch (e) {
	case 1:
		return "EPERM";
	case 2:
		return "ENOENT";
	case 4:
		return "EINTR";
	case 5:
		return "EIO";
	case 6:
		return "ENXIO";
	case 9:
		return "EBADF";
	case 11:
		return "EAGAIN";
	case 12:
		return "ENOMEM";
	case 13:
		return "EACCES";
	case 14:
		return "EFAULT";
	case 16:
		return "EBUSY";
	case 17:
		return "EEXIST";
	case 18:
		return "EXDEV";
	case 19:
		return "ENODEV";
	case 20:
		return "ENOTDIR";
	case 21:
		return "EISDIR";
	case 22:
		return "EINVAL";
	case 23:
		return "ENFILE";
	case 24:
		return "EMFILE";
	case 26:
		return "ETXTBSY";
	case 27:
		return "EFBIG";
	case 28:
		return "ENOSPC";
	case 30:
		return "EROFS";
	case 36:
		return "ENAMETOOLONG";
	case 40:
		return "ELOOP";
	case 75:
		return "EOVERFLOW";
	case 95:
		return "EOPNOTSUPP";
	case 97:
		return "EAFNOSUPPORT";
	case 98:
		return "EADDRINUSE";
	case 99:
		return "EADDRNOTAVAIL";
	case 101:
		return "ENETUNREACH";
	case 104:
		return "ECONNRESET";
	case 110:
		return "ETIMEDOUT";
	case 111:
		return "ECONNREFUSED";
	case 113:
		return "EHOSTUNREACH";
	case 115:
		return "EINPROGRESS";
	case 122:
		return "EDQUOT";
	default:
		return NULL;
	}
}

/* layout.ts OpenSyscall (an unknown value is sys_enter_openat, as decodeFileOpen does) */
static const char *open_syscall(uint8_t v)
{
	switch (v) {
	case 2:
		return "sys_enter_openat2";
	case 3:
		return "sys_enter_open";
	case 4:
		return "sys_enter_creat";
	case 5:
		return "io_uring:openat";
	case 6:
		return "io_uring:openat2";
	default:
		return "sys_enter_openat";
	}
}

/* decode.ts accessOf */
static const char *access_of(uint32_t flags)
{
	if (flags & 010000000)
		return "unknown";
	switch (flags & 3) {
	case 0:
		return "read";
	case 1:
		return "write";
	case 2:
		return "read_write";
	default:
		return "unknown";
	}
}

static const uint8_t MARK[3] = { 0xe2, 0x80, 0xa6 }; /* text.ts TRUNCATION_MARK, U+2026 */

/* decode.ts HAS_DOT_OR_EMPTY_COMPONENT = /(^|\/)\.(\/|$)|\/\//, on the relative path with
 * its truncation mark (which holds no '.' or '/') */
static bool has_dot_or_empty_component(const uint8_t *s, size_t len, bool mark)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '/' && i + 1 < len && s[i + 1] == '/')
			return true;
		if (s[i] == '.' && (i == 0 || s[i - 1] == '/') &&
		    ((i + 1 == len && !mark) || (i + 1 < len && s[i + 1] == '/')))
			return true;
	}
	return false;
}

/* file_key: a 64-bit hash of the attribution key and the path's written bytes, 8 bytes per step
 * (a multiply folded to 64 bits, as in wyhash); the byte-wise FNV-1a it replaces was a chain of
 * one multiply per byte, the largest item of encode_record in `perf annotate` (docs/benchmarks.md,
 * "Session 4 (h21)"). Only compared within one run (the chunk writer's window of files). */
static inline uint64_t fold(uint64_t a, uint64_t b)
{
	__uint128_t m = (__uint128_t)a * b;
	return (uint64_t)m ^ (uint64_t)(m >> 64);
}

#define KEY_P0 0xa0761d6478bd642full
#define KEY_P1 0xe7037ed1a0b428dbull
#define KEY_P2 0x8ebc6af09c88c6e3ull

static uint64_t file_key(uint64_t cgroup, uint8_t v1, const uint8_t *path, size_t len)
{
	uint64_t h = fold(cgroup ^ KEY_P0, ((uint64_t)v1 << 56 | len) ^ KEY_P1);
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, path + i, 8);
		h = fold(h ^ w, KEY_P1);
	}
	if (i < len) {
		uint64_t w = 0;
		memcpy(&w, path + i, len - i);
		h = fold(h ^ w, KEY_P2);
	}
	return fold(h ^ KEY_P0, KEY_P2);
}

static struct cgroup_entry *find_cgroup(struct encoder *enc, uint64_t id, uint8_t v1)
{
	uint32_t h = (uint32_t)((id * 0x9E3779B97F4A7C15ull) >> 51) ^ v1;
	for (uint32_t n = 0; n < CGROUP_TABLE_SIZE; n++) {
		struct cgroup_entry *e = &enc->table[(h + n) & (CGROUP_TABLE_SIZE - 1)];
		if (e->state == 0 || (e->id == id && e->v1 == v1))
			return e;
	}
	return NULL;
}

size_t encode_bound(const struct encoder *enc, size_t size)
{
	(void)enc;
	/* every input byte becomes at most 6 output bytes (\u00XX, \udcXX) */
	return 512 + 6 * size + 2 * FRAGMENT_MAX;
}

size_t encode_record(struct encoder *enc, const uint8_t *rec, size_t size, uint8_t *out, struct line_info *info)
{
	/* the checks decodeRecord makes before it accepts a file_open record */
	if (!enc->file_open || size < FO_SIZE || rd32(rec + OFF_KIND) != KIND_FILE_OPEN || rd32(rec + OFF_SIZE) != size)
		return 0;
	uint32_t pid = rd32(rec + OFF_PID);
	uint16_t path_len = rd16(rec + FO_PATH_LEN), dir_len = rd16(rec + FO_DIR_LEN);
	if (pid < 1 || (size_t)FO_SIZE + path_len + dir_len != size)
		return 0;
	uint64_t cgroup = rd64(rec + OFF_CGROUP), v1id = rd64(rec + OFF_CGROUP_V1);
	/* pipeline.ts #attribute: tasks in the v2 root are attributed by their v1 memory cgroup */
	bool by_v1 = cgroup == 1 && v1id != 0;
	info->cgroup = by_v1 ? v1id : cgroup;
	info->v1 = by_v1;
	struct cgroup_entry *entry = NULL;
	if (enc->attribute) {
		entry = find_cgroup(enc, info->cgroup, info->v1);
		if (!entry || entry->state != 1)
			return 0;
	}
	const uint8_t *path = rec + FO_SIZE, *dir = path + path_len;
	uint16_t path_flags = rd16(rec + FO_PATH_FLAGS);
	bool truncated = path_flags & STR_TRUNCATED;
	bool relative = path_len > 0 && path[0] != '/';
	bool joined = relative && (path_flags & DIR_RESOLVED) && !(path_flags & DIR_INCOMPLETE);
	bool invalid;
	uint32_t flags = rd32(rec + FO_FLAGS);
	int32_t ret = (int32_t)rd32(rec + FO_RET);
	uint32_t tid = rd32(rec + OFF_TID);
	info->ts = rd64(rec + OFF_TS);
	info->invalid_utf8 = 0;
	info->unresolved_relative_paths = relative && !joined;

	uint8_t *o = out;
	o = PUT_LIT(o, "{\"cgroup_id\":");
	o = put_u64(o, cgroup);
	o = PUT_LIT(o, ",\"comm\":\"");
	size_t comm_len = 0;
	while (comm_len < COMM_LEN && rec[OFF_COMM + comm_len] != 0)
		comm_len++;
	invalid = false;
	o = put_text(o, rec + OFF_COMM, comm_len, &invalid);
	info->invalid_utf8 += invalid;
	*o++ = '"';
	if (entry && entry->container)
		o = put(o, entry->container, entry->container_len);
	o = PUT_LIT(o, ",\"event\":{\"access\":\"");
	const char *access = access_of(flags);
	o = put(o, access, strlen(access));
	o = PUT_LIT(o, "\",\"dfd\":");
	o = put_i64(o, (int32_t)rd32(rec + FO_DFD));
	o = PUT_LIT(o, ",\"flags\":");
	o = put_u64(o, flags);
	if (flags & (0100 | 020000000)) {
		o = PUT_LIT(o, ",\"mode\":");
		o = put_u64(o, rd32(rec + FO_MODE) & 07777);
	}
	o = PUT_LIT(o, ",\"path\":\"");
	const uint8_t *path_start = o;
	bool path_invalid = false;
	if (!joined) {
		o = put_text(o, path, path_len, &path_invalid);
		if (truncated)
			o = put(o, (const char *)MARK, 3);
	} else {
		/* decode.ts joinDirectory(dir, relative) */
		bool dir_invalid = false;
		o = put_text(o, dir, dir_len, &dir_invalid);
		info->invalid_utf8 += dir_invalid;
		if (dir_len == 0 || dir[dir_len - 1] != '/')
			*o++ = '/';
		if (!has_dot_or_empty_component(path, path_len, truncated)) {
			o = put_text(o, path, path_len, &path_invalid);
			if (truncated)
				o = put(o, (const char *)MARK, 3);
		} else {
			/* relative.split('/').filter((p, i, all) => p !== '.' && !(p === '' && i < all.length - 1))
			 * .join('/'); the mark belongs to the last component */
			bool first = true;
			size_t start = 0;
			for (;;) {
				size_t end = start;
				while (end < path_len && path[end] != '/')
					end++;
				bool last = end == path_len;
				size_t n = end - start;
				bool with_mark = last && truncated;
				bool dot = n == 1 && path[start] == '.' && !with_mark;
				bool empty = n == 0 && !with_mark;
				if (!dot && !(empty && !last)) {
					if (!first)
						*o++ = '/';
					o = put_text(o, path + start, n, &path_invalid);
					if (with_mark)
						o = put(o, (const char *)MARK, 3);
					first = false;
				}
				if (last)
					break;
				start = end + 1;
			}
		}
	}
	info->invalid_utf8 += path_invalid;
	info->key = file_key(info->cgroup, info->v1, path_start, (size_t)(o - path_start));
	o = PUT_LIT(o, "\",\"type\":\"file_open\"}");
	if (entry && entry->digest)
		o = put(o, entry->digest, entry->digest_len);
	o = PUT_LIT(o, ",\"pid\":");
	o = put_u64(o, pid);
	o = PUT_LIT(o, ",\"src\":\"");
	const char *src = open_syscall(rec[FO_SYSCALL]);
	o = put(o, src, strlen(src));
	if (ret < 0) {
		/* `${syscallSrc}:failed:${errnoName(-ret)}` */
		o = PUT_LIT(o, ":failed:");
		uint32_t e = (uint32_t)0 - (uint32_t)ret;
		const char *name = errno_name(e);
		if (name) {
			o = put(o, name, strlen(name));
		} else {
			*o++ = 'E';
			o = put_u64(o, e);
		}
	}
	o = PUT_LIT(o, "\",\"tid\":");
	o = put_u64(o, tid ? tid : pid);
	o = PUT_LIT(o, ",\"ts_ns\":");
	o = put_u64(o, info->ts);
	o = PUT_LIT(o, "}\n");
	enc->encoded++;
	return (size_t)(o - out);
}

struct encoder *encoder_new(void)
{
	struct encoder *enc = calloc(1, sizeof(*enc));
	if (enc)
		pthread_mutex_init(&enc->lock, NULL);
	return enc;
}

static void free_entry(struct cgroup_entry *e)
{
	free(e->container);
	free(e->digest);
	memset(e, 0, sizeof(*e));
}

static void clear_table(struct encoder *enc)
{
	for (uint32_t i = 0; i < CGROUP_TABLE_SIZE; i++)
		if (enc->table[i].state)
			free_entry(&enc->table[i]);
	enc->table_count = 0;
}

void encoder_free(struct encoder *enc)
{
	if (!enc)
		return;
	clear_table(enc);
	struct cgroup_update *u = enc->pending;
	while (u) {
		struct cgroup_update *next = u->next;
		free_entry(&u->entry);
		free(u);
		u = next;
	}
	pthread_mutex_destroy(&enc->lock);
	free(enc);
}

static char *dup_bytes(const char *s, size_t n)
{
	char *d = malloc(n ? n : 1);
	if (d && n)
		memcpy(d, s, n);
	return d;
}

static void queue_update(struct encoder *enc, struct cgroup_update *u)
{
	pthread_mutex_lock(&enc->lock);
	/* applied in order: keep a FIFO */
	struct cgroup_update **tail = &enc->pending;
	while (*tail)
		tail = &(*tail)->next;
	*tail = u;
	pthread_mutex_unlock(&enc->lock);
}

bool encoder_set_cgroup(struct encoder *enc, uint64_t id, bool v1, const char *container, size_t container_len,
			const char *digest, size_t digest_len)
{
	if (container_len > FRAGMENT_MAX || digest_len > FRAGMENT_MAX)
		return false;
	struct cgroup_update *u = calloc(1, sizeof(*u));
	if (!u)
		return false;
	u->entry.id = id;
	u->entry.v1 = v1;
	u->entry.state = 1;
	if (container) {
		u->entry.container = dup_bytes(container, container_len);
		u->entry.container_len = (uint16_t)container_len;
	}
	if (digest) {
		u->entry.digest = dup_bytes(digest, digest_len);
		u->entry.digest_len = (uint16_t)digest_len;
	}
	if ((container && !u->entry.container) || (digest && !u->entry.digest)) {
		free_entry(&u->entry);
		free(u);
		return false;
	}
	queue_update(enc, u);
	return true;
}

bool encoder_clear_cgroups(struct encoder *enc)
{
	struct cgroup_update *u = calloc(1, sizeof(*u));
	if (!u)
		return false;
	u->entry.state = 2;
	queue_update(enc, u);
	return true;
}

bool encoder_forget_cgroup(struct encoder *enc, uint64_t id, bool v1)
{
	struct cgroup_update *u = calloc(1, sizeof(*u));
	if (!u)
		return false;
	u->entry.state = 3;
	u->entry.id = id;
	u->entry.v1 = v1;
	queue_update(enc, u);
	return true;
}

void encoder_apply_pending(struct encoder *enc)
{
	if (!__atomic_load_n(&enc->pending, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&enc->lock);
	struct cgroup_update *u = enc->pending;
	enc->pending = NULL;
	pthread_mutex_unlock(&enc->lock);
	while (u) {
		struct cgroup_update *next = u->next;
		if (u->entry.state == 2) {
			clear_table(enc);
		} else if (u->entry.state == 3) {
			struct cgroup_entry *e = find_cgroup(enc, u->entry.id, u->entry.v1);
			if (e && e->state == 1) {
				free(e->container);
				free(e->digest);
				e->container = e->digest = NULL;
				e->container_len = e->digest_len = 0;
				e->state =
					3; /* stays as a tombstone: later entries of its probe chain remain reachable */
			}
		} else {
			if (enc->table_count >= CGROUP_TABLE_MAX)
				clear_table(enc);
			struct cgroup_entry *e = find_cgroup(enc, u->entry.id, u->entry.v1);
			if (e) {
				if (e->state)
					free_entry(e);
				else
					enc->table_count++;
				*e = u->entry; /* takes the strings */
			} else {
				free_entry(&u->entry);
			}
		}
		free(u);
		u = next;
	}
}
