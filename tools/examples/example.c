/* Helpers the example programs share; see example.h. */
#include "example.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* What a signal handler must reach: the only globals of the examples. */
static volatile sig_atomic_t stop_flag;
static dg_loop *volatile signal_loop;

static void on_signal(int signo)
{
    dg_loop *loop = signal_loop;

    (void)signo;
    stop_flag = 1;
    if (loop != NULL)
        dg_loop_stop(loop);
}

bool example_parse_ulong(const char *text, unsigned long min, unsigned long max,
                         unsigned long *out)
{
    char *end;
    unsigned long value;

    if (text == NULL || text[0] < '0' || text[0] > '9')
        return false;
    errno = 0;
    value = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < min || value > max)
        return false;
    *out = value;
    return true;
}

int example_catch_signals(dg_loop *loop)
{
    struct sigaction action;

    memset(&action, 0, sizeof(action));
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    signal_loop = loop;
    if (sigaction(SIGINT, &action, NULL) != 0 || sigaction(SIGTERM, &action, NULL) != 0)
        return -errno;
    return 0;
}

void example_release_signals(void)
{
    sigset_t stops, saved;

    /* Blocked while the pointer changes, so no handler still uses the
     * loop once it is freed. */
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    sigprocmask(SIG_BLOCK, &stops, &saved);
    signal_loop = NULL;
    sigprocmask(SIG_SETMASK, &saved, NULL);
}

bool example_stop_requested(void)
{
    return stop_flag != 0;
}
