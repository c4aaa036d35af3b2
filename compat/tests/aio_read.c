/* aio_read: data, short read at end of file, parallel reads on one fd, and every
 * submission error (EINVAL, EBADF) as POSIX states it. */
#include "helpers.h"

int main(void) {
    int fd = t_temp_file(64 * 1024);
    unsigned char buf[8192];

    /* A plain read at an offset. */
    struct aiocb cb;
    t_prep(&cb, fd, buf, 4096);
    cb.aio_offset = 12345;
    CHECK(aio_read(&cb) == 0, "aio_read");
    CHECK(t_wait(&cb, 5000) == 4096, "read count");
    for (int i = 0; i < 4096; i++) CHECK(buf[i] == t_pattern(12345 + i), "byte %d", i);

    /* Short read at end of file: success with the short count; at/after EOF: 0. */
    t_prep(&cb, fd, buf, 8192);
    cb.aio_offset = 64 * 1024 - 100;
    CHECK(aio_read(&cb) == 0, "aio_read at eof");
    CHECK(t_wait(&cb, 5000) == 100, "short read");
    cb.aio_offset = 1 << 20;
    CHECK(aio_read(&cb) == 0, "aio_read past eof");
    CHECK(t_wait(&cb, 5000) == 0, "read past eof");

    /* 64 reads in flight on one fd at once, all correct. */
    enum { N = 64 };
    static unsigned char bufs[N][512];
    struct aiocb cbs[N];
    for (int i = 0; i < N; i++) {
        t_prep(&cbs[i], fd, bufs[i], 512);
        cbs[i].aio_offset = i * 1000;
        CHECK(aio_read(&cbs[i]) == 0, "aio_read %d", i);
    }
    for (int i = 0; i < N; i++) {
        CHECK(t_wait(&cbs[i], 5000) == 512, "read %d", i);
        for (int j = 0; j < 512; j++) CHECK(bufs[i][j] == t_pattern(i * 1000 + j), "read %d byte %d", i, j);
    }

    /* Submission errors. */
    struct aiocb *volatile null_cb = NULL;
    CHECK_ERRNO(aio_read(null_cb), EINVAL);
    t_prep(&cb, fd, buf, 10);
    cb.aio_offset = -1;
    CHECK_ERRNO(aio_read(&cb), EINVAL);
    cb.aio_offset = 0;
    cb.aio_reqprio = -1;
    CHECK_ERRNO(aio_read(&cb), EINVAL);
    cb.aio_reqprio = 21; /* > AIO_PRIO_DELTA_MAX */
    CHECK_ERRNO(aio_read(&cb), EINVAL);
    cb.aio_reqprio = 0;
    cb.aio_nbytes = (size_t)-1; /* > SSIZE_MAX */
    CHECK_ERRNO(aio_read(&cb), EINVAL);
    cb.aio_nbytes = 10;
    cb.aio_fildes = -1;
    CHECK_DEFERRED(aio_read(&cb), &cb, EBADF);
    cb.aio_fildes = 12345;
    CHECK_DEFERRED(aio_read(&cb), &cb, EBADF);
    int wfd = open("/dev/null", O_WRONLY);
    cb.aio_fildes = wfd;
    CHECK_DEFERRED(aio_read(&cb), &cb, EBADF); /* not open for reading */

    /* A NULL buffer is the kernel's EFAULT, reported through aio_error, never a crash. */
    cb.aio_fildes = fd;
    cb.aio_buf = NULL;
    CHECK(aio_read(&cb) == 0, "aio_read NULL buffer");
    CHECK(t_wait(&cb, 5000) == -1 && aio_error(&cb) == EFAULT, "EFAULT: %d", aio_error(&cb));

    t_require_uaio(N + 4);
    return T_EXIT_PASS;
}
