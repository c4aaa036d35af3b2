/* SIGEV_SIGNAL: queued with si_code SI_ASYNCIO and si_value, after the result is visible;
 * a zero-filled aiocb (SIGEV_SIGNAL with signal 0) sends nothing. */
#include "helpers.h"

static volatile int count, bad;
static volatile void *last_value;

static void on_signal(int s, siginfo_t *si, void *c) {
    (void)s; (void)c;
    struct aiocb *cb = si->si_value.sival_ptr;
    if (si->si_code != SI_ASYNCIO || si->si_pid != getpid() || aio_error(cb) == EINPROGRESS) bad++;
    last_value = cb;
    count++;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO;
    CHECK(sigaction(SIGRTMIN + 2, &sa, NULL) == 0, "sigaction");
    int fd = t_temp_file(65536);
    char buf[64];

    enum { N = 20 };
    static struct aiocb cbs[N];
    for (int i = 0; i < N; i++) {
        t_prep(&cbs[i], fd, buf, sizeof buf);
        cbs[i].aio_sigevent.sigev_notify = SIGEV_SIGNAL;
        cbs[i].aio_sigevent.sigev_signo = SIGRTMIN + 2;
        cbs[i].aio_sigevent.sigev_value.sival_ptr = &cbs[i];
        CHECK(aio_read(&cbs[i]) == 0, "aio_read");
    }
    for (int i = 0; i < 500 && count < N; i++) t_sleep_ms(10);
    CHECK(count == N && bad == 0, "%d signals, %d bad", count, bad);

    /* Zero-filled: SIGEV_SIGNAL (0) with signal 0 means no signal. SIGRTMIN+2 is handled,
     * so a stray signal would count; signal 0 itself cannot be caught, so also check that
     * nothing at all is pending. */
    struct aiocb z;
    t_prep(&z, fd, buf, sizeof buf);
    CHECK(z.aio_sigevent.sigev_notify == SIGEV_SIGNAL, "SIGEV_SIGNAL is 0 on Linux");
    CHECK(aio_read(&z) == 0, "aio_read zero-filled");
    CHECK(t_wait(&z, 5000) == sizeof buf, "read");
    t_sleep_ms(50);
    sigset_t pending;
    sigpending(&pending);
    CHECK(count == N && sigisemptyset(&pending), "a zero-filled aiocb sent a signal");
    t_require_uaio(N + 1);
    return T_EXIT_PASS;
}
