/* The BPF object: open, globals, map sizes, autoload, program list, load. */
#include "rtev.h"

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

struct object_handle *get_object(napi_env env, napi_value value)
{
	struct object_handle *h = NULL;
	if (napi_get_value_external(env, value, (void **)&h) != napi_ok || !h || !h->obj) {
		throw_error(env, "RTEV_ARG", "expected an open BPF object", 0);
		return NULL;
	}
	return h;
}

/* program_arg reads the (handle, program name) arguments most calls start with: argv[0] and
 * argv[1]. Returns the program (and the handle in *h), or NULL with a JS error pending. */
struct bpf_program *program_arg(napi_env env, napi_value *argv, struct object_handle **h)
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
napi_value js_open_object(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	if (!get_args(env, info, 1, argv))
		return NULL;
	char path[4096];
	if (!arg_string(env, argv[0], path, sizeof(path)))
		return NULL;
	clear_libbpf_log();
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
napi_value js_set_global(napi_env env, napi_callback_info info)
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
	bpf_object__for_each_map (map, h->obj) {
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
napi_value js_set_map_max_entries(napi_env env, napi_callback_info info)
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
napi_value js_set_autoload(napi_env env, napi_callback_info info)
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
napi_value js_programs(napi_env env, napi_callback_info info)
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
	bpf_object__for_each_program (prog, h->obj) {
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
napi_value js_load(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	if (!get_args(env, info, 2, argv))
		return NULL;
	struct object_handle *h = get_object(env, argv[0]);
	if (!h)
		return NULL;
	CHECK_NAPI(env, napi_get_value_bool(env, argv[1], &libbpf_log_echo));
	clear_libbpf_log();
	int err = bpf_object__load(h->obj);
	if (err) {
		throw_error(env, "BPF_LOAD", "cannot load BPF programs", -err);
		return NULL;
	}
	h->loaded = true;
	return NULL;
}
