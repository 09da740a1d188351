/* Maps: update, delete and look up elements. */
#include "rtev.h"

struct bpf_map *find_map(napi_env env, struct object_handle *h, napi_value name_value)
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
napi_value js_map_update(napi_env env, napi_callback_info info)
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
napi_value js_map_delete(napi_env env, napi_callback_info info)
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
napi_value js_map_lookup(napi_env env, napi_callback_info info)
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
