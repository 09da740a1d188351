/* Module init: the exported functions. */
#include "rtev.h"

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
		{ "attachTracepoint", NULL, js_attach_tracepoint, NULL, NULL, NULL, napi_default, NULL },
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
		{ "createEncoder", NULL, js_create_encoder, NULL, NULL, NULL, napi_default, NULL },
		{ "encoderSetCgroup", NULL, js_encoder_set_cgroup, NULL, NULL, NULL, napi_default, NULL },
		{ "encoderClearCgroups", NULL, js_encoder_clear_cgroups, NULL, NULL, NULL, napi_default, NULL },
		{ "encoderForgetCgroup", NULL, js_encoder_forget_cgroup, NULL, NULL, NULL, napi_default, NULL },
		{ "encodeFrames", NULL, js_encode_frames, NULL, NULL, NULL, napi_default, NULL },
		{ "numPossibleCpus", NULL, js_num_possible_cpus, NULL, NULL, NULL, napi_default, NULL },
	};
	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
