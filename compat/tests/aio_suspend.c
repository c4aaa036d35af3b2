/* aio_suspend: returns as soon as one listed request is done (NULL entries ignored),
 * -1/EAGAIN on timeout, -1/EINTR when a signal interrupts it, EINVAL for a bad timeout; and
 * aio_error, aio_return and aio_suspend are async-signal-safe (called from a handler), even in a
 * handler that interrupted the same thread's aio_suspend and waits for another request. */
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

/* The nested case: a handler that interrupted this thread's aio_suspend waits for `nested_cb`
 * (blocking in aio_suspend, or polling aio_error), which a helper thread completes. */
static struct aiocb nested_cb;
static volatile int nested_poll, nested_state = -2, nested_waiting;
static int nested_pipe[2];

static void on_nested(int s) {
    (void)s;
    const struct aiocb *list[] = {&nested_cb};
    if (nested_poll) {
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do {
            nested_state = aio_error(&nested_cb);
            clock_gettime(CLOCK_MONOTONIC, &t);
        } while (nested_state == EINPROGRESS && t.tv_sec - t0.tv_sec < 5);
    } else {
        struct timespec five = {5, 0};
        nested_state = aio_suspend(list, 1, &five) == 0 ? aio_error(&nested_cb) : -errno;
    }
}

static void *nested_helper(void *main_thread) {
    while (!nested_waiting) t_sleep_ms(1);
    t_sleep_ms(100); /* long enough to be asleep in aio_suspend */
    pthread_kill(*(pthread_t *)main_thread, SIGUSR2);
    t_sleep_ms(100);
    if (write(nested_pipe[1], "n", 1) != 1) abort();
    return NULL;
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

    /* A handler interrupts this thread's own wait and waits for another request, blocking
     * and then polling. (On the ring, the interrupted wait holds the CQ: the handler must
     * reap in its place, or nobody does.) */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_nested; /* no SA_RESTART */
    sigaction(SIGUSR2, &sa, NULL);
    CHECK(pipe(nested_pipe) == 0, "pipe");
    struct aiocb outer_cb;
    char o;
    t_prep(&outer_cb, p[0], &o, 1);
    CHECK(aio_read(&outer_cb) == 0, "aio_read");
    for (nested_poll = 0; nested_poll < 2; nested_poll++) {
        char n;
        nested_state = -2;
        nested_waiting = 0;
        t_prep(&nested_cb, nested_pipe[0], &n, 1);
        CHECK(aio_read(&nested_cb) == 0, "aio_read");
        pthread_t self = pthread_self(), helper;
        CHECK(pthread_create(&helper, NULL, nested_helper, &self) == 0, "pthread_create");
        const struct aiocb *outer[] = {&outer_cb};
        t0 = now_ms();
        nested_waiting = 1;
        CHECK_ERRNO(aio_suspend(outer, 1, NULL), EINTR);
        pthread_join(helper, NULL);
        CHECK(nested_state == 0, "%s in the handler: %d after %llu ms", nested_poll ? "aio_error" : "aio_suspend",
              nested_state, (unsigned long long)(now_ms() - t0));
        CHECK(aio_return(&nested_cb) == 1 && n == 'n', "nested result");
        CHECK(aio_error(&outer_cb) == EINPROGRESS, "the outer request is still in progress");
    }
    CHECK(write(p[1], "!", 1) == 1, "write");
    CHECK(t_wait(&outer_cb, 5000) == 1 && o == '!', "outer read");
    t_require_uaio(6);
    return T_EXIT_PASS;
}
