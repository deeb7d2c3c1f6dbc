/* The lookup option: dgring asks the socket's JS lookup function through
 * this bridge (dg_lookup_fn) for every address it resolves, as Node does.
 * Each lookup in progress holds a slot; JS answers with
 * lookupDone(slot, code, address, family). A JS error object cannot cross
 * dgring, so lib/loop.js keeps it and answers with a code of the user's
 * range (DG_ERR_LOOKUP_USER_FIRST - n) that it maps back when the failure
 * comes out; a lookup function that threw is DG_ERR_LOOKUP_REPORTED, which
 * dgring reports to no on_error (the exception already left the call). */
#include <stdlib.h>
#include <string.h>

#include "addon.h"

static int slot_take(nd_env *e, dg_lookup_done done, void *done_ctx)
{
    uint32_t i = 0;
    while (i < e->lookups_cap && e->lookups[i].used)
        i++;
    if (i == e->lookups_cap) {
        uint32_t cap = e->lookups_cap ? e->lookups_cap * 2 : 16;
        struct nd_lookup *p = realloc(e->lookups, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        memset(p + e->lookups_cap, 0, (cap - e->lookups_cap) * sizeof(*p));
        e->lookups = p;
        e->lookups_cap = cap;
    }
    e->lookups[i] = (struct nd_lookup){.done = done, .done_ctx = done_ctx, .used = true};
    return (int)i;
}

/* Called by dgring inside bind(), connect() or send() (JS is on the stack:
 * an exception thrown by the lookup function propagates to the caller, as
 * in Node), or from the loop (the tape is handed over first, so JS sees
 * events in order, and the call gets its own callback scope). */
int nd_lookup_bridge(dg_socket *sock, const char *host, int family, dg_lookup_done done,
                     void *done_ctx, void *lookup_data)
{
    (void)sock;
    nd_socket *s = lookup_data;
    nd_env *e = s->env;
    if (e->tearing_down)
        return -ECANCELED;
    int slot = slot_take(e, done, done_ctx);
    if (slot < 0)
        return slot;
    napi_env env = e->env;
    napi_value fn, owner, argv[4];
    if (e->in_run)
        nd_tape_flush(e);
    napi_get_reference_value(env, e->lookup, &fn);
    napi_get_reference_value(env, s->owner_ref, &owner);
    argv[0] = owner;
    napi_create_string_utf8(env, host, NAPI_AUTO_LENGTH, &argv[1]);
    argv[2] = nd_number(env, family);
    argv[3] = nd_number(env, slot);
    napi_status st = e->in_run ? napi_make_callback(env, s->async, owner, fn, 4, argv, NULL)
                               : napi_call_function(env, owner, fn, 4, argv, NULL);
    if (st == napi_ok)
        return 0;
    e->lookups[slot].used = false; /* any answer from now on is ignored */
    if (e->in_run)
        nd_handle_exception(env);
    return DG_ERR_LOOKUP_REPORTED; /* the exception was the report */
}

/* lookupDone(slot, code, address|null, family) */
ND_EXPORT(nd_lookup_done)
{
    nd_args a;
    if (!nd_args_get(env, info, &a, 4))
        return NULL;
    nd_env *e = nd_env_of(env);
    int32_t slot = nd_int(env, a.argv[0], -1);
    if (slot < 0 || (uint32_t)slot >= e->lookups_cap || !e->lookups[slot].used)
        return nd_undefined(env);
    struct nd_lookup lk = e->lookups[slot];
    e->lookups[slot].used = false;
    char text[DG_HOSTSTRLEN];
    const char *address;
    int code = nd_int(env, a.argv[1], 0);
    if (nd_string(env, a.argv[2], text, sizeof(text), &address) < 0 && code == 0)
        code = DG_ERR_INVALID_ADDRESS;
    lk.done(lk.done_ctx, code, code == 0 ? address : NULL, nd_int(env, a.argv[3], 0));
    nd_env_update(e);
    return nd_undefined(env);
}
