/* The resolver's interface to the layers above it: never installed.
 *
 * The socket layer (engine/dgram/) enters the resolver only through
 * dg__resolve() and dg__resolve_cancel(); the loop (engine/loop.c) drives
 * it with the dg__resolver_* calls below. Everything else of
 * resolver/ is private to it (resolver/internal.h). */
#ifndef DGRING_RESOLVER_RESOLVER_H
#define DGRING_RESOLVER_RESOLVER_H

#include <sys/socket.h>

#include "dgring.h"

/* ---- For the socket layer ------------------------------------------------- */
typedef void (*dg__resolve_cb)(void *ctx, int status, const struct sockaddr *addr,
                               socklen_t addrlen);
struct dg__resolve_req;
/* Resolves name for family (AF_INET or AF_INET6) with the loop's resolver.
 * cb runs exactly once, from the loop and never inside this call: status 0
 * with the first address (port 0), or a DG_ERR_DNS_* code / negative errno,
 * or -ECANCELED after dg__resolve_cancel(). *out (may be NULL) is a handle
 * valid until cb runs. Returns 0, or a negative code and cb never runs. */
int dg__resolve(dg_loop *loop, const char *name, int family, dg__resolve_cb cb, void *ctx,
                struct dg__resolve_req **out);
/* Cancels a pending resolve: its cb runs from the loop with -ECANCELED. */
void dg__resolve_cancel(struct dg__resolve_req *req);

/* ---- For the loop (engine/loop.c) ------------------------------------------
 * Each does nothing while the loop has no resolver (it is created on first
 * use, and gone once dg_loop_close began tearing it down). */
struct io_uring_cqe;
/* A completion of one of the resolver's polls (kind DG__OP_POLL). */
void dg__resolver_on_poll(dg_loop *loop, const struct io_uring_cqe *cqe);
/* The resolver's ring timeout ended (kind DG__OP_TIMEOUT, not the timers'). */
void dg__resolver_on_timeout(dg_loop *loop, const struct io_uring_cqe *cqe);
/* Before each io_uring_enter: queues the SQEs the resolver needs. */
void dg__resolver_prepare(dg_loop *loop);
/* From dg_loop_close, before anything is freed: cancels, finishes every
 * request exactly once (with -ECANCELED), releases the resolver. */
void dg__resolver_destroy(dg_loop *loop);

#endif
