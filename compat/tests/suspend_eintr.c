/* aio_suspend returns EINTR for every signal its thread catches while it waits, also while
 * another thread's completions keep waking it: each wake-up is a stretch in user space where
 * a handler could run unseen, and the wait would go on as if no signal had come. */
#include "helpers.h"
#include <sched.h>
#include <sys/resource.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Involuntary context switches of this thread so far: a thread preempted before its wait
 * began catches a signal sent meanwhile there, before the wait, as it may. */
static long preempted(void) {
    struct rusage u;
    getrusage(RUSAGE_THREAD, &u);
    return u.ru_nivcsw;
}

static volatile sig_atomic_t caught;
static void on_signal(int s) { (void)s; caught++; }

static volatile int stop;
static int churn_pipe[2];

/* Completions that are not the waiter's: reads of a pipe, written once the read is in flight
 * (on the ring, a CQE each). */
static void *churn(void *arg) {
    (void)arg;
    char c;
    struct aiocb cb;
    while (!stop) {
        t_prep(&cb, churn_pipe[0], &c, 1);
        CHECK(aio_read(&cb) == 0, "aio_read"); /* on an empty pipe: in the kernel's poll, on the ring */
        CHECK(write(churn_pipe[1], "c", 1) == 1, "write");
        while (aio_error(&cb) == EINPROGRESS) sched_yield();
        CHECK(aio_return(&cb) == 1, "churn read");
    }
    return NULL;
}

/* Sends one signal per trial, 0.2 to 1 ms after the waiter entered aio_suspend: well inside
 * the wait, past the few microseconds before it first sleeps (a signal there is caught
 * before the wait began, with glibc as here). */
static volatile uint64_t entered_ns;
static volatile int trial, signalled_trial = -1;
static pthread_t waiter;

static void *signaller(void *arg) {
    (void)arg;
    unsigned seed = 1;
    while (!stop) {
        uint64_t since = entered_ns;
        int t = trial;
        if (since == 0 || signalled_trial == t) { sched_yield(); continue; }
        uint64_t delay = 200000u + (uint64_t)(rand_r(&seed) % 800) * 1000u;
        while (!stop && entered_ns == since && now_ns() < since + delay) sched_yield();
        if (stop || entered_ns != since) continue;
        signalled_trial = t;
        pthread_kill(waiter, SIGUSR1);
    }
    return NULL;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART */
    sigaction(SIGUSR1, &sa, NULL);

    int idle[2];
    char byte;
    CHECK(pipe(idle) == 0 && pipe(churn_pipe) == 0, "pipe");
    struct aiocb cb;
    t_prep(&cb, idle[0], &byte, 1); /* never written: only a signal or the timeout ends a wait */
    CHECK(aio_read(&cb) == 0, "aio_read");
    const struct aiocb *list[] = {&cb};

    waiter = pthread_self();
    pthread_t c, s;
    CHECK(pthread_create(&c, NULL, churn, NULL) == 0 && pthread_create(&s, NULL, signaller, NULL) == 0, "threads");
    int interrupted = 0, missed = 0, excused = 0, trials = 0;
    uint64_t end = now_ns() + 1500000000u;
    while (now_ns() < end) {
        sig_atomic_t before = caught;
        struct timespec timeout = {0, 50 * 1000000};
        long switches = preempted();
        entered_ns = now_ns();
        int r = aio_suspend(list, 1, &timeout);
        int err = errno;
        entered_ns = 0;
        int signalled = signalled_trial == trial;
        trial++;
        trials++;
        if (r == -1 && err == EINTR) {
            interrupted++;
        } else {
            CHECK(r == -1 && err == EAGAIN, "aio_suspend returned %d (errno %d)", r, err);
            /* The handler ran in this wait, and the wait went on to its timeout. */
            if (signalled && caught != before) {
                if (preempted() == switches) missed++;
                else excused++;
            }
        }
    }
    stop = 1;
    pthread_join(c, NULL);
    pthread_join(s, NULL);
    printf("%d waits: %d interrupted, %d signals caught in a wait that went on (and %d where the thread was preempted)\n",
           trials, interrupted, missed, excused);
    int signals = interrupted + missed + excused;
    /* At most 1%: a wait that does not block signals misses 40 to 75%. A sleep in
     * io_uring_enter misses 1 to 3 of about 4500 in half of 3 s runs here (README, Not done yet). */
    CHECK(missed * 100 <= signals, "%d of %d signals did not interrupt the wait that caught them", missed, signals);
    CHECK(excused * 20 <= signals, "%d of %d signals were caught by a preempted thread and did not interrupt its wait",
          excused, signals);
    CHECK(interrupted >= 100, "only %d waits were interrupted", interrupted);

    CHECK(write(idle[1], "!", 1) == 1, "write");
    CHECK(t_wait(&cb, 5000) == 1 && byte == '!', "idle read");
    t_require_uaio(2);
    return T_EXIT_PASS;
}
