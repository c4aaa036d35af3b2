/* Where POSIX allows two answers, glibc's: EBADF comes through aio_error (with the
 * notification) and not from the submission of a read or write (aio_fsync fails at once, as
 * glibc's does); aio_fsync ignores every field but aio_fildes and
 * aio_sigevent (garbage offset, size and buffer are no error and no crash); lio_listio(LIO_WAIT)
 * is -1/EIO when an entry fails while running; LIO_NOWAIT is 0 with a bad entry, whose own
 * aio_error says why; an aiocb already in flight, listed again, keeps its live request. */
#include "helpers.h"

static volatile int notified;
static void on_done(union sigval v) { __atomic_store_n(&notified, v.sival_int, __ATOMIC_RELEASE); }

int main(void) {
    static char buf[64];
    struct aiocb cb;

    /* Deferred EBADF, notification included. */
    t_prep(&cb, 12345, buf, sizeof buf);
    cb.aio_sigevent.sigev_notify = SIGEV_THREAD;
    cb.aio_sigevent.sigev_notify_function = on_done;
    cb.aio_sigevent.sigev_value.sival_int = 5;
    CHECK_DEFERRED(aio_read(&cb), &cb, EBADF);
    for (int i = 0; i < 500 && !__atomic_load_n(&notified, __ATOMIC_ACQUIRE); i++) t_sleep_ms(10);
    CHECK(notified == 5, "the EBADF request notified: %d", notified);
    t_prep(&cb, -1, buf, sizeof buf);
    CHECK_DEFERRED(aio_write(&cb), &cb, EBADF);
    /* glibc's aio_fsync checks its fd itself: -1/EBADF at once, for -1 and for a closed fd. */
    CHECK_ERRNO(aio_fsync(O_SYNC, &cb), EBADF);
    t_prep(&cb, 500, buf, sizeof buf);
    CHECK(fcntl(500, F_GETFD) == -1, "fd 500 is closed");
    CHECK_ERRNO(aio_fsync(O_DSYNC, &cb), EBADF);

    /* aio_fsync with every field but aio_fildes garbage. */
    int fd = t_temp_file(4096);
    memset(&cb, 0xff, sizeof cb);
    cb.aio_fildes = fd;
    memset(&cb.aio_sigevent, 0, sizeof cb.aio_sigevent);
    cb.aio_sigevent.sigev_notify = SIGEV_NONE;
    cb.aio_offset = -1;
    cb.aio_nbytes = (size_t)-1;
    cb.aio_buf = (void *)(uintptr_t)0xdead;
    cb.aio_reqprio = -7;
    CHECK(aio_fsync(O_SYNC, &cb) == 0, "aio_fsync with a garbage offset and size");
    CHECK(t_wait(&cb, 5000) == 0 && aio_error(&cb) == 0, "fsync result");
    cb.aio_offset = INT64_MIN;
    CHECK(aio_fsync(O_DSYNC, &cb) == 0, "aio_fsync(O_DSYNC) with INT64_MIN");
    CHECK(t_wait(&cb, 5000) == 0, "fdatasync result");

    /* LIO_WAIT: a write that fails while running (ENOSPC on /dev/full) is -1/EIO. */
    int full = open("/dev/full", O_WRONLY);
    CHECK(full >= 0, "open /dev/full");
    struct aiocb w[2];
    struct aiocb *wl[2] = {&w[0], &w[1]};
    t_prep(&w[0], full, buf, sizeof buf);
    w[0].aio_lio_opcode = LIO_WRITE;
    t_prep(&w[1], fd, buf, sizeof buf);
    w[1].aio_lio_opcode = LIO_READ;
    CHECK_ERRNO(lio_listio(LIO_WAIT, wl, 2, NULL), EIO);
    CHECK(aio_error(&w[0]) == ENOSPC && aio_return(&w[0]) == -1, "the write's own error: %d", aio_error(&w[0]));
    CHECK(aio_error(&w[1]) == 0 && aio_return(&w[1]) == (ssize_t)sizeof buf, "the read ran");

    /* LIO_NOWAIT: an entry on a bad fd is that entry's EBADF; the call returns 0. */
    t_prep(&w[0], 999, buf, sizeof buf);
    w[0].aio_lio_opcode = LIO_READ;
    t_prep(&w[1], fd, buf, sizeof buf);
    w[1].aio_lio_opcode = LIO_READ;
    CHECK(lio_listio(LIO_NOWAIT, wl, 2, NULL) == 0, "LIO_NOWAIT with a bad entry");
    CHECK(t_wait(&w[1], 5000) == (ssize_t)sizeof buf, "the good entry ran");
    CHECK(aio_error(&w[0]) == EBADF && aio_return(&w[0]) == -1, "bad entry: %d", aio_error(&w[0]));

    /* An aiocb in flight (a read on an empty pipe), listed again and twice: untouched. */
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    static char pb[1];
    struct aiocb live;
    t_prep(&live, p[0], pb, 1);
    live.aio_lio_opcode = LIO_READ;
    CHECK(aio_read(&live) == 0, "aio_read on the pipe");
    struct aiocb *again[2] = {&live, &live};
    CHECK(lio_listio(LIO_NOWAIT, again, 2, NULL) == 0, "listing a live aiocb");
    CHECK(aio_error(&live) == EINPROGRESS, "the live request still in progress: %d", aio_error(&live));
    CHECK(write(p[1], "z", 1) == 1, "write");
    CHECK(t_wait(&live, 5000) == 1 && pb[0] == 'z', "the live request's own result");
    t_sleep_ms(50);
    CHECK(aio_error(&live) == 0 && aio_return(&live) == -1 && errno == EINVAL, "reported once, not twice");
    /* A second request queued by the listing would take the next byte. */
    CHECK(write(p[1], "y", 1) == 1, "write");
    t_sleep_ms(50);
    char extra = 0;
    CHECK(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0 && read(p[0], &extra, 1) == 1 && extra == 'y',
          "no second read was queued (got %d)", extra);
    t_require_uaio(8);
    return T_EXIT_PASS;
}
