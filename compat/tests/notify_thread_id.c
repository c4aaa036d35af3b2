/* SIGEV_THREAD_ID: the signal goes to the named thread, with SI_ASYNCIO and sigev_value. */
#include "helpers.h"

static volatile pid_t got_tid;
static volatile int got_value, got_code;
static volatile int stop;

static void on_signal(int s, siginfo_t *si, void *c) {
    (void)s; (void)c;
    got_tid = gettid();
    got_value = si->si_value.sival_int;
    got_code = si->si_code;
}

static pid_t target_tid;
static void *target(void *arg) {
    (void)arg;
    target_tid = gettid();
    while (!stop) t_sleep_ms(1);
    return NULL;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t t;
    pthread_create(&t, NULL, target, NULL);
    while (!target_tid) t_sleep_ms(1);

    int fd = t_temp_file(4096);
    char buf[16];
    struct aiocb cb;
    t_prep(&cb, fd, buf, sizeof buf);
    cb.aio_sigevent.sigev_notify = SIGEV_THREAD_ID;
    cb.aio_sigevent.sigev_signo = SIGUSR1;
    cb.aio_sigevent._sigev_un._tid = target_tid;
    cb.aio_sigevent.sigev_value.sival_int = 77;
    CHECK(aio_read(&cb) == 0, "aio_read");
    for (int i = 0; i < 500 && !got_tid; i++) t_sleep_ms(10);
    CHECK(got_tid == target_tid, "signal went to %d, not %d", got_tid, target_tid);
    CHECK(got_value == 77 && got_code == SI_ASYNCIO, "value %d code %d", got_value, got_code);
    stop = 1;
    pthread_join(t, NULL);

    /* Invalid: no thread id, or a bad signal. */
    cb.aio_sigevent._sigev_un._tid = 0;
    CHECK_ERRNO(aio_read(&cb), EINVAL);
    cb.aio_sigevent._sigev_un._tid = target_tid;
    cb.aio_sigevent.sigev_signo = 0;
    CHECK_ERRNO(aio_read(&cb), EINVAL);
    t_require_uaio(1);
    return T_EXIT_PASS;
}
