/* The application takes the library's cancel signal after the pool began to use it: set to
 * SIG_IGN, then given a handler with SA_RESTART. A worker's blocked stream read would then
 * never see EINTR, and every cancel of one would answer AIO_NOTCANCELED. The library must
 * notice and reach its workers another way: each blocked pipe read is still cancelled. The
 * pool serves streams only without the ring (its own mode here, or the seccomp launcher). */
#include "helpers.h"

static volatile int caught;
static void on_signal(int s) { (void)s; caught++; }

static int cancel_blocked_read(int fd, int writer, const char *what) {
    char c;
    struct aiocb cb;
    t_prep(&cb, fd, &c, 1);
    CHECK(aio_read(&cb) == 0, "aio_read");
    t_sleep_ms(20); /* blocked in a worker's read */
    int r = aio_cancel(fd, &cb);
    printf("%s: aio_cancel says %s\n", what, r == AIO_CANCELED ? "AIO_CANCELED" : r == AIO_NOTCANCELED ? "AIO_NOTCANCELED" : "?");
    if (r == AIO_NOTCANCELED) {
        CHECK(write(writer, "x", 1) == 1, "write"); /* let it end */
        t_wait(&cb, 5000);
        return 0;
    }
    CHECK(r == AIO_CANCELED && aio_error(&cb) == ECANCELED && aio_return(&cb) == -1, "%s: cancelled", what);
    return 1;
}

int main(void) {
    if (getenv("UAIO_CANCEL_SIGNAL")) {
        printf("skip: UAIO_CANCEL_SIGNAL is set: this test takes the default, SIGRTMAX-2\n");
        return T_EXIT_SKIP;
    }
    if (!getenv("UAIO_BACKEND")) setenv("UAIO_BACKEND", "pool", 1); /* before the first call */
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    if (t_on_ring("read")) {
        printf("skip: stream reads go to the ring here (UAIO_BACKEND=%s)\n", getenv("UAIO_BACKEND"));
        return T_EXIT_SKIP;
    }
    int sig = SIGRTMAX - 2;
    int ok = cancel_blocked_read(p[0], p[1], "the library's signal");
    CHECK(ok, "the first cancel, before the application took the signal");
    signal(sig, SIG_IGN);
    ok += cancel_blocked_read(p[0], p[1], "the signal ignored");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(sig, &sa, NULL);
    ok += cancel_blocked_read(p[0], p[1], "an SA_RESTART handler");
    CHECK(ok == 3, "%d of 2 cancels after the application took the signal failed", 3 - ok);
    t_require_uaio(3);
    return T_EXIT_PASS;
}
