/* The epoll backend (core/epoll.c): carries out the ring operations the
 * engine submits with epoll, recvmmsg and sendmmsg; completions come back
 * in the ring's own CQE format. Private to the backend seam: only
 * core/ring.c (and the backend's own test) call these. */
#ifndef DGRING_ENGINE_CORE_EPOLL_H
#define DGRING_ENGINE_CORE_EPOLL_H

#include "core.h"

struct dg__epoll;
int dg__epoll_new(struct dg__epoll **out, struct dg__bufring *br, struct dg_loop_stats *stats,
                  unsigned sq_entries, unsigned cq_entries);
void dg__epoll_free(struct dg__epoll *e);
struct io_uring_sqe *dg__epoll_get_sqe(struct dg__epoll *e);
unsigned dg__epoll_sq_ready(const struct dg__epoll *e);
/* Carries out every queued SQE; returns how many. */
int dg__epoll_submit(struct dg__epoll *e);
/* Carries out the queued SQEs, then ends every operation on fd with
 * -ECANCELED (completions posted now, read later) and forgets the fd, so
 * it may be closed at once and its number reused. Returns 0 or -errno. */
int dg__epoll_cancel_fd(struct dg__epoll *e, int fd);
/* Turns readiness into completions; with block, waits for at least one. */
int dg__epoll_wait(struct dg__epoll *e, bool block);
unsigned dg__epoll_cq_ready(const struct dg__epoll *e);
/* Up to max completions, oldest first, as one array (a copy: the CQ may
 * move meanwhile); consumed by dg__epoll_cq_advance. */
unsigned dg__epoll_cq_window(struct dg__epoll *e, const struct io_uring_cqe **out, unsigned max);
void dg__epoll_cq_advance(struct dg__epoll *e, unsigned n);
/* The fd an embedding loop polls, and the eventfd that pokes it. */
int dg__epoll_fd(const struct dg__epoll *e);
int dg__epoll_attach_notify(struct dg__epoll *e, int fd);

#endif
