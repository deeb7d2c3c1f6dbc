/* Seccomp filters for tests: denying io_uring to the calling process (and
 * what it execs), the way Docker's default seccomp profile does
 * (io_uring_setup fails with EPERM), to test the automatic fallback to the
 * epoll backend for real; and failing chosen io_uring_enter calls with
 * EBUSY from a supervisor thread (user notification), to test what the
 * engine does when the kernel refuses a submit. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "seccomp.h"

#if defined(__x86_64__)
#define DGT_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define DGT_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "add this architecture's AUDIT_ARCH_* to tests/support/seccomp.c"
#endif

/* Installs a filter on the calling thread (and threads it starts later)
 * that answers system call nr with action and allows every other one
 * (all of another architecture's, whose numbers mean other things).
 * Returns what seccomp(2) returns: 0, or a notification fd with
 * SECCOMP_FILTER_FLAG_NEW_LISTENER; -1 with errno on failure. */
static int install_filter(int nr, uint32_t action, unsigned flags)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, DGT_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, action),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {
        .len = (unsigned short)(sizeof(filter) / sizeof(filter[0])),
        .filter = filter,
    };

    /* Lets an unprivileged process install a filter. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    return (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

int dgt_deny_io_uring(void)
{
    if (install_filter(__NR_io_uring_setup, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA), 0) < 0)
        return -errno;
    return 0;
}

/* ---- io_uring_enter faults ------------------------------------------------ */

struct dgt_enter_faults {
    int listener;            /* the filter's notification fd */
    atomic_uint armed;       /* submitting calls still to fail */
    atomic_uint injected;
    pthread_t thread;
};

/* Answers one notification: EBUSY for an armed submitting call, else the
 * call runs as it would have. */
static void answer(struct dgt_enter_faults *f, const struct seccomp_notif *req)
{
    struct seccomp_notif_resp resp;
    unsigned armed = atomic_load(&f->armed);

    memset(&resp, 0, sizeof(resp));
    resp.id = req->id;
    if (req->data.args[1] > 0 && armed > 0 &&
        atomic_compare_exchange_strong(&f->armed, &armed, armed - 1)) {
        resp.error = -EBUSY;
        atomic_fetch_add(&f->injected, 1);
    } else {
        resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    }
    (void)ioctl(f->listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

static void *supervise(void *arg)
{
    struct dgt_enter_faults *f = arg;

    for (;;) {
        struct seccomp_notif req;
        memset(&req, 0, sizeof(req));
        if (ioctl(f->listener, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
            if (errno == EINTR || errno == ENOENT)
                continue; /* interrupted, or the caller went away */
            return NULL;
        }
        answer(f, &req);
    }
}

struct dgt_enter_faults *dgt_enter_faults_start(void)
{
    struct dgt_enter_faults *f = calloc(1, sizeof(*f));
    pthread_t thread;
    int listener;

    if (f == NULL)
        return NULL;
    /* The supervisor inherits the filter, but never calls io_uring_enter. */
    listener = install_filter(__NR_io_uring_enter, SECCOMP_RET_USER_NOTIF,
                              SECCOMP_FILTER_FLAG_NEW_LISTENER);
    if (listener < 0) {
        free(f);
        return NULL;
    }
    f->listener = listener;
    atomic_init(&f->armed, 0);
    atomic_init(&f->injected, 0);
    if (pthread_create(&thread, NULL, supervise, f) != 0) {
        /* no supervisor: every io_uring_enter of this thread would hang */
        abort();
    }
    f->thread = thread;
    return f;
}

void dgt_enter_faults_arm(struct dgt_enter_faults *f, unsigned count)
{
    atomic_store(&f->armed, count);
}

unsigned dgt_enter_faults_injected(const struct dgt_enter_faults *f)
{
    return atomic_load(&((struct dgt_enter_faults *)f)->injected);
}
