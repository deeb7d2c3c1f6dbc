/* deny-io-uring COMMAND [ARGS...]: runs COMMAND with io_uring_setup(2)
 * denied (EPERM), as inside Docker's default seccomp profile. The tools'
 * tests use it to check that they fall back to the epoll backend. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "seccomp.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: deny-io-uring COMMAND [ARGS...]\n");
        return 2;
    }
    int rc = dgt_deny_io_uring();
    if (rc < 0) {
        fprintf(stderr, "deny-io-uring: seccomp: %s\n", strerror(-rc));
        return 1;
    }
    execvp(argv[1], argv + 1);
    perror("deny-io-uring: exec");
    return 127;
}
