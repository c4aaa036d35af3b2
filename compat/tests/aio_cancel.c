/* aio_cancel: a held or queued request is cancelled (AIO_CANCELED, ECANCELED, notification
 * delivered); a read blocked on an empty pipe is cancelled too when the ring has it
 * (IORING_OP_ASYNC_CANCEL), and is AIO_NOTCANCELED on a pool worker, where it finishes with its
 * real result; a finished one is AIO_ALLDONE; fd-wide cancel; EBADF; cb/fd mismatch is EINVAL.
 * No byte ever goes to a request reported cancelled. */
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
    int ring = t_on_ring("read");
    printf("reads go to the %s\n", ring ? "ring" : "pool");
    if (ring) {
        /* Blocked in the kernel's poll: the ring cancels it, and cc becomes the running one. */
        CHECK(aio_cancel(p[0], &ca) == AIO_CANCELED, "cancel the blocked read on the ring");
        CHECK(aio_error(&ca) == ECANCELED && aio_return(&ca) == -1, "ca: %d", aio_error(&ca));
        t_sleep_ms(20);
        CHECK(aio_cancel(p[0], NULL) == AIO_CANCELED, "fd-wide cancel on the ring");
        CHECK(aio_error(&cc) == ECANCELED && aio_return(&cc) == -1, "cc: %d", aio_error(&cc));
        CHECK(write(p[1], "left", 4) == 4, "write");
        char left[4];
        CHECK(read(p[0], left, 4) == 4 && memcmp(left, "left", 4) == 0, "a cancelled read took bytes");
        for (int i = 0; i < 500 && notified != 111; i++) t_sleep_ms(10);
        CHECK(notified == 111, "notifications: %d (want 1+10+100)", notified);
        CHECK_ERRNO(aio_cancel(p[1], &ca), EINVAL);
        CHECK_ERRNO(aio_cancel(-1, NULL), EBADF);
        t_require_uaio(3);
        return T_EXIT_PASS;
    }
    CHECK(aio_cancel(p[0], &ca) == AIO_NOTCANCELED, "cancel the running request");
    CHECK(aio_error(&ca) == EINPROGRESS, "ca still runs");

    CHECK_ERRNO(aio_cancel(p[1], &ca), EINVAL); /* cb's fd is not p[1] */
    CHECK_ERRNO(aio_cancel(-1, NULL), EBADF);
    CHECK_ERRNO(aio_cancel(999, NULL), EBADF);
    int other = open("/dev/null", O_RDONLY);
    CHECK(aio_cancel(other, NULL) == AIO_ALLDONE, "nothing in flight on another fd");

    /* fd-wide: ca runs, cc waits: one could not be cancelled. */
    CHECK(aio_cancel(p[0], NULL) == AIO_NOTCANCELED, "fd-wide cancel");
    CHECK(aio_error(&cc) == ECANCELED, "cc: %d", aio_error(&cc));
    CHECK(aio_return(&cc) == -1, "cc return");

    /* The running read ends with its real result; no byte went to a cancelled request. */
    CHECK(write(p[1], "data", 4) == 4, "write");
    CHECK(t_wait(&ca, 5000) == 4 && memcmp(a, "data", 4) == 0, "ca result");
    for (int i = 0; i < 500 && notified != 111; i++) t_sleep_ms(10);
    CHECK(notified == 111, "notifications: %d (want 1+10+100)", notified);
    CHECK(aio_cancel(p[0], &ca) == AIO_ALLDONE, "all done");
    CHECK(aio_cancel(p[0], NULL) == AIO_ALLDONE, "all done, fd-wide");

    t_require_uaio(3);
    return T_EXIT_PASS;
}
