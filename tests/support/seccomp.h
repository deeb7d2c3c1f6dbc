#ifndef DGT_SECCOMP_H
#define DGT_SECCOMP_H

/* Installs a seccomp filter on the calling thread's process that makes
 * io_uring_setup(2) fail with EPERM. Irreversible: call it only in a
 * process of its own (each Criterion test runs in one). Returns 0 or a
 * negative errno. */
int dgt_deny_io_uring(void);

/* io_uring_enter(2) fault injection for the calling thread, through a
 * seccomp user-notification filter whose supervisor thread answers every
 * io_uring_enter the thread (and threads it starts later) makes: the next
 * `count` calls that submit SQEs (to_submit > 0) fail with EBUSY, as a
 * kernel before 5.19 answers while the CQ has overflowed entries; every
 * other call runs untouched. Irreversible for the thread: call it only in
 * a process of its own, and keep the handle until the process ends (the
 * thread's io_uring_enter calls fail with ENOSYS once it is gone).
 * Returns NULL (errno set) where seccomp user notification is missing. */
typedef struct dgt_enter_faults dgt_enter_faults;
dgt_enter_faults *dgt_enter_faults_start(void);
/* Makes the next count submitting calls fail (replacing what is left). */
void dgt_enter_faults_arm(dgt_enter_faults *faults, unsigned count);
/* Calls failed so far. */
unsigned dgt_enter_faults_injected(const dgt_enter_faults *faults);

#endif
