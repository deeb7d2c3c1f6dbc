/* dnsmasq as a test DNS server (see dns_server.h): a child process on
 * 127.0.0.1 at a free port, with no upstream servers, so whatever it does
 * not know locally it cannot forward anywhere. */
#include "dns_server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#define DNSMASQ_PATH "/usr/sbin/dnsmasq"
#define DNSMASQ_MAX_ARGS 64
#define DNSMASQ_START_MS 5000

struct dgt_dnsmasq {
    pid_t pid;
    int port;
    char address[32];
};

bool dgt_dnsmasq_available(void)
{
    return access(DNSMASQ_PATH, X_OK) == 0;
}

/* Debug mode (-d, "--no-daemon") keeps it in the foreground, writes no pid
 * file and changes no user; no config file, no resolv.conf, no hosts. */
static void child_exec(int port, const char *const *options)
{
    static char port_arg[32];
    const char *argv[DNSMASQ_MAX_ARGS];
    int n = 0;
    snprintf(port_arg, sizeof(port_arg), "--port=%d", port);
    argv[n++] = DNSMASQ_PATH;
    argv[n++] = "--no-daemon";
    argv[n++] = port_arg;
    argv[n++] = "--listen-address=127.0.0.1";
    argv[n++] = "--bind-interfaces";
    argv[n++] = "--no-resolv";
    argv[n++] = "--no-hosts";
    argv[n++] = "--conf-file=/dev/null";
    argv[n++] = "--pid-file=";
    argv[n++] = "--cache-size=0";
    for (int i = 0; options && options[i] && n < DNSMASQ_MAX_ARGS - 1; i++)
        argv[n++] = options[i];
    argv[n] = NULL;
    /* Dies with the test process, even if the test crashes. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
    }
    execv(DNSMASQ_PATH, (char *const *)argv);
    _exit(127);
}

/* Waits until it answers; false if it exited (port taken) or never did. */
static bool wait_ready(struct dgt_dnsmasq *d)
{
    /* Each round takes at least 20 ms: a probe refused by ICMP before
     * dnsmasq binds returns at once. */
    for (int round = 0; round < DNSMASQ_START_MS / 20; round++) {
        int status;
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = -1;
            return false;
        }
        if (dgt_dns_probe(d->port, "probe.dgring-test.invalid", 20))
            return true;
        nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000L}, NULL);
    }
    return false;
}

dgt_dnsmasq *dgt_dnsmasq_start(const char *const *options)
{
    cr_assert(dgt_dnsmasq_available(), DNSMASQ_PATH " is missing (scripts/deps.sh test)");
    struct dgt_dnsmasq *d = calloc(1, sizeof(*d));
    cr_assert_not_null(d);
    for (int attempt = 0; attempt < 5; attempt++) {
        d->port = dgt_dns_dead_port();
        d->pid = fork();
        cr_assert_geq(d->pid, 0);
        if (d->pid == 0)
            child_exec(d->port, options);
        if (wait_ready(d)) {
            snprintf(d->address, sizeof(d->address), "127.0.0.1:%d", d->port);
            return d;
        }
        if (d->pid > 0) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, NULL, 0);
        }
    }
    cr_assert_fail("dnsmasq did not start");
    return NULL;
}

int dgt_dnsmasq_port(const dgt_dnsmasq *d)
{
    return d->port;
}

const char *dgt_dnsmasq_address(const dgt_dnsmasq *d)
{
    return d->address;
}

void dgt_dnsmasq_pause(dgt_dnsmasq *d)
{
    cr_assert_eq(kill(d->pid, SIGSTOP), 0);
}

void dgt_dnsmasq_resume(dgt_dnsmasq *d)
{
    cr_assert_eq(kill(d->pid, SIGCONT), 0);
}

void dgt_dnsmasq_stop(dgt_dnsmasq *d)
{
    if (!d)
        return;
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    free(d);
}
