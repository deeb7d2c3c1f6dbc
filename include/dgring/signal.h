/* dgring: signals delivered on the loop (libuv's uv_signal_t in C).
 *
 * A dg_signal handle calls its callback from the loop, on the loop's
 * thread, when the process (or the loop's thread) receives its signal:
 * SIGINT and SIGTERM for a clean shutdown, SIGHUP for a reload, SIGUSR1
 * for a status dump, without a signal handler and without sigtimedwait()
 * in a thread of its own. The loop reads the signals from a signalfd that
 * the ring watches (the epoll backend the same way), so the callback may
 * call anything: it is an ordinary loop callback, not a signal handler.
 *
 * Signal masks are per thread, and a signal sent to the process goes to
 * any one thread that does not block it. A signalfd only ever sees blocked
 * signals. So, for a signal the loop watches:
 *   - dg_signal_start() blocks it in the calling thread (the loop's);
 *   - every other thread of the process must block it too, or the kernel
 *     may deliver it there instead (for SIGINT/SIGTERM/SIGHUP: the default
 *     action, the end of the process) and the loop never sees it. Block
 *     the signals in main() before any thread starts (threads inherit the
 *     mask): before dg_group_start(), before other libraries start theirs.
 *     docs/signals.md shows it;
 *   - stopping or closing the handle does not unblock it (another handle
 *     or loop may rely on it; a pending signal would act at once).
 * A signal sent to the process is taken by exactly one reader: if several
 * loops watch it (the members of a group, say), one of them gets it. Watch
 * each signal on one loop and fan out from there (dg_group_stop() is
 * thread-safe; dg_group_post() reaches the others). A signal sent to one
 * thread (pthread_kill) is seen only by a loop running on that thread.
 * Like any standard signal, several deliveries of one signal before the
 * loop reads it may arrive as one callback; real-time signals
 * (SIGRTMIN..SIGRTMAX) are queued and arrive one callback each.
 *
 * Lifetime and threads as for timers: new -> start/stop any number of
 * times -> close (the close callback runs from the loop, then the handle
 * is freed). Loop thread only. An active referenced handle keeps the loop
 * alive (dg_signal_unref() for one that should not, such as a SIGHUP
 * reload watcher). The callback contract of loop.h holds: a start never
 * calls the callback from inside itself.
 */
#ifndef DGRING_SIGNAL_H
#define DGRING_SIGNAL_H

#include <stdbool.h>

#include "dgring/loop.h"
#include "dgring/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dg_signal dg_signal;

/* signum is the signal received (the handle's). */
typedef void (*dg_signal_cb)(dg_signal *sig, int signum, void *data);
typedef void (*dg_signal_close_cb)(dg_signal *sig, void *data);

/* Creates a stopped signal handle on loop. The loop's signalfd is created
 * with its first handle. Returns 0 and sets *out, or
 * DG_ERR_INVALID_ARG_VALUE (NULL loop or out), -ECANCELED (the loop is
 * closing), -ENOMEM, -EMFILE/-ENFILE (no fd for the signalfd). */
DG_EXPORT int dg_signal_new(dg_loop *loop, dg_signal **out);

/* Starts watching signum: cb(sig, signum, data) runs from the loop each
 * time it arrives, until dg_signal_stop() or dg_signal_close(). Blocks
 * signum in the calling thread (see above for the other threads). Several
 * handles, on one loop, may watch one signal: each is called, in the order
 * they were started. Starting a started handle changes its signal, callback
 * and data. data is borrowed until the handle is stopped or closed.
 * Returns 0, DG_ERR_INVALID_ARG_VALUE (NULL sig or cb),
 * DG_ERR_SOCKET_DGRAM_NOT_RUNNING (the handle is closing), -EINVAL (a
 * signal a loop cannot take: not 1..SIGRTMAX, SIGKILL, SIGSTOP, a fault
 * signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS: blocked, they
 * kill the process), or the two the C library keeps between SIGSYS and
 * SIGRTMIN), or the error of signalfd(2) (nothing changed). Loop thread
 * only. */
DG_EXPORT int dg_signal_start(dg_signal *sig, int signum, dg_signal_cb cb, void *data);

/* Stops watching; the callback will not run until started again. The
 * signal stays blocked in the loop's thread, and one that arrives while
 * no handle of the loop watches it stays pending in the process. Stopping
 * a stopped handle is a no-op. Returns 0 or DG_ERR_INVALID_ARG_VALUE. */
DG_EXPORT int dg_signal_stop(dg_signal *sig);

/* Whether the handle is started; and its signal (0 when stopped, or for
 * NULL). */
DG_EXPORT bool dg_signal_active(const dg_signal *sig);
DG_EXPORT int dg_signal_signum(const dg_signal *sig);

/* An active referenced handle keeps the loop alive; unref excludes it.
 * A new handle is referenced. No-ops for NULL. */
DG_EXPORT void dg_signal_ref(dg_signal *sig);
DG_EXPORT void dg_signal_unref(dg_signal *sig);

/* Stops and closes the handle; cb (may be NULL) runs from the loop, after
 * which the handle is freed. Returns 0, DG_ERR_INVALID_ARG_VALUE, or
 * DG_ERR_SOCKET_DGRAM_NOT_RUNNING if already closing. */
DG_EXPORT int dg_signal_close(dg_signal *sig, dg_signal_close_cb cb, void *data);

#ifdef __cplusplus
}
#endif

#endif
