/* A process for the `uaio` inspection tests: 100 reads of a file, one write, one read
 * deliberately blocked on an empty pipe; then it prints "ready" and waits (at most 60 s) for a
 * line on stdin, feeds the pipe, and exits. */
#define _GNU_SOURCE
#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void wait_for(struct aiocb *cb) {
    const struct aiocb *list[1] = {cb};
    while (aio_error(cb) == EINPROGRESS) aio_suspend(list, 1, NULL);
}

int main(void) {
    char path[] = "/tmp/uaio-busy-XXXXXX";
    int fd = mkstemp(path);
    static char data[65536], buf[4096];
    memset(data, 7, sizeof data);
    if (fd < 0 || write(fd, data, sizeof data) != sizeof data) return 1;
    struct aiocb cb;
    for (int i = 0; i < 100; i++) {
        memset(&cb, 0, sizeof cb);
        cb.aio_fildes = fd, cb.aio_buf = buf, cb.aio_nbytes = sizeof buf, cb.aio_offset = (i % 16) * 4096;
        if (aio_read(&cb) != 0) return 1;
        wait_for(&cb);
        if (aio_return(&cb) != sizeof buf) return 1;
    }
    memset(&cb, 0, sizeof cb);
    cb.aio_fildes = fd, cb.aio_buf = data, cb.aio_nbytes = 512, cb.aio_offset = 0;
    if (aio_write(&cb) != 0) return 1;
    wait_for(&cb);
    int p[2];
    if (pipe(p) != 0) return 1;
    static struct aiocb blocked;
    static char one[8];
    blocked.aio_fildes = p[0], blocked.aio_buf = one, blocked.aio_nbytes = sizeof one;
    if (aio_read(&blocked) != 0) return 1;
    usleep(50000);
    printf("ready %d %d %s\n", (int)getpid(), p[0], path);
    fflush(stdout);
    struct pollfd in = {0, POLLIN, 0};
    poll(&in, 1, 60000);
    if (write(p[1], "x", 1) != 1) return 1;
    wait_for(&blocked);
    unlink(path);
    return aio_return(&blocked) == 1 ? 0 : 1;
}
