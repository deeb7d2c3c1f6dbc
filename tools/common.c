/* Helpers shared by the command-line tools; see common.h. */
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- Messages ---------------------------------------------------------- */

void tool_error(const char *prog, const char *format, ...)
{
    va_list args;

    fprintf(stderr, "%s: ", prog);
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fputc('\n', stderr);
}

void tool_error_dg(const char *prog, const dg_error *err)
{
    char text[256];
    const char *syscall = err->syscall;

    if (syscall != NULL && strcmp(syscall, "getaddrinfo") == 0) {
        tool_error(prog, "cannot resolve host '%s': %s (%s)", err->address,
                   dg_err_name(err->code), dg_strerror(err->code));
        return;
    }
    if (dg_error_format(err, text, sizeof(text)) < 0)
        snprintf(text, sizeof(text), "%s", dg_strerror(err->code));
    /* dgring's own codes format as a sentence without the syscall. */
    if (syscall != NULL && strncmp(text, syscall, strlen(syscall)) != 0)
        tool_error(prog, "%s: %s", syscall, text);
    else
        tool_error(prog, "%s", text);
}

void tool_error_bind(const char *prog, int code, const char *address, int port, bool udp6)
{
    dg_error err = {.code = code, .syscall = "bind", .port = port};

    if (address == NULL || *address == '\0')
        address = udp6 ? "::" : "0.0.0.0";
    if (tool_is_dns_error(code))
        err.syscall = "getaddrinfo"; /* the bind address was a host name */
    snprintf(err.address, sizeof(err.address), "%s", address);
    tool_error_dg(prog, &err);
}

bool tool_is_dns_error(int code)
{
    return code <= -11000 && code > -12000;
}

FILE *tool_notes(bool json)
{
    return json ? stderr : stdout;
}

int tool_print_listening(const char *prog, const dg_socket *sock, FILE *out)
{
    dg_address bound;
    int rc = dg_socket_address(sock, &bound);

    if (rc < 0) {
        tool_error_code(prog, "address", rc);
        return rc;
    }
    fprintf(out, "listening %s:%d\n", bound.address, bound.port);
    fflush(out);
    return 0;
}

int tool_bind_start(const char *prog, dg_socket *sock, const char *address, int port, bool udp6,
                    dg_bind_cb cb, void *data)
{
    int rc = dg_socket_bind(sock, port, address, cb, data);

    if (rc == DG_ERR_INVALID_ADDRESS) {
        tool_error(prog, "bad address '%s' for %s", address, udp6 ? "udp6" : "udp4");
        return TOOL_EXIT_USAGE;
    }
    if (rc < 0) {
        tool_error_bind(prog, rc, address, port, udp6);
        return TOOL_EXIT_FAILURE;
    }
    return TOOL_EXIT_OK;
}

int tool_bind_done(const char *prog, dg_socket *sock, int status, bool closing, FILE *out)
{
    if (status < 0 && closing)
        return TOOL_EXIT_OK; /* -ECANCELED after a signal */
    if (status < 0)
        return TOOL_EXIT_FAILURE; /* on_error has printed it, as Node's 'error' */
    return tool_print_listening(prog, sock, out) < 0 ? TOOL_EXIT_FAILURE : TOOL_EXIT_OK;
}

void tool_error_code(const char *prog, const char *what, int code)
{
    tool_error(prog, "%s: %s (%s)", what, dg_err_name(code), dg_strerror(code));
}

void tool_option_error(const char *prog, int result, char *const argv[])
{
    const char *option = argv[optind - 1];

    if (result == ':')
        tool_error(prog, "option '%s' needs a value", option);
    else if (strncmp(option, "--", 2) != 0 && optopt != 0)
        tool_error(prog, "unknown option '-%c'", optopt);
    else
        tool_error(prog, "unknown option '%s'", option);
}

/* ---- Argument parsing -------------------------------------------------- */

bool tool_parse_uint64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long value;

    /* strtoull accepts blanks and a minus sign; a port or count has neither. */
    if (text == NULL || *text < '0' || *text > '9')
        return false;
    errno = 0;
    value = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < min || value > max)
        return false;
    *out = value;
    return true;
}

bool tool_parse_port(const char *text, bool allow_zero, int *out)
{
    uint64_t value;

    if (!tool_parse_uint64(text, allow_zero ? 0 : 1, 65535, &value))
        return false;
    *out = (int)value;
    return true;
}

bool tool_parse_positive(const char *text, double max, double *out)
{
    char *end;
    double value;

    if (text == NULL || *text == '\0' || *text == ' ' || *text == '\t')
        return false;
    errno = 0;
    value = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !isfinite(value) || value <= 0 || value > max)
        return false;
    *out = value;
    return true;
}

/* The power of base a suffix letter stands for (k, M, G), 0 for none. */
static double suffix_scale(char letter, double base)
{
    switch (letter) {
    case 'k':
    case 'K':
        return base;
    case 'm':
    case 'M':
        return base * base;
    case 'g':
    case 'G':
        return base * base * base;
    default:
        return 0;
    }
}

/* text without its last character, if that is a suffix letter, into
 * digits; *scale is the letter's power of base, or 1. False if text is too
 * long to be a number. */
static bool split_suffix(const char *text, double base, char *digits, size_t size, double *scale)
{
    size_t length = text != NULL ? strlen(text) : 0;

    if (length == 0 || length >= size)
        return false;
    memcpy(digits, text, length + 1);
    *scale = suffix_scale(text[length - 1], base);
    if (*scale == 0)
        *scale = 1;
    else
        digits[length - 1] = '\0';
    return true;
}

bool tool_parse_si(const char *text, double max, double *out)
{
    char digits[64];
    double scale, value;

    if (!split_suffix(text, 1000, digits, sizeof(digits), &scale) ||
        !tool_parse_positive(digits, max / scale, &value))
        return false;
    *out = value * scale;
    return true;
}

bool tool_parse_bytes(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    char digits[64];
    double scale;
    uint64_t value;

    if (!split_suffix(text, 1024, digits, sizeof(digits), &scale) ||
        !tool_parse_uint64(digits, 0, max / (uint64_t)scale, &value) ||
        value * (uint64_t)scale < min)
        return false;
    *out = value * (uint64_t)scale;
    return true;
}

/* Whether text is an IP literal of family; an IPv6 scope ("fe80::1%eth0")
 * is left for dgring to check, inet_pton does not know it. */
static bool is_ip_literal(const char *text, int family)
{
    unsigned char address[sizeof(struct in6_addr)];
    char unscoped[INET6_ADDRSTRLEN];
    const char *percent = strchr(text, '%');

    if (family == AF_INET6 && percent != NULL) {
        size_t length = (size_t)(percent - text);
        if (length >= sizeof(unscoped) || percent[1] == '\0')
            return false;
        memcpy(unscoped, text, length);
        unscoped[length] = '\0';
        text = unscoped;
    }
    return inet_pton(family, text, address) == 1;
}

int tool_literal_family(const char *text)
{
    if (text == NULL)
        return 0;
    if (is_ip_literal(text, AF_INET))
        return AF_INET;
    return is_ip_literal(text, AF_INET6) ? AF_INET6 : 0;
}

/* The shape of a host name as dgring accepts one: letters, digits, '-',
 * '_' and single dots, at most 253 characters, not starting with '.' or
 * '-'. Whether it exists is for the resolver to say. */
static bool is_host_name(const char *text)
{
    size_t length = strlen(text);

    if (length == 0 || length > 253 || text[0] == '.' || text[0] == '-')
        return false;
    for (size_t i = 0; i < length; i++) {
        char c = text[i];
        bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool digit = c >= '0' && c <= '9';
        if (!letter && !digit && c != '-' && c != '_' && c != '.')
            return false;
        if (c == '.' && text[i + 1] == '.')
            return false;
    }
    return true;
}

bool tool_host_usable(const char *host, bool udp6)
{
    int family = tool_literal_family(host);

    if (host == NULL)
        return false;
    if (family != 0)
        return family == (udp6 ? AF_INET6 : AF_INET);
    return strchr(host, ':') == NULL && is_host_name(host);
}

/* ---- Time, sequence numbers -------------------------------------------- */

uint64_t tool_now_ns(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

void tool_put_u64le(void *dst, uint64_t value)
{
    unsigned char *bytes = dst;

    for (int i = 0; i < 8; i++)
        bytes[i] = (unsigned char)(value >> (8 * i));
}

uint64_t tool_get_u64le(const void *src)
{
    const unsigned char *bytes = src;
    uint64_t value = 0;

    for (int i = 0; i < 8; i++)
        value |= (uint64_t)bytes[i] << (8 * i);
    return value;
}

/* ---- Signals and the loop driver ----------------------------------------
 * The only global mutable state of the tools: what a signal handler must
 * reach. Only the handler writes stop_count. */

static volatile sig_atomic_t stop_count;
static dg_loop *volatile signal_loop;

static void on_stop_signal(int signo)
{
    dg_loop *loop = signal_loop;

    (void)signo;
    if (stop_count < 1000)
        stop_count = stop_count + 1;
    if (loop != NULL)
        dg_loop_stop(loop);
}

int tool_signals_attach(dg_loop *loop)
{
    struct sigaction action;

    memset(&action, 0, sizeof(action));
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0; /* no SA_RESTART: interrupt a blocking wait */
    signal_loop = loop;
    if (sigaction(SIGINT, &action, NULL) != 0 || sigaction(SIGTERM, &action, NULL) != 0)
        return -errno;
    return 0;
}

static void stop_signal_set(sigset_t *stops)
{
    sigemptyset(stops);
    sigaddset(stops, SIGINT);
    sigaddset(stops, SIGTERM);
}

void tool_signals_detach(void)
{
    sigset_t stops, saved;

    /* Blocked while the pointer changes, so no handler (in any thread the
     * library may run) still uses the loop once it is freed. */
    stop_signal_set(&stops);
    sigprocmask(SIG_BLOCK, &stops, &saved);
    signal_loop = NULL;
    sigprocmask(SIG_SETMASK, &saved, NULL);
}

unsigned tool_stop_requests(void)
{
    return (unsigned)stop_count;
}

int tool_run_loop(dg_loop *loop, tool_finish_fn finish, void *ctx)
{
    unsigned finished_for = 0;

    for (;;) {
        unsigned stops = tool_stop_requests();
        int rc;

        /* A stop seen before dg_loop_run() started is acted on here too,
         * so a signal that raced the loop's wait is never lost. */
        if (stops > finished_for) {
            finished_for = stops;
            finish(ctx);
        }
        if (!dg_loop_alive(loop))
            return 0;
        rc = dg_loop_run(loop, DG_RUN_DEFAULT);
        if (rc < 0 && rc != -EINTR)
            return rc;
    }
}

void tool_error_loop(const char *prog, int code)
{
    const char *backend = getenv("DGRING_BACKEND");

    if (code == DG_ERR_INVALID_ARG_VALUE && backend != NULL && *backend != '\0')
        tool_error(prog, "bad DGRING_BACKEND '%s': expected io_uring, epoll or auto", backend);
    else
        tool_error_code(prog, "cannot create the loop", code);
}

dg_loop *tool_loop_open(const char *prog, const dg_loop_options *options)
{
    dg_loop *loop = NULL;
    int rc = dg_loop_new(&loop, options);

    if (rc < 0) {
        tool_error_loop(prog, rc);
        return NULL;
    }
    rc = tool_signals_attach(loop);
    if (rc < 0) {
        tool_error(prog, "sigaction: %s", strerror(-rc));
        dg_loop_close(loop);
        return NULL;
    }
    return loop;
}

bool tool_loop_close(const char *prog, dg_loop *loop)
{
    int rc;

    tool_signals_detach();
    rc = dg_loop_close(loop);
    if (rc < 0) {
        tool_error_code(prog, "dg_loop_close", rc);
        return false;
    }
    return true;
}

/* ---- Threads: reuse-port groups and worker loops ---------------------------- */

void tool_block_stop_signals(sigset_t *stops)
{
    stop_signal_set(stops);
    pthread_sigmask(SIG_BLOCK, stops, NULL);
}

void tool_group_options_init(dg_group_options *options, unsigned threads, const char *address,
                             int port, bool udp6)
{
    dg_group_options_init(options);
    options->threads = threads;
    options->address = address;
    options->port = port;
    options->socket.type = udp6 ? DG_UDP6 : DG_UDP4;
}

int tool_group_start(const char *prog, dg_group **group, const dg_group_options *options,
                     FILE *out)
{
    bool udp6 = options->socket.type == DG_UDP6;
    const char *shown = options->address;
    int rc = dg_group_start(group, options);

    if (rc == DG_ERR_INVALID_ARG_VALUE) {
        tool_error_loop(prog, rc);
        return rc;
    }
    if (rc < 0) {
        tool_error_bind(prog, rc, options->address, options->port, udp6);
        return rc;
    }
    if (shown == NULL)
        shown = udp6 ? "::" : "0.0.0.0";
    fprintf(out, "listening %s:%d\n", shown, dg_group_port(*group));
    fflush(out);
    return 0;
}

/* ---- Live progress ------------------------------------------------------ */

bool tool_progress_wanted(void)
{
    return isatty(STDERR_FILENO) == 1;
}

/* ---- JSON ---------------------------------------------------------------- */

static void json_key(tool_json *json, const char *key)
{
    fputs(json->fields++ > 0 ? ",\"" : "\"", json->out);
    fputs(key, json->out); /* keys are literals of the tools: no escaping */
    fputs("\":", json->out);
}

void tool_json_begin(tool_json *json, FILE *out)
{
    json->out = out;
    json->fields = 0;
    fputc('{', out);
}

void tool_json_string(tool_json *json, const char *key, const char *value)
{
    json_key(json, key);
    fputc('"', json->out);
    for (const unsigned char *c = (const unsigned char *)value; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(json->out, "\\%c", *c);
        else if (*c < 0x20)
            fprintf(json->out, "\\u%04x", *c);
        else
            fputc(*c, json->out);
    }
    fputc('"', json->out);
}

void tool_json_uint(tool_json *json, const char *key, uint64_t value)
{
    json_key(json, key);
    fprintf(json->out, "%llu", (unsigned long long)value);
}

void tool_json_bool(tool_json *json, const char *key, bool value)
{
    json_key(json, key);
    fputs(value ? "true" : "false", json->out);
}

void tool_json_null(tool_json *json, const char *key)
{
    json_key(json, key);
    fputs("null", json->out);
}

void tool_json_double(tool_json *json, const char *key, double value, int decimals)
{
    json_key(json, key);
    fprintf(json->out, "%.*f", decimals, isfinite(value) ? value : 0.0);
}

void tool_json_end(tool_json *json)
{
    fputs("}\n", json->out);
    fflush(json->out);
}

/* ---- Samples and percentiles -------------------------------------------- */

int tool_samples_push(tool_samples *samples, uint64_t value)
{
    if (samples->count == samples->capacity) {
        size_t capacity = samples->capacity ? samples->capacity * 2 : 1024;
        uint64_t *items;

        if (capacity > SIZE_MAX / sizeof(*items))
            return -ENOMEM;
        items = realloc(samples->items, capacity * sizeof(*items));
        if (items == NULL)
            return -ENOMEM;
        samples->items = items;
        samples->capacity = capacity;
    }
    samples->items[samples->count++] = value;
    return 0;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

void tool_samples_sort(tool_samples *samples)
{
    if (samples->count > 1)
        qsort(samples->items, samples->count, sizeof(*samples->items), compare_u64);
}

uint64_t tool_samples_percentile(const tool_samples *samples, unsigned per_mille)
{
    size_t rank;

    if (samples->count == 0)
        return 0;
    /* Nearest rank: the smallest sample with at least per_mille/1000 of
     * the samples at or below it, ceil(n * p) computed in integers. */
    rank = (samples->count * per_mille + 999) / 1000;
    if (rank == 0)
        rank = 1;
    if (rank > samples->count)
        rank = samples->count;
    return samples->items[rank - 1];
}

void tool_samples_free(tool_samples *samples)
{
    free(samples->items);
    samples->items = NULL;
    samples->count = 0;
    samples->capacity = 0;
}

double tool_rate(uint64_t count, double seconds)
{
    return seconds > 0 ? (double)count / seconds : 0.0;
}

bool tool_rate_measurable(double seconds)
{
    return seconds >= TOOL_RATE_MIN_SECONDS;
}
