/* aio_suspend: returns as soon as one listed request is done (NULL entries ignored),
 * -1/EAGAIN on timeout, -1/EINTR when a signal interrupts it, EINVAL for a bad timeout; and
 * aio_error, aio_return and aio_suspend are async-signal-safe (called from a handler). */
#include "helpers.h"

static volatile int handled;
static struct aiocb handler_cb;
static volatile ssize_t handler_result = -2;

static void on_alarm(int s) { (void)s; handled = 1; }

static void on_done(int s, siginfo_t *si, void *ctx) {
    (void)s; (void)ctx;
    struct aiocb *cb = si->si_value.sival_ptr;
    const struct aiocb *list[] = {cb};
    if (aio_suspend(list, 1, NULL) == 0 && aio_error(cb) == 0) handler_result = aio_return(cb);
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int main(void) {
    int p[2], q[2];
    CHECK(pipe(p) == 0 && pipe(q) == 0, "pipe");
    char a[4], b[4];
    struct aiocb ca, cb;
    memset(&ca, 0, sizeof ca);
    memset(&cb, 0, sizeof cb);
    ca.aio_fildes = p[0]; ca.aio_buf = a; ca.aio_nbytes = sizeof a;
    cb.aio_fildes = q[0]; cb.aio_buf = b; cb.aio_nbytes = sizeof b;
    CHECK(aio_read(&ca) == 0 && aio_read(&cb) == 0, "aio_read");

    /* Timeout: neither is done. */
    const struct aiocb *list[] = {NULL, &ca, NULL, &cb};
    struct timespec ts = {0, 100 * 1000000};
    uint64_t t0 = now_ms();
    CHECK_ERRNO(aio_suspend(list, 4, &ts), EAGAIN);
    CHECK(now_ms() - t0 >= 90, "returned after %llu ms", (unsigned long long)(now_ms() - t0));
    struct timespec zero = {0, 0};
    CHECK_ERRNO(aio_suspend(list, 4, &zero), EAGAIN);
    struct timespec bad = {0, 1000000000};
    CHECK_ERRNO(aio_suspend(list, 4, &bad), EINVAL);
    bad.tv_sec = -1; bad.tv_nsec = 0;
    CHECK_ERRNO(aio_suspend(list, 4, &bad), EINVAL);

    /* A signal interrupts it. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; /* no SA_RESTART */
    sigaction(SIGALRM, &sa, NULL);
    alarm(1);
    t0 = now_ms();
    CHECK_ERRNO(aio_suspend(list, 4, NULL), EINTR);
    CHECK(handled && now_ms() - t0 < 5000, "EINTR after %llu ms", (unsigned long long)(now_ms() - t0));

    /* One completes: it returns at once, the other is still in progress. */
    CHECK(write(q[1], "zz", 2) == 2, "write");
    t0 = now_ms();
    CHECK(aio_suspend(list, 4, NULL) == 0, "aio_suspend");
    CHECK(aio_error(&cb) == 0 && aio_error(&ca) == EINPROGRESS, "states %d %d", aio_error(&cb), aio_error(&ca));
    CHECK(aio_return(&cb) == 2, "result");
    /* A done entry makes it return 0 immediately, even with a zero timeout. */
    const struct aiocb *done_list[] = {&cb};
    CHECK(aio_suspend(done_list, 1, &zero) == 0, "done entry");

    /* From a signal handler: SIGEV_SIGNAL whose handler waits, checks and reaps. */
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_done;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGRTMIN + 3, &sa, NULL);
    t_prep(&handler_cb, p[0], a, 1);
    handler_cb.aio_sigevent.sigev_notify = SIGEV_SIGNAL;
    handler_cb.aio_sigevent.sigev_signo = SIGRTMIN + 3;
    handler_cb.aio_sigevent.sigev_value.sival_ptr = &handler_cb;
    CHECK(write(p[1], "123", 3) == 3, "write"); /* 2 bytes for ca... */
    CHECK(t_wait(&ca, 5000) == 3, "first read");
    CHECK(aio_read(&handler_cb) == 0, "aio_read");
    CHECK(write(p[1], "x", 1) == 1, "write");
    for (int i = 0; i < 500 && handler_result == -2; i++) t_sleep_ms(10);
    CHECK(handler_result == 1, "handler reaped %zd", handler_result);
    t_require_uaio(3);
    return T_EXIT_PASS;
}
