/* Log and errors: libbpf's log, captured for error messages, and the JS errors the addon throws. */
#include "rtev.h"

char libbpf_log[65536];
size_t libbpf_log_len;
bool libbpf_log_echo;

int capture_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
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
void throw_error(napi_env env, const char *code, const char *message, int err)
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

static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

int locked_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	pthread_mutex_lock(&print_lock);
	int r = capture_libbpf_print(level, fmt, args);
	pthread_mutex_unlock(&print_lock);
	return r;
}

void clear_libbpf_log(void)
{
	libbpf_log_len = 0;
	libbpf_log[0] = 0;
}

/* ---------- argument helpers ---------- */

bool arg_string(napi_env env, napi_value value, char *out, size_t size)
{
	size_t len = 0;
	if (napi_get_value_string_utf8(env, value, out, size, &len) != napi_ok) {
		throw_error(env, "RTEV_ARG", "expected a string argument", 0);
		return false;
	}
	return true;
}

bool arg_buffer(napi_env env, napi_value value, void **data, size_t *len)
{
	bool is_buffer = false;
	napi_is_buffer(env, value, &is_buffer);
	if (!is_buffer || napi_get_buffer_info(env, value, data, len) != napi_ok) {
		throw_error(env, "RTEV_ARG", "expected a Buffer argument", 0);
		return false;
	}
	return true;
}

napi_value get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv)
{
	size_t argc = want;
	napi_value self;
	if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok || argc < want) {
		throw_error(env, "RTEV_ARG", "missing arguments", 0);
		return NULL;
	}
	return self;
}
