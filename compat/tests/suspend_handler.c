/* aio_suspend in a signal handler that interrupted its thread anywhere in the library, holding
 * its lock or not: the request it waits for, which another thread completes, is seen at once.
 * Nothing the other threads must do to publish a completion may wait for the interrupted
 * thread (it cannot run until the handler returns). The main thread keeps submitting, waiting
 * and reaping requests of its own; a helper starts a pipe read, sends the main thread a
 * signal, and once the handler waits, writes the byte that completes the read. */
#include "helpers.h"
#include <sched.h>

#define TRIALS 400

static int data_pipe[2];
static struct aiocb target;
static volatile int in_handler, handler_state; /* 1 done, 2 timed out, 3 failed */
static volatile int stop, paused, pause_wanted;
static volatile unsigned long busy_reads;

static void on_signal(int s) {
    (void)s;
    int saved = errno;
    in_handler = 1;
    const struct aiocb *list[] = {&target};
    struct timespec t = {0, 300 * 1000000};
    int r = aio_suspend(list, 1, &t);
    handler_state = r == 0 && aio_error(&target) == 0 ? 1 : r == -1 && errno == EAGAIN ? 2 : 3;
    errno = saved;
}

/* The helper: the trials. */
static void *trials(void *main_thread) {
    int timed_out = 0;
    for (int i = 0; i < TRIALS; i++) {
        char byte = 0;
        /* The read starts while the main thread stays out of the library: a request still
         * queued needs the lock to start. */
        pause_wanted = 1;
        while (!paused) sched_yield();
        t_prep(&target, data_pipe[0], &byte, 1);
        CHECK(aio_read(&target) == 0, "aio_read");
        t_sleep_ms(1); /* in the kernel's poll, or a pool worker's read */
        unsigned long seen = busy_reads;
        pause_wanted = 0;
        while (busy_reads < seen + 1 + i % 3) sched_yield(); /* back in the library */
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
    CHECK(pipe(data_pipe) == 0, "pipe");
    int fd = t_temp_file(1 << 16);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART */
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t self = pthread_self(), helper;
    CHECK(pthread_create(&helper, NULL, trials, &self) == 0, "pthread_create");
    /* In and out of the library all the time: cached reads (inline or not), each waited for
     * and reaped, and a stream read cancelled. */
    static char buf[4096];
    int q[2];
    CHECK(pipe(q) == 0, "pipe");
    unsigned long n = 0;
    while (!stop) {
        if (pause_wanted) {
            paused = 1;
            while (pause_wanted) sched_yield();
            paused = 0;
        }
        struct aiocb cb;
        t_prep(&cb, fd, buf, sizeof buf);
        cb.aio_offset = (off_t)((n * 4096) % (1 << 16));
        while (aio_read(&cb) != 0) CHECK(errno == EINTR || errno == EAGAIN, "aio_read");
        /* aio_suspend first, not aio_error: handlers that interrupt aio_error's passes over
         * the ring's CQ are suspend_in_pass.c's. */
        const struct aiocb *list[] = {&cb};
        struct timespec five = {5, 0};
        while (aio_suspend(list, 1, &five) != 0) CHECK(errno == EINTR, "busy read: aio_suspend");
        CHECK(aio_error(&cb) == 0 && aio_return(&cb) == sizeof buf, "busy read");
        busy_reads = ++n;
        if (n % 8 == 0) {
            char c;
            t_prep(&cb, q[0], &c, 1);
            CHECK(aio_read(&cb) == 0, "aio_read");
            int r;
            while ((r = aio_cancel(q[0], &cb)) == -1 && errno == EINTR) {}
            CHECK(r == AIO_CANCELED, "aio_cancel: %d", r);
            CHECK(aio_return(&cb) == -1, "cancelled");
        }
    }
    void *timed_out;
    pthread_join(helper, &timed_out);
    printf("%d of %d waits in a handler timed out (%lu busy reads)\n", (int)(intptr_t)timed_out, TRIALS, n);
    CHECK(timed_out == NULL, "waits in a handler timed out");
    t_require_uaio(TRIALS);
    return T_EXIT_PASS;
}
