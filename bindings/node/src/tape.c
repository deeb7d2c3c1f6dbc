/* The tape: what dgring's callbacks reported during one dg_loop_run(),
 * handed to JS afterwards in one call per run of records of one socket
 * (addon.h). Nothing here calls JS except nd_tape_flush(). */
#include <stdlib.h>
#include <string.h>

#include "addon.h"

/* Datagrams smaller than ND_SHARED_MAX are copied into the payload pool,
 * one ArrayBuffer filled by successive batches until full, then replaced
 * (JS makes each payload its Buffer over a slice of it, as Node's Buffer
 * pool hands out slices for allocations under 4 KiB); larger ones get an
 * ArrayBuffer of their own. Pool bytes are never reused: a retained
 * Buffer keeps its pool alive, and only garbage collection frees it.
 * ArrayBuffers, not Buffers: a Buffer made here costs a prototype change
 * per object, Buffer.from(arrayBuffer) in JS does not. */
#define ND_SHARED_MAX 4096
#define ND_POOL_SIZE (64 * 1024)

static bool groups_push(nd_env *e, nd_socket *s)
{
    if (e->ngroups == e->groups_cap) {
        uint32_t cap = e->groups_cap ? e->groups_cap * 2 : 64;
        struct nd_group *g = realloc(e->groups, cap * sizeof(*g));
        if (!g)
            return false;
        e->groups = g;
        e->groups_cap = cap;
    }
    e->groups[e->ngroups++] = (struct nd_group){.sock = s, .start = e->tape_len,
                                                .end = e->tape_len};
    return true;
}

/* Room for ints more on s's run of records, flushing first when the tape
 * is full. NULL when memory runs out (the record is lost; never expected). */
int32_t *nd_tape_reserve(nd_env *e, nd_socket *s, uint32_t ints)
{
    if (e->tape_len + ints > ND_TAPE_INTS) {
        if (e->flushing || ints > ND_TAPE_INTS - ND_TAPE_FIRST)
            return NULL;
        nd_tape_flush(e);
    }
    struct nd_group *last = e->ngroups ? &e->groups[e->ngroups - 1] : NULL;
    if ((!last || last->sock != s) && !groups_push(e, s))
        return NULL;
    int32_t *at = e->tape + e->tape_len;
    e->tape_len += ints;
    e->groups[e->ngroups - 1].end = e->tape_len;
    return at;
}

int32_t nd_tape_object(nd_env *e, napi_value v)
{
    napi_value objects;
    napi_get_reference_value(e->env, e->objects_ref, &objects);
    napi_set_element(e->env, objects, e->nobjects, v);
    return (int32_t)e->nobjects++;
}

/* An error record as [code, syscall, address, port, system_code]. */
int32_t nd_tape_error(nd_env *e, const dg_error *err)
{
    napi_env env = e->env;
    napi_value arr, v;
    napi_create_array_with_length(env, 5, &arr);
    napi_set_element(env, arr, 0, nd_number(env, err->code));
    if (err->syscall)
        napi_create_string_utf8(env, err->syscall, NAPI_AUTO_LENGTH, &v);
    else
        v = nd_undefined(env);
    napi_set_element(env, arr, 1, v);
    napi_create_string_utf8(env, err->address, NAPI_AUTO_LENGTH, &v);
    napi_set_element(env, arr, 2, v);
    napi_set_element(env, arr, 3, nd_number(env, err->port));
    napi_set_element(env, arr, 4, nd_number(env, err->system_code));
    return nd_tape_object(e, arr);
}

void nd_tape_record(nd_env *e, nd_socket *s, int32_t kind, int32_t a, int32_t b, int32_t c)
{
    if (e->tearing_down)
        return;
    int32_t *r = nd_tape_reserve(e, s, ND_REC_INTS);
    if (!r)
        return;
    r[0] = kind;
    r[1] = a;
    r[2] = b;
    r[3] = c;
}

/* ---- Datagrams -------------------------------------------------------- */

struct batch {
    nd_env *e;
    const struct sockaddr *last_addr;
    socklen_t last_len;
    int32_t last_obj;        /* the address string of last_addr */
};

/* IPv4 field by field (no call into libc for the common case). */
static bool same_sockaddr(const struct sockaddr *a, socklen_t alen, const void *b, socklen_t blen)
{
    if (alen != blen)
        return false;
    if (alen == sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *x = (const void *)a, *y = b;
        return x->sin_family == y->sin_family && x->sin_port == y->sin_port &&
               x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    return memcmp(a, b, alen) == 0;
}

/* The slot of m's sender as a string: the batch's last one, the last
 * sender of earlier flushes (slot ND_OBJ_ADDRESS), or a new string. */
static int32_t batch_address(struct batch *b, const dg_message *m)
{
    nd_env *e = b->e;
    if (b->last_addr && same_sockaddr(m->addr, m->addrlen, b->last_addr, b->last_len))
        return b->last_obj;
    b->last_addr = m->addr;
    b->last_len = m->addrlen;
    if (same_sockaddr(m->addr, m->addrlen, &e->last_addr, e->last_addr_len)) {
        b->last_obj = e->new_last_addr >= 0 ? e->new_last_addr : ND_OBJ_ADDRESS;
        return b->last_obj;
    }
    dg_address a;
    napi_value str;
    if (dg_address_from_sockaddr(m->addr, m->addrlen, &a) < 0)
        a.address[0] = '\0';
    napi_create_string_latin1(e->env, a.address, NAPI_AUTO_LENGTH, &str);
    b->last_obj = nd_tape_object(e, str);
    memcpy(&e->last_addr, m->addr, m->addrlen);
    e->last_addr_len = m->addrlen;
    e->new_last_addr = b->last_obj; /* slot 0 takes it at the flush's end */
    return b->last_obj;
}

/* A fresh pool of at least ND_POOL_SIZE bytes; false when memory runs
 * out (the old pool, if any, stays). */
static bool pool_new(nd_env *e)
{
    napi_value ab;
    napi_ref ref;
    void *data;
    if (napi_create_arraybuffer(e->env, ND_POOL_SIZE, &data, &ab) != napi_ok)
        return false;
    if (napi_create_reference(e->env, ab, 1, &ref) != napi_ok)
        return false;
    if (e->pool_ref)
        napi_delete_reference(e->env, e->pool_ref);
    e->pool_ref = ref;
    e->pool = data;
    e->pool_size = ND_POOL_SIZE;
    e->pool_used = 0;
    e->pool_slot = nd_tape_object(e, ab);
    return true;
}

/* Room for len bytes in the pool at rec[0] (slot), rec[1] (offset); NULL
 * when memory runs out. Offsets are 8-byte aligned, as Node's pool's. */
static unsigned char *pool_take(nd_env *e, size_t len, int32_t *rec)
{
    if ((!e->pool_ref || e->pool_size - e->pool_used < len) && !pool_new(e))
        return NULL;
    if (e->pool_slot < 0) { /* first use in this flush */
        napi_value ab;
        napi_get_reference_value(e->env, e->pool_ref, &ab);
        e->pool_slot = nd_tape_object(e, ab);
    }
    unsigned char *at = e->pool + e->pool_used;
    rec[0] = e->pool_slot;
    rec[1] = (int32_t)e->pool_used;
    e->pool_used = (e->pool_used + len + 7) & ~(size_t)7;
    if (e->pool_used > e->pool_size)
        e->pool_used = e->pool_size;
    return at;
}

static void batch_payload(nd_env *e, const dg_message *m, int32_t *rec)
{
    unsigned char *at;
    if (m->length < ND_SHARED_MAX && (at = pool_take(e, m->length, rec))) {
        memcpy(at, m->data, m->length);
        return;
    }
    napi_value buf;
    void *data;
    if (napi_create_arraybuffer(e->env, m->length, &data, &buf) != napi_ok) {
        rec[0] = -1; /* JS delivers an empty Buffer; out of memory */
        rec[1] = 0;
        return;
    }
    memcpy(data, m->data, m->length);
    rec[0] = nd_tape_object(e, buf);
    rec[1] = 0;
}

void nd_on_message_batch(dg_socket *sock, const dg_message *msgs, size_t count, void *data)
{
    nd_socket *s = data;
    nd_env *e = s->env;
    (void)sock;
    if (e->tearing_down)
        return;
    int32_t *r = nd_tape_reserve(e, s, (uint32_t)count * ND_MSG_INTS);
    if (!r)
        return;
    e->delivered = true;
    struct batch b = {.e = e};
    for (size_t i = 0; i < count; i++) {
        const dg_message *msg = &msgs[i];
        bool v6 = msg->addr->sa_family == AF_INET6;
        int32_t *m = r + i * ND_MSG_INTS;
        m[0] = ND_REC_MESSAGE;
        batch_payload(e, msg, m + 1);
        m[3] = (int32_t)msg->length;
        m[4] = (int32_t)msg->size;
        m[5] = ntohs(v6 ? ((const struct sockaddr_in6 *)msg->addr)->sin6_port
                        : ((const struct sockaddr_in *)msg->addr)->sin_port);
        m[6] = batch_address(&b, msg);
        m[7] = ((msg->flags & DG_MSG_TRUNC) ? ND_MSG_TRUNC : 0) | (v6 ? ND_MSG_IPV6 : 0);
    }
    /* Handed over now, from inside the loop's run: what the handlers send
     * (an echo, a reply) is submitted at the end of this same run, with no
     * wake-up of the loop's fd and no second run. */
    nd_tape_flush(e);
}

/* ---- Handing the tape to JS ------------------------------------------ */

/* One socket's records, in its async context. A handler that throws is
 * reported as Node reports an exception from an event callback
 * ('uncaughtException', else the process ends), and the records after it
 * are still handed over, as separate dgram callbacks would be. */
static void flush_group(nd_env *e, napi_value fn, const struct nd_group *g)
{
    napi_env env = e->env;
    napi_value owner, argv[3];
    napi_get_reference_value(env, g->sock->owner_ref, &owner);
    uint32_t start = g->start;
    while (start < g->end) {
        argv[0] = owner;
        argv[1] = nd_number(env, start);
        argv[2] = nd_number(env, g->end);
        e->tape[ND_TAPE_CURSOR] = (int32_t)start;
        napi_status st = napi_make_callback(env, g->sock->async, owner, fn, 3, argv, NULL);
        if (st == napi_ok)
            break;
        nd_handle_exception(env);
        if ((uint32_t)e->tape[ND_TAPE_CURSOR] <= start)
            break; /* threw before reading a record: do not loop */
        start = (uint32_t)e->tape[ND_TAPE_CURSOR];
    }
}

static void flush_reset(nd_env *e)
{
    napi_value objects;
    e->tape_len = ND_TAPE_FIRST;
    e->ngroups = 0;
    uint32_t used = e->nobjects;
    e->nobjects = ND_OBJ_FIRST;
    e->pool_slot = -1;
    if (e->new_last_addr < 0 && used <= ND_OBJ_KEEP)
        return;
    napi_get_reference_value(e->env, e->objects_ref, &objects);
    if (e->new_last_addr >= 0) {
        napi_value str;
        napi_get_element(e->env, objects, (uint32_t)e->new_last_addr, &str);
        napi_set_element(e->env, objects, ND_OBJ_ADDRESS, str);
        e->new_last_addr = -1;
    }
    if (used > ND_OBJ_KEEP)
        napi_set_named_property(e->env, objects, "length", nd_number(e->env, ND_OBJ_FIRST));
}

/* Sockets whose close record went by now let go of their JS objects. */
static void flush_release(nd_env *e, uint32_t ngroups)
{
    for (uint32_t i = 0; i < ngroups; i++)
        if (!e->groups[i].sock->dg)
            nd_socket_closed(e->groups[i].sock);
}

/* Sends that met a full queue go again now that some completed. */
static void flush_retry(nd_env *e)
{
    napi_value fn, global;
    e->queue_full = false;
    napi_get_reference_value(e->env, e->retry, &fn);
    napi_get_global(e->env, &global);
    if (napi_make_callback(e->env, NULL, global, fn, 0, NULL, NULL) != napi_ok)
        nd_handle_exception(e->env);
}

void nd_tape_flush(nd_env *e)
{
    if (e->flushing || e->tearing_down)
        return;
    e->flushing = true;
    napi_handle_scope scope;
    napi_value fn;
    napi_open_handle_scope(e->env, &scope);
    napi_get_reference_value(e->env, e->dispatch, &fn);
    uint32_t n = e->ngroups;
    for (uint32_t i = 0; i < n; i++)
        flush_group(e, fn, &e->groups[i]);
    flush_release(e, n);
    flush_reset(e);
    e->flushing = false;
    if (e->queue_full)
        flush_retry(e);
    napi_close_handle_scope(e->env, scope);
}
