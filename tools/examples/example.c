/* Helpers the example programs share; see example.h. */
#include "example.h"

#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* getopt_long() returns this plus the option's index, clear of 'h'. */
#define OPTION_BASE 256
#define MAX_OPTIONS 32

/* ---- The command line --------------------------------------------------- */

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

/* Stores the value of option (text: NULL for a flag). Returns false if
 * it is bad. */
static bool apply_option(const example_option *option, const char *text)
{
    switch (option->arg) {
    case EXAMPLE_FLAG:
        *(bool *)option->target = true;
        return true;
    case EXAMPLE_STRING:
        *(const char **)option->target = text;
        return true;
    default: /* EXAMPLE_NUMBER */
        return example_parse_ulong(text, option->min, option->max, option->target);
    }
}

int example_parse_options(const char *prog, int argc, char *argv[],
                          const example_option *options, size_t count, const char *usage)
{
    struct option longs[MAX_OPTIONS + 2] = {{"help", no_argument, NULL, 'h'}};
    int result;

    assert(count <= MAX_OPTIONS);
    for (size_t i = 0; i < count; i++)
        longs[i + 1] = (struct option){options[i].name,
                                       options[i].arg == EXAMPLE_FLAG ? no_argument
                                                                      : required_argument,
                                       NULL, OPTION_BASE + (int)i};
    opterr = 0;
    while ((result = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        if (result == 'h') {
            fputs(usage, stdout);
            return 0;
        }
        if (result == '?' || result == ':') {
            fprintf(stderr, "%s: bad option '%s' (see --help)\n", prog, argv[optind - 1]);
            return 2;
        }
        if (!apply_option(&options[result - OPTION_BASE], optarg)) {
            fprintf(stderr, "%s: bad value '%s' for --%s\n", prog, optarg,
                    options[result - OPTION_BASE].name);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        return 2;
    }
    return -1;
}

/* ---- Sockets ------------------------------------------------------------ */

bool example_bound(const char *prog, const dg_socket *sock, int status, FILE *out)
{
    dg_address bound;

    (void)prog;
    if (status < 0)
        return false; /* the socket's on_error has printed it (Node's 'error') */
    if (dg_socket_address(sock, &bound) == 0) {
        fprintf(out, "listening %s:%d\n", bound.address, bound.port);
        fflush(out);
    }
    return true;
}

void example_print_error(const char *prog, const dg_error *err)
{
    char text[256];

    dg_error_format(err, text, sizeof(text));
    fprintf(stderr, "%s: %s\n", prog, text);
}

/* ---- Signals and the loop ------------------------------------------------ */

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

int example_run(dg_loop *loop, void (*stop)(void *ctx), void *ctx, const int *failed)
{
    while (dg_loop_alive(loop)) {
        int rc = dg_loop_run(loop, DG_RUN_DEFAULT);
        if (rc < 0 && rc != -EINTR)
            return rc;
        if (example_stop_requested() || (failed != NULL && *failed != 0))
            stop(ctx);
    }
    return 0;
}
