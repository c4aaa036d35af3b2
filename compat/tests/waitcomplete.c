/* Batch reaping as FreeBSD, illumos and epoll programs use it: aio_waitcomplete after
 * submitting (cached reads that complete at once included), a blocked pipe read with a
 * timeout, a failed request, aio_return mixed in (the reaped request never comes back, and
 * with nothing outstanding the call returns at once), aio_waitn, uaio_eventfd's readiness, and
 * a uaio_ops.h request. The names are declared weak, so that the preloaded build imports them
 * too and libuaio feeds its queue from the start, as for a program linked with -luaio. */
#include "helpers.h"

#include <poll.h>
#include <uaio.h>

#pragma weak aio_waitcomplete
#pragma weak aio_waitn
#pragma weak uaio_eventfd
#pragma weak uaio_submit

static int readable(int fd, int ms) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

int main(void) {
    CHECK(aio_waitcomplete && aio_waitn && uaio_eventfd && uaio_submit, "libuaio is not loaded");
    const size_t size = 64 * 1024;
    int fd = t_temp_file(size);
    char buf[8][512];
    struct aiocb cbs[8];

    /* 1. Eight cached reads (they complete inline, before the first call), reaped in any
     *    order, each exactly once, with its result. */
    for (int i = 0; i < 8; i++) {
        t_prep(&cbs[i], fd, buf[i], 512);
        cbs[i].aio_offset = i * 4096;
        CHECK(aio_read(&cbs[i]) == 0, "aio_read %d", i);
    }
    int seen = 0;
    for (int i = 0; i < 8; i++) {
        struct aiocb *cb = NULL;
        struct timespec ts = {5, 0};
        ssize_t r = aio_waitcomplete(&cb, &ts);
        CHECK(r == 512 && cb >= &cbs[0] && cb <= &cbs[7], "waitcomplete %d: %zd, cb %p", i, r, (void *)cb);
        int k = (int)(cb - cbs);
        CHECK(!(seen & (1 << k)), "request %d reported twice", k);
        seen |= 1 << k;
        CHECK((unsigned char)buf[k][0] == t_pattern((size_t)k * 4096), "data of %d", k);
        CHECK(aio_return(cb) == -1 && errno == EINVAL, "aio_return after aio_waitcomplete must fail");
    }
    struct aiocb *cb = (struct aiocb *)1;
    struct timespec zero = {0, 0};
    CHECK(aio_waitcomplete(&cb, &zero) == -1 && errno == EAGAIN && cb == NULL, "nothing outstanding");

    /* 2. A read blocked on a pipe: the timeout passes, then the data comes. */
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    char one[4];
    t_prep(&cbs[0], p[0], one, sizeof one);
    CHECK(aio_read(&cbs[0]) == 0, "pipe read");
    struct timespec fifty = {0, 50 * 1000000};
    uint64_t t0 = (uint64_t)time(NULL);
    CHECK(aio_waitcomplete(&cb, &fifty) == -1 && errno == EAGAIN, "timeout: expected EAGAIN");
    CHECK((uint64_t)time(NULL) - t0 < 5, "the timeout took too long");
    CHECK(write(p[1], "xy", 2) == 2, "write");
    CHECK(aio_waitcomplete(&cb, NULL) == 2 && cb == &cbs[0] && memcmp(one, "xy", 2) == 0, "pipe read result");

    /* 3. A request that fails: -1 with its errno, and its aiocb. */
    t_prep(&cbs[1], fd, NULL, 512);  /* NULL buffer: EFAULT from the kernel */
    CHECK(aio_read(&cbs[1]) == 0, "aio_read(NULL buffer)");
    errno = 0;
    CHECK(aio_waitcomplete(&cb, NULL) == -1 && errno == EFAULT && cb == &cbs[1], "failed request: errno %d", errno);

    /* 4. aio_return first: that request never comes out; nothing left means EAGAIN at once,
     *    even with no timeout. */
    t_prep(&cbs[2], fd, buf[2], 100);
    t_prep(&cbs[3], fd, buf[3], 200);
    CHECK(aio_read(&cbs[2]) == 0 && aio_read(&cbs[3]) == 0, "two reads");
    CHECK(t_wait(&cbs[2], 5000) == 100, "aio_return of the first");
    CHECK(aio_waitcomplete(&cb, NULL) == 200 && cb == &cbs[3], "only the second comes out");
    CHECK(aio_waitcomplete(&cb, NULL) == -1 && errno == EAGAIN, "nothing outstanding, no timeout: EAGAIN at once");

    /* 5. aio_waitn: five requests, all five at once; results through aio_return. */
    for (int i = 0; i < 5; i++) {
        t_prep(&cbs[i], fd, buf[i], 64 + (size_t)i);
        cbs[i].aio_offset = 1000 * i;
        CHECK(aio_read(&cbs[i]) == 0, "aio_read %d", i);
    }
    struct aiocb *list[10];
    unsigned nwait = 5;
    CHECK(aio_waitn(list, 10, &nwait, NULL) == 0 && nwait == 5, "aio_waitn: %u", nwait);
    int sum = 0;
    for (unsigned i = 0; i < nwait; i++) sum += (int)aio_return(list[i]);
    CHECK(sum == 64 * 5 + 10, "aio_waitn results: %d", sum);
    nwait = 1;
    CHECK(aio_waitn(list, 10, &nwait, NULL) == -1 && errno == EAGAIN, "aio_waitn, nothing outstanding");
    nwait = 11;
    CHECK(aio_waitn(list, 10, &nwait, NULL) == -1 && errno == EINVAL, "nwait > nent");
    CHECK(aio_waitn(NULL, 10, &nwait, NULL) == -1 && errno == EINVAL, "NULL list");
    t_prep(&cbs[0], p[0], one, 1);
    CHECK(aio_read(&cbs[0]) == 0, "pipe read");
    nwait = 1;
    CHECK(aio_waitn(list, 10, &nwait, &fifty) == -1 && errno == ETIME && nwait == 0, "aio_waitn timeout: ETIME");
    struct timespec bad = {0, 2000000000};
    CHECK(aio_waitcomplete(&cb, &bad) == -1 && errno == EINVAL, "bad timeout");
    CHECK(aio_waitcomplete(NULL, NULL) == -1 && errno == EINVAL, "NULL cbp");

    /* 6. uaio_eventfd: readable exactly while something waits to be reaped. */
    int efd = uaio_eventfd();
    CHECK(efd >= 0 && uaio_eventfd() == efd, "uaio_eventfd");
    CHECK(!readable(efd, 0), "readable with nothing completed");
    CHECK(write(p[1], "z", 1) == 1, "write");
    CHECK(readable(efd, 5000), "not readable after a completion");
    nwait = 1;
    CHECK(aio_waitn(list, 10, &nwait, NULL) == 0 && nwait == 1 && list[0] == &cbs[0], "aio_waitn after poll");
    CHECK(aio_return(&cbs[0]) == 1 && one[0] == 'z', "the pipe byte");
    CHECK(!readable(efd, 0), "still readable after the queue emptied");

    /* 7. A uaio_ops.h request comes out the same way. */
    struct uaiocb sx;
    struct statx st;
    uaio_prep_statx(&sx, AT_FDCWD, "/", 0, STATX_MODE, &st);
    CHECK(uaio_submit(&sx) == 0, "uaio_submit");
    CHECK(aio_waitcomplete(&cb, NULL) == 0 && cb == &sx.aiocb && S_ISDIR(st.stx_mode), "statx via waitcomplete");

    /* 8. An aiocb submitted again before anyone reaped its completion (no aio_return): the
     *    old completion is gone with the old result, and the new request comes out once, with
     *    its own result, when it completes. */
    t_prep(&cbs[0], fd, buf[0], 512);
    CHECK(aio_read(&cbs[0]) == 0, "aio_read");
    while (aio_error(&cbs[0]) == EINPROGRESS) usleep(100);
    t_prep(&cbs[0], p[0], one, 1);
    CHECK(aio_read(&cbs[0]) == 0, "aio_read again");
    struct timespec short_wait = {0, 50 * 1000 * 1000};
    errno = 0;
    ssize_t r8 = aio_waitcomplete(&cb, &short_wait);
    CHECK(r8 == -1 && errno == EAGAIN && aio_error(&cbs[0]) == EINPROGRESS,
          "the reused aiocb came out before its new request completed (%zd, errno %d)", r8, errno);
    CHECK(write(p[1], "y", 1) == 1, "write");
    r8 = aio_waitcomplete(&cb, NULL);
    CHECK(r8 == 1 && cb == &cbs[0] && one[0] == 'y', "the new request: %zd", r8);
    zero = (struct timespec){0, 0};
    CHECK(aio_waitcomplete(&cb, &zero) == -1 && errno == EAGAIN, "a second completion came out");

    close(p[0]);
    close(p[1]);
    close(fd);
    t_require_uaio(21);
    printf("waitcomplete: %s reads, pipe, errors, aio_return mixed, aio_waitn, eventfd\n",
           t_on_ring("read") ? "ring" : "pool");
    return T_EXIT_PASS;
}
