/* aio_cancel: a held or queued request is cancelled (AIO_CANCELED, ECANCELED, notification
 * delivered); a read blocked on an empty pipe is cancelled too, on the ring
 * (IORING_OP_ASYNC_CANCEL) and on a pool worker (the cancel signal); a finished one is
 * AIO_ALLDONE; fd-wide cancel; EBADF; cb/fd mismatch is EINVAL. No byte ever goes to a
 * request reported cancelled, and the worker serves the next request. */
#include "helpers.h"

static volatile int notified;
static void on_done(union sigval v) { __atomic_add_fetch(&notified, v.sival_int, __ATOMIC_SEQ_CST); }

static void prep(struct aiocb *cb, int fd, void *buf, size_t n, int value) {
    t_prep(cb, fd, buf, n);
    cb->aio_sigevent.sigev_notify = SIGEV_THREAD;
    cb->aio_sigevent.sigev_notify_function = on_done;
    cb->aio_sigevent.sigev_value.sival_int = value;
}

int main(void) {
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    char a[4], b[4], c[4];
    struct aiocb ca, cb, cc;
    prep(&ca, p[0], a, sizeof a, 1);
    prep(&cb, p[0], b, sizeof b, 10);
    prep(&cc, p[0], c, sizeof c, 100);
    /* ca runs (blocked on the empty pipe); cb and cc wait behind it in the read lane. */
    CHECK(aio_read(&ca) == 0 && aio_read(&cb) == 0 && aio_read(&cc) == 0, "aio_read");
    t_sleep_ms(50);

    CHECK(aio_cancel(p[0], &cb) == AIO_CANCELED, "cancel a waiting request");
    CHECK(aio_error(&cb) == ECANCELED && aio_return(&cb) == -1, "cb: %d", aio_error(&cb));
    CHECK(aio_cancel(p[0], &cb) == AIO_ALLDONE, "cancel it again");
    printf("reads go to the %s\n", t_on_ring("read") ? "ring" : "pool");
    /* Blocked in the kernel's poll (ring) or in a worker's read (pool, interrupted by the cancel
     * signal): cancelled either way, and cc becomes the running one. */
    CHECK(aio_cancel(p[0], &ca) == AIO_CANCELED, "cancel the blocked read");
    CHECK(aio_error(&ca) == ECANCELED && aio_return(&ca) == -1, "ca: %d", aio_error(&ca));
    t_sleep_ms(20);
    CHECK(aio_cancel(p[0], NULL) == AIO_CANCELED, "fd-wide cancel of the next blocked read");
    CHECK(aio_error(&cc) == ECANCELED && aio_return(&cc) == -1, "cc: %d", aio_error(&cc));
    CHECK(write(p[1], "left", 4) == 4, "write");
    char left[4];
    CHECK(read(p[0], left, 4) == 4 && memcmp(left, "left", 4) == 0, "a cancelled read took bytes");
    for (int i = 0; i < 500 && notified != 111; i++) t_sleep_ms(10);
    CHECK(notified == 111, "notifications: %d (want 1+10+100)", notified);
    CHECK(aio_cancel(p[0], &ca) == AIO_ALLDONE, "all done");
    CHECK(aio_cancel(p[0], NULL) == AIO_ALLDONE, "all done, fd-wide");

    /* The worker (or the ring) is still usable: a new read gets the next bytes. */
    struct aiocb cd;
    char d[4];
    prep(&cd, p[0], d, sizeof d, 1000);
    CHECK(aio_read(&cd) == 0, "aio_read after the cancels");
    CHECK(write(p[1], "more", 4) == 4, "write");
    CHECK(t_wait(&cd, 5000) == 4 && memcmp(d, "more", 4) == 0, "cd result");

    CHECK_ERRNO(aio_cancel(p[1], &ca), EINVAL); /* ca's fd is not p[1] */
    CHECK_ERRNO(aio_cancel(-1, NULL), EBADF);
    CHECK_ERRNO(aio_cancel(999, NULL), EBADF);
    int other = open("/dev/null", O_RDONLY);
    CHECK(aio_cancel(other, NULL) == AIO_ALLDONE, "nothing in flight on another fd");
    t_require_uaio(4);
    return T_EXIT_PASS;
}
