/* Asks the kernel, not libuaio, whether this process may use io_uring: exit 0 and "yes" if an
 * io_uring_setup succeeds, 1 and the reason if not (ENOSYS: no io_uring; EPERM: a seccomp
 * filter or kernel.io_uring_disabled). The test runner expects the ring from this answer, so a
 * library that falls back to its pool where the kernel offers a ring fails the routing tests
 * instead of skipping them. */
#include <errno.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    long fd = syscall(SYS_io_uring_setup, 4, &p);
    if (fd < 0) {
        printf("no: io_uring_setup: %s\n", strerror(errno));
        return 1;
    }
    close((int)fd);
    printf("yes\n");
    return 0;
}
