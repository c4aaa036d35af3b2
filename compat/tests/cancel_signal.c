/* aio_cancel's answer holds when a signal arrives while it waits for the cancelled request to
 * end: AIO_CANCELED means aio_error already says ECANCELED. A timer signal every 20 us, with a
 * handler without SA_RESTART, while pipe reads are submitted and cancelled, half of them by a
 * thread that computes meanwhile (on the ring, the cancelled read's CQE then waits for that
 * thread to enter the kernel, and the canceller's wait for it is the one a signal cuts short). */
#include "helpers.h"

#include <sys/time.h>

static volatile sig_atomic_t ticks;
static struct aiocb *_Atomic to_submit;
static _Atomic int submitted, stop;
/* Submits what it is given, then computes in user space: its completions wait for it to enter
 * the kernel (or for a kick), as any thread's that computes. */
static void *submitter(void *arg) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    while (!stop) {
        struct aiocb *cb = to_submit;
        if (cb) {
            to_submit = NULL;
            submitted = aio_read(cb) == 0 ? 1 : -1;
        }
    }
    return NULL;
}
static void on_tick(int s) { ticks++; }

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_tick;  // no SA_RESTART: waits see EINTR
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 20}, {0, 20}};
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer");
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    char buf[8];
    int canceled = 0;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, submitter, NULL) == 0, "pthread_create");
    for (int i = 0; i < 10000; i++) {
        struct aiocb cb;
        memset(&cb, 0, sizeof cb);
        cb.aio_fildes = p[0];
        cb.aio_buf = buf;
        cb.aio_nbytes = sizeof buf;
        if (i % 2) {
            CHECK(aio_read(&cb) == 0, "aio_read");
        } else {
            submitted = 0;
            to_submit = &cb;
            while (!submitted) {}
            CHECK(submitted == 1, "aio_read on the submitter");
        }
        int r = aio_cancel(p[0], &cb);
        int e = aio_error(&cb);
        if (r == AIO_CANCELED) {
            CHECK(e == ECANCELED, "round %d: AIO_CANCELED, and aio_error says %d", i, e);
            canceled++;
        } else {
            CHECK(r == AIO_NOTCANCELED || r == AIO_ALLDONE, "round %d: aio_cancel %d", i, r);
            const struct aiocb *list[1] = {&cb};
            if (aio_error(&cb) == EINPROGRESS) {
                CHECK(write(p[1], "x", 1) == 1, "write");
                while (aio_error(&cb) == EINPROGRESS) aio_suspend(list, 1, NULL);
            }
        }
        aio_return(&cb);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    stop = 1;
    pthread_join(t, NULL);
    t_require_uaio(10000);
    printf("cancel_signal: %d of 10000 cancelled under %d timer signals\n", canceled, (int)ticks);
    return T_EXIT_PASS;
}
