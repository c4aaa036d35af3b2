/* aio_reqprio in the worker pool's queue (ring requests never wait in a user-space queue: the
 * kernel starts them at once, in submission order). Among queued requests, a lower aio_reqprio runs first (glibc's meaning). One
 * bounded worker is kept busy by a large write and a low-priority write waits in the queue,
 * so the reads queue too (an inline read never overtakes queued work); completion order is
 * read from SIGEV_SIGNAL notifications, which are queued in order for one signal number. */
#include "helpers.h"

enum { N = 24 };
static volatile int order[N + 1], done;

static void on_signal(int s, siginfo_t *si, void *c) {
    (void)s; (void)c;
    order[done++] = si->si_value.sival_int;
}

int main(void) {
    setenv("UAIO_MAX_BOUNDED_WORKERS", "1", 1);
    setenv("UAIO_BACKEND", "pool", 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGRTMIN + 4, &sa, NULL);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGRTMIN + 4);

    int fd = t_temp_file(1 << 16);
    int big = t_temp_file(0);
    size_t bigsz = 256 << 20;
    char *bigbuf = malloc(bigsz);
    memset(bigbuf, 'b', bigsz);
    struct aiocb blocker;
    t_prep(&blocker, big, bigbuf, bigsz);
    static char bufs[N][64];
    static struct aiocb cbs[N];
    pthread_sigmask(SIG_BLOCK, &block, &old); /* collect the signals after all are queued */
    CHECK(aio_write(&blocker) == 0, "blocker");
    t_sleep_ms(5);
    struct aiocb plug = blocker;
    plug.aio_fildes = t_temp_file(0);
    plug.aio_nbytes = 4096;
    plug.aio_reqprio = 20;
    plug.aio_sigevent.sigev_notify = SIGEV_SIGNAL;
    plug.aio_sigevent.sigev_signo = SIGRTMIN + 4;
    plug.aio_sigevent.sigev_value.sival_int = N;
    CHECK(aio_write(&plug) == 0, "plug");
    for (int i = 0; i < N; i++) {
        t_prep(&cbs[i], fd, bufs[i], 64);
        cbs[i].aio_reqprio = i % 2 ? 10 : 0;
        cbs[i].aio_sigevent.sigev_notify = SIGEV_SIGNAL;
        cbs[i].aio_sigevent.sigev_signo = SIGRTMIN + 4;
        cbs[i].aio_sigevent.sigev_value.sival_int = i;
        CHECK(aio_read(&cbs[i]) == 0, "aio_read %d", i);
    }
    int queued_behind = aio_error(&blocker) == EINPROGRESS;
    CHECK(t_wait(&blocker, 60000) == (ssize_t)bigsz, "blocker");
    for (int i = 0; i < N; i++) CHECK(t_wait(&cbs[i], 10000) == 64, "read %d", i);
    CHECK(t_wait(&plug, 10000) == 4096, "plug");
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    for (int i = 0; i < 500 && done < N + 1; i++) t_sleep_ms(10);
    CHECK(done == N + 1, "%d notifications", done);
    CHECK(order[N] == N, "the aio_reqprio 20 write ran before reads of priority 0 and 10");
    if (!queued_behind) {
        printf("the blocker finished before the reads were queued: order not observable\n");
        return T_EXIT_SKIP;
    }
    /* Every priority-0 request completed before every priority-10 one. */
    int seen_low = 0;
    for (int i = 0; i < N; i++) {
        if (order[i] % 2) seen_low = 1;
        else CHECK(!seen_low, "priority 0 request %d ran after a priority 10 one (position %d)", order[i], i);
    }
    t_require_uaio(N + 2);
    return T_EXIT_PASS;
}
