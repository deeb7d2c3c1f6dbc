/* The module's entry point: the environment's state and the functions
 * lib/native.js calls. */
#include "addon.h"

ND_EXPORT(nd_create);
ND_EXPORT(nd_bind);
ND_EXPORT(nd_bind_fd);
ND_EXPORT(nd_connect);
ND_EXPORT(nd_disconnect);
ND_EXPORT(nd_close);
ND_EXPORT(nd_ref);
ND_EXPORT(nd_has_ref);
ND_EXPORT(nd_address);
ND_EXPORT(nd_send);
ND_EXPORT(nd_queue);
ND_EXPORT(nd_set_option);
ND_EXPORT(nd_set_multicast_interface);
ND_EXPORT(nd_membership);
ND_EXPORT(nd_buffer_size);
ND_EXPORT(nd_lookup_done);

/* setup(dispatch, retry, lookup): {tape, objects}, once per environment. */
static ND_EXPORT(nd_setup)
{
    nd_args a;
    if (!nd_args_get(env, info, &a, 3))
        return NULL;
    nd_env *e = nd_env_of(env);
    if (e->dispatch) {
        napi_throw_error(env, NULL, "dgring: setup() runs once");
        return NULL;
    }
    napi_value ab, tape, objects, out;
    void *data;
    napi_create_arraybuffer(env, ND_TAPE_INTS * sizeof(int32_t), &data, &ab);
    napi_create_typedarray(env, napi_int32_array, ND_TAPE_INTS, ab, 0, &tape);
    napi_create_array(env, &objects);
    napi_set_element(env, objects, ND_OBJ_ADDRESS, nd_undefined(env));
    e->tape = data;
    napi_create_reference(env, tape, 1, &e->tape_ref);
    napi_create_reference(env, objects, 1, &e->objects_ref);
    napi_create_reference(env, a.argv[0], 1, &e->dispatch);
    napi_create_reference(env, a.argv[1], 1, &e->retry);
    napi_create_reference(env, a.argv[2], 1, &e->lookup);
    napi_create_object(env, &out);
    napi_set_named_property(env, out, "tape", tape);
    napi_set_named_property(env, out, "objects", objects);
    return out;
}

/* backend(): "io_uring" or "epoll" (creating the loop), or a code. */
static ND_EXPORT(nd_backend)
{
    (void)info;
    nd_env *e = nd_env_of(env);
    int ret = nd_env_loop(e);
    if (ret < 0)
        return nd_number(env, ret);
    napi_value v;
    napi_create_string_latin1(env, dg_loop_backend(e->loop), NAPI_AUTO_LENGTH, &v);
    return v;
}

/* errName(code): dgring's name for a code ("EADDRINUSE", "ERR_..."). */
static ND_EXPORT(nd_err_name)
{
    nd_args a;
    if (!nd_args_get(env, info, &a, 1))
        return NULL;
    napi_value v;
    napi_create_string_latin1(env, dg_err_name(nd_int(env, a.argv[0], 0)), NAPI_AUTO_LENGTH, &v);
    return v;
}

static const napi_property_descriptor nd_functions[] = {
#define ND_FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}
    ND_FN("setup", nd_setup),
    ND_FN("backend", nd_backend),
    ND_FN("errName", nd_err_name),
    ND_FN("create", nd_create),
    ND_FN("bind", nd_bind),
    ND_FN("bindFd", nd_bind_fd),
    ND_FN("connect", nd_connect),
    ND_FN("disconnect", nd_disconnect),
    ND_FN("close", nd_close),
    ND_FN("ref", nd_ref),
    ND_FN("hasRef", nd_has_ref),
    ND_FN("address", nd_address),
    ND_FN("send", nd_send),
    ND_FN("queue", nd_queue),
    ND_FN("setOption", nd_set_option),
    ND_FN("setMulticastInterface", nd_set_multicast_interface),
    ND_FN("membership", nd_membership),
    ND_FN("bufferSize", nd_buffer_size),
    ND_FN("lookupDone", nd_lookup_done),
#undef ND_FN
};

NAPI_MODULE_INIT()
{
    nd_env *e;
    if (nd_env_init(env, &e) != napi_ok) {
        napi_throw_error(env, NULL, "dgring: cannot set up the environment");
        return NULL;
    }
    napi_define_properties(env, exports, sizeof(nd_functions) / sizeof(nd_functions[0]),
                           nd_functions);
    return exports;
}
