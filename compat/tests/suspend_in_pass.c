/* aio_suspend in a signal handler that interrupted its thread's aio_error while that call
 * reaps a batch of the ring's completions: the request the handler waits for, which another
 * thread completes, is seen at once. The interrupted call holds the completion queue until it
 * returns, and it cannot return before the handler does: nothing may wait for it. The main
 * thread keeps 16 pipe reads in flight, completes them all and polls aio_error, so that most
 * of its time in the library is such a pass; a helper signals it at random moments. */
#include "helpers.h"
#include <sched.h>

#define TRIALS 2000
#define N 16

static int data_pipe[2];
static struct aiocb target;
static volatile int in_handler, handler_state; /* 1 done, 2 timed out, 3 failed */
static volatile int stop;

static void on_signal(int s) {
    (void)s;
    int saved = errno;
    in_handler = 1;
    const struct aiocb *list[] = {&target};
    struct timespec t = {0, 200 * 1000000};
    int r = aio_suspend(list, 1, &t);
    handler_state = r == 0 && aio_error(&target) == 0 ? 1 : r == -1 && errno == EAGAIN ? 2 : 3;
    errno = saved;
}

static void *trials(void *main_thread) {
    int timed_out = 0;
    unsigned seed = 7;
    for (int i = 0; i < TRIALS; i++) {
        char byte = 0;
        t_prep(&target, data_pipe[0], &byte, 1);
        CHECK(aio_read(&target) == 0, "aio_read");
        /* In the kernel's poll before the signal. */
        t_sleep_ms(1);
        for (volatile unsigned k = rand_r(&seed) % 20000; k > 0; k--) {} /* a random moment */
        in_handler = 0;
        handler_state = 0;
        pthread_kill(*(pthread_t *)main_thread, SIGUSR1);
        while (!in_handler) sched_yield();
        CHECK(write(data_pipe[1], "x", 1) == 1, "write");
        while (handler_state == 0) sched_yield();
        CHECK(handler_state != 3, "trial %d: aio_suspend in the handler failed", i);
        if (handler_state == 2) timed_out++;
        CHECK(t_wait(&target, 5000) == 1 && byte == 'x', "trial %d: the read", i);
    }
    stop = 1;
    return (void *)(intptr_t)timed_out;
}

int main(void) {
    if (!t_on_ring("read")) {
        /* The pool has no completion queue to hold; its workers: suspend_handler.c. */
        printf("skip: no ring here, so no completion queue for a pass to hold\n");
        return T_EXIT_SKIP;
    }
    CHECK(pipe(data_pipe) == 0, "pipe");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART */
    sigaction(SIGUSR1, &sa, NULL);
    int p[N][2];
    for (int i = 0; i < N; i++) CHECK(pipe(p[i]) == 0, "pipe");
    pthread_t self = pthread_self(), helper;
    CHECK(pthread_create(&helper, NULL, trials, &self) == 0, "pthread_create");
    static char bytes[N];
    struct aiocb cb[N];
    unsigned long rounds = 0;
    while (!stop) {
        for (int i = 0; i < N; i++) {
            t_prep(&cb[i], p[i][0], &bytes[i], 1);
            while (aio_read(&cb[i]) != 0) CHECK(errno == EINTR || errno == EAGAIN, "aio_read");
        }
        for (int i = 0; i < N; i++) CHECK(write(p[i][1], "b", 1) == 1, "write"); /* their CQEs come in */
        for (int i = 0; i < N; i++) {
            while (aio_error(&cb[i]) == EINPROGRESS) {} /* the first call reaps them all */
            CHECK(aio_return(&cb[i]) == 1, "busy read %d", i);
        }
        rounds++;
    }
    void *timed_out;
    pthread_join(helper, &timed_out);
    printf("%d of %d waits in a handler timed out (%lu rounds of %d reads)\n", (int)(intptr_t)timed_out, TRIALS,
           rounds, N);
    CHECK(timed_out == NULL, "waits in a handler timed out");
    t_require_uaio(TRIALS);
    return T_EXIT_PASS;
}
