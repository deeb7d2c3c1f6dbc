/* dgring for Node: the Node-API addon under lib/dgram.js.
 *
 * One dgring loop per Node environment (the main thread and each worker),
 * kept in the environment's instance data and driven from libuv: a
 * uv_poll_t on dg_loop_fd() runs dg_loop_run(DG_RUN_NOWAIT) when the loop
 * has work, and a uv_timer_t covers dg_loop_timeout(). The poll handle is
 * referenced exactly while dg_loop_alive() says so, which is dgram's rule
 * (a bound referenced socket, a send in flight, a closing socket).
 *
 * Events never call JavaScript one by one. The dgring callbacks append
 * records to the environment's tape (an Int32Array shared with JS) and the
 * values that cannot be numbers (payload Buffers, address strings, error
 * records) to an objects array; after the run, the tape is handed to JS in
 * one napi_make_callback per run of records of one socket, inside that
 * socket's async context ("UDPWRAP"). So a drain of 64 datagrams is one
 * crossing into JS, not 64.
 *
 * Ownership: the JS handle object owns an nd_socket through napi_wrap; the
 * nd_socket holds a strong reference to the handle while its dgring socket
 * is open, so an open socket is never collected. The nd_socket is freed
 * when both are gone: the dgring socket closed and the handle finalized.
 *
 * Threading: everything here runs on the environment's JS thread, which is
 * also the dgring loop's thread. */
#ifndef DGRING_NODE_ADDON_H
#define DGRING_NODE_ADDON_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include <dgring.h>

/* Record kinds on the tape (lib/dgram.js has the same numbers). */
enum nd_record {
    ND_REC_MESSAGE = 1,   /* ND_MSG_INTS - 1 more ints, see below */
    ND_REC_LISTENING = 2, /* (nothing) */
    ND_REC_CONNECT = 3,   /* status, error object index (-1 on success) */
    ND_REC_ERROR = 4,     /* error object index */
    ND_REC_SEND = 5,      /* request id, status (bytes or code), error index */
    ND_REC_CLOSE = 6,     /* (nothing) */
};

/* An ND_REC_MESSAGE record: the kind, buffer object index, offset, length,
 * real size, port, address object index, flags. Every other record is 4
 * ints: the kind and three values. */
#define ND_MSG_INTS 8
#define ND_REC_INTS 4
#define ND_MSG_TRUNC 1 /* flags: DG_MSG_TRUNC */
#define ND_MSG_IPV6 2  /* flags: the sender is IPv6 */

/* Tape slot 0 is the cursor JS advances before handling each record, so
 * a record whose handler threw is not handled twice. */
#define ND_TAPE_CURSOR 0
#define ND_TAPE_FIRST 1
#define ND_TAPE_INTS 65536

/* The objects array: slot 0 holds the address string of the last sender
 * seen, kept from one flush to the next (a peer that keeps talking costs
 * no string); a flush's objects start at ND_OBJ_FIRST. The array keeps its
 * length between flushes (stale entries are overwritten) and is cut back
 * only after a flush that used more than ND_OBJ_KEEP slots: stale entries
 * keep at most a few payloads alive past their use. */
#define ND_OBJ_ADDRESS 0
#define ND_OBJ_FIRST 1
#define ND_OBJ_KEEP 8

typedef struct nd_env nd_env;
typedef struct nd_socket nd_socket;

struct nd_group { /* consecutive records of one socket */
    nd_socket *sock;
    uint32_t start;
    uint32_t end;
};

struct nd_lookup { /* a JS lookup in progress */
    dg_lookup_done done;
    void *done_ctx;
    bool used;
};

struct nd_env {
    napi_env env;
    dg_loop *loop;
    int loop_error;          /* dg_loop_new's failure, reported per create */
    uv_poll_t poll;
    uv_timer_t timer;
    int uv_open;             /* uv handles not yet closed */
    int timer_ms;            /* the timer's last timeout (dg_loop_timeout) */
    bool in_run;             /* inside dg_loop_run: JS must wait for flush */
    bool flushing;
    bool queue_full;         /* a send met DG_ERR_SEND_QUEUE_FULL */
    bool sent;               /* JS handed dgring a send during this run */
    bool delivered;          /* this run handed datagrams to JS */
    bool tearing_down;       /* record nothing, call no JS */
    napi_ref dispatch;       /* lib/dgram.js: dispatch(owner, start, end) */
    napi_ref retry;          /* lib/dgram.js: retry() after a full queue */
    napi_ref lookup;         /* lib/dgram.js: lookup(owner, host, family, slot) */
    napi_ref tape_ref;       /* the Int32Array */
    napi_ref objects_ref;    /* the objects Array */
    int32_t *tape;
    uint32_t tape_len;
    uint32_t nobjects;       /* the next object's slot (>= ND_OBJ_FIRST) */
    struct sockaddr_storage last_addr; /* the sender in ND_OBJ_ADDRESS */
    socklen_t last_addr_len; /* 0: none yet */
    int32_t new_last_addr;   /* this flush's slot of a newer last sender, or -1 */
    napi_ref pool_ref;       /* the payload pool (tape.c), NULL before the first */
    unsigned char *pool;     /* its bytes */
    size_t pool_size, pool_used;
    int32_t pool_slot;       /* its slot in this flush's objects, or -1 */
    struct nd_group *groups;
    uint32_t ngroups, groups_cap;
    struct nd_lookup *lookups;
    uint32_t lookups_cap;
    nd_socket *sockets;      /* open sockets, for teardown */
    napi_async_cleanup_hook_handle cleanup;
};

struct nd_socket {
    nd_env *env;
    dg_socket *dg;           /* NULL once dgring closed it */
    napi_ref handle_ref;     /* strong while dg is open */
    napi_ref owner_ref;      /* the dgram.Socket (strong while dg is open) */
    napi_async_context async;
    bool handle_gone;        /* the JS handle was finalized */
    bool has_lookup;
    nd_socket *prev, *next;  /* env->sockets */
};

/* env.c */
nd_env *nd_env_of(napi_env env);
int nd_env_loop(nd_env *e);
void nd_env_update(nd_env *e);
napi_status nd_env_init(napi_env env, nd_env **out);

/* tape.c */
void nd_tape_flush(nd_env *e);
int32_t *nd_tape_reserve(nd_env *e, nd_socket *s, uint32_t ints);
int32_t nd_tape_object(nd_env *e, napi_value v);
int32_t nd_tape_error(nd_env *e, const dg_error *err);
void nd_tape_record(nd_env *e, nd_socket *s, int32_t kind, int32_t a, int32_t b, int32_t c);
void nd_on_message_batch(dg_socket *sock, const dg_message *msgs, size_t count, void *data);

/* socket.c */
nd_socket *nd_socket_of(napi_env env, napi_value handle);
void nd_socket_closed(nd_socket *s);
extern const dg_socket_handlers nd_handlers;

/* lookup.c */
int nd_lookup_bridge(dg_socket *sock, const char *host, int family, dg_lookup_done done,
                     void *done_ctx, void *lookup_data);

/* util.c: argument helpers (each returns false with a JS exception
 * pending when the value has the wrong type). */
#define ND_MAX_ARGS 8
typedef struct nd_args {
    size_t argc;
    napi_value argv[ND_MAX_ARGS];
} nd_args;
bool nd_args_get(napi_env env, napi_callback_info info, nd_args *a, size_t want);
int32_t nd_int(napi_env env, napi_value v, int32_t fallback);
double nd_double(napi_env env, napi_value v, double fallback);
bool nd_bool(napi_env env, napi_value v);
int nd_string(napi_env env, napi_value v, char *buf, size_t len, const char **out);
napi_value nd_number(napi_env env, double n);
napi_value nd_undefined(napi_env env);
napi_value nd_address_object(napi_env env, const dg_address *a);
void nd_handle_exception(napi_env env);

#define ND_EXPORT(name) napi_value name(napi_env env, napi_callback_info info)

/* The start of a binding function whose first argument is a socket handle:
 * declares a (the arguments) and s; a closed socket answers
 * DG_ERR_SOCKET_DGRAM_NOT_RUNNING. */
#define ND_SOCKET_ARGS(n)                                                    \
    nd_args a;                                                               \
    if (!nd_args_get(env, info, &a, (n)))                                    \
        return NULL;                                                         \
    nd_socket *s = nd_socket_of(env, a.argv[0]);                             \
    if (!s)                                                                  \
        return NULL;                                                         \
    if (!s->dg)                                                              \
        return nd_number(env, DG_ERR_SOCKET_DGRAM_NOT_RUNNING)

#endif
