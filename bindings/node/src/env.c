/* One dgring loop per Node environment, driven from that environment's
 * libuv loop (see addon.h). The loop is created on the first socket, so a
 * program that only requires the module pays for no ring. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addon.h"

nd_env *nd_env_of(napi_env env)
{
    void *data = NULL;
    napi_get_instance_data(env, &data);
    return data;
}

/* Runs the loop without waiting and hands what it recorded to JS; again
 * while JS queued more or datagrams came (the next run takes those the
 * kernel received meanwhile, without a return to libuv's poll and a read
 * of the loop fd), at most a few times so other libuv work is not
 * starved. A reply sent from a 'message' handler leaves at the end of the
 * run that delivered the message; the kernel has usually completed it by
 * the time that run returns, so one more run takes its completion (and
 * clears the loop fd the completion signalled) in this wake-up instead of
 * a second one: one poll and one crossing per echo, as Node's. */
static void env_run(nd_env *e)
{
    napi_handle_scope scope;
    if (e->tearing_down || !e->loop)
        return;
    napi_open_handle_scope(e->env, &scope);
    for (int i = 0; i < 4; i++) {
        e->sent = false;
        e->delivered = false;
        e->in_run = true;
        dg_loop_run(e->loop, DG_RUN_NOWAIT);
        e->in_run = false;
        if (e->ngroups == 0 && !e->queue_full && !e->sent && !e->delivered &&
            dg_loop_timeout(e->loop) != 0)
            break;
        nd_tape_flush(e);
    }
    nd_env_update(e);
    napi_close_handle_scope(e->env, scope);
}

static void on_poll(uv_poll_t *poll, int status, int events)
{
    (void)status;
    (void)events;
    env_run(poll->data);
}

static void on_timer(uv_timer_t *timer)
{
    env_run(timer->data);
}

/* Node's process stays alive exactly while the dgring loop is alive; the
 * timer never holds it (the poll handle does, for the same reasons). */
void nd_env_update(nd_env *e)
{
    /* Inside env_run() this waits for the run's end, which updates once. */
    if (!e->loop || e->tearing_down || e->in_run || e->flushing)
        return;
    if (dg_loop_alive(e->loop))
        uv_ref((uv_handle_t *)&e->poll);
    else
        uv_unref((uv_handle_t *)&e->poll);
    int ms = dg_loop_timeout(e->loop);
    if (ms < 0)
        uv_timer_stop(&e->timer);
    else if (ms != e->timer_ms || !uv_is_active((uv_handle_t *)&e->timer))
        uv_timer_start(&e->timer, on_timer, (uint64_t)ms, 0);
    e->timer_ms = ms;
}

static int env_watch(nd_env *e)
{
    uv_loop_t *uv = NULL;
    if (napi_get_uv_event_loop(e->env, &uv) != napi_ok || !uv)
        return DG_ERR_INVALID_ARG_VALUE;
    int fd = dg_loop_fd(e->loop);
    if (fd < 0)
        return fd;
    int ret = uv_poll_init(uv, &e->poll, fd);
    if (ret < 0)
        return ret;
    e->poll.data = e;
    e->uv_open++;
    uv_timer_init(uv, &e->timer);
    e->timer.data = e;
    e->uv_open++;
    uv_unref((uv_handle_t *)&e->timer);
    uv_poll_start(&e->poll, UV_READABLE, on_poll);
    return 0;
}

/* Sockets pick the loop up here: 0, or the reason there is none. */
int nd_env_loop(nd_env *e)
{
    if (e->loop)
        return 0;
    if (e->loop_error)
        return e->loop_error;
    /* Node reads up to 64 KiB, so nothing it can receive may be cut here:
     * 65527 is the largest UDP payload over IPv6. Node queues sends
     * without a bound; lib/dgram.js queues those past this many. */
    dg_loop_options o;
    dg_loop_options_init(&o);
    o.recv_buffer_size = 65527;
    o.max_pending_sends = 16384;
    int ret = dg_loop_new(&e->loop, &o);
    if (ret == 0) {
        ret = env_watch(e);
        if (ret < 0) {
            dg_loop_close(e->loop);
            e->loop = NULL;
        }
    }
    e->loop_error = ret;
    return ret;
}

/* ---- Teardown (worker exit, process exit) --------------------------- */

static void env_free(nd_env *e)
{
    free(e->groups);
    free(e->lookups);
    free(e);
}

static void on_uv_closed(uv_handle_t *h)
{
    nd_env *e = h->data;
    if (--e->uv_open > 0)
        return;
    napi_remove_async_cleanup_hook(e->cleanup);
    env_free(e);
}

/* No JS may run now: sockets still open are closed silently, the loop runs
 * until their close callbacks ran, then the ring and the uv handles go. */
static void env_teardown(napi_async_cleanup_hook_handle handle, void *arg)
{
    nd_env *e = arg;
    e->cleanup = handle;
    e->tearing_down = true;
    if (!e->loop) {
        napi_remove_async_cleanup_hook(handle);
        env_free(e);
        return;
    }
    for (nd_socket *s = e->sockets; s; s = s->next)
        dg_socket_close(s->dg, NULL, NULL);
    /* Without waiting, for at most about two seconds: a JS lookup that
     * never answered would otherwise hold the close (and the exit) open. */
    struct timespec ms = {.tv_sec = 0, .tv_nsec = 1000000};
    for (int i = 0; i < 2000 && dg_loop_run(e->loop, DG_RUN_NOWAIT) > 0; i++)
        nanosleep(&ms, NULL);
    if (dg_loop_close(e->loop) == 0)
        e->loop = NULL; /* else it is left to the process's exit */
    uv_close((uv_handle_t *)&e->poll, on_uv_closed);
    uv_close((uv_handle_t *)&e->timer, on_uv_closed);
}

napi_status nd_env_init(napi_env env, nd_env **out)
{
    nd_env *e = calloc(1, sizeof(*e));
    if (!e)
        return napi_generic_failure;
    e->env = env;
    e->tape_len = ND_TAPE_FIRST;
    e->nobjects = ND_OBJ_FIRST;
    e->new_last_addr = -1;
    e->pool_slot = -1;
    napi_status st = napi_set_instance_data(env, e, NULL, NULL);
    if (st == napi_ok)
        st = napi_add_async_cleanup_hook(env, env_teardown, e, NULL);
    if (st != napi_ok) {
        free(e);
        return st;
    }
    *out = e;
    return napi_ok;
}
