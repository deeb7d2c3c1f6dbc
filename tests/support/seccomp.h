#ifndef DGT_SECCOMP_H
#define DGT_SECCOMP_H

/* Installs a seccomp filter on the calling thread's process that makes
 * io_uring_setup(2) fail with EPERM. Irreversible: call it only in a
 * process of its own (each Criterion test runs in one). Returns 0 or a
 * negative errno. */
int dgt_deny_io_uring(void);

#endif
