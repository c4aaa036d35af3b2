/* The cancel race, hammered: thousands of reads on a pipe (and a socketpair), each cancelled
 * after a varied delay, with its byte written before, around or after the cancel. Every
 * request must end exactly once (one SIGEV_THREAD notification each), as done or cancelled,
 * consistently with what aio_cancel answered; a cancelled read consumed nothing (every byte
 * written is read exactly once, by a request or by the final drain, in order); nothing hangs.
 * On the pool this is the window between a worker taking a request and blocking in read(2),
 * where a cancel signal can land on nothing (the canceller must repeat it); on the ring, the
 * window between submission and the kernel's poll. */
#include "helpers.h"

#include <sys/socket.h>

enum { ROUNDS = 3000, BATCH = 4 };

static int notes[ROUNDS * BATCH];
/* Where the test is, for the watchdog's report. */
static volatile int where_phase, where_round, where_step;

static void watchdog(int sig) {
    char line[160];
    int n = snprintf(line, sizeof line, "watchdog: stuck in phase %d round %d step %d\n", where_phase,
                     where_round, where_step);
    if (n > 0) write(2, line, (size_t)n);
    _exit(T_EXIT_FAIL);
}
static uint64_t slowest; /* the longest aio_cancel, ns */
static void on_done(union sigval v) { __atomic_add_fetch(&notes[v.sival_int], 1, __ATOMIC_SEQ_CST); }

/* A read that never blocks, on a pipe or a socket, without touching the fd's flags for long. */
static ssize_t recv_nowait(int fd, void *buf, size_t n) {
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    ssize_t r = read(fd, buf, n);
    fcntl(fd, F_SETFL, fl);
    return r;
}

static void put(int wfd, unsigned char *next_out) {
    CHECK(write(wfd, next_out, 1) == 1, "write");
    (*next_out)++;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void spin(unsigned n) {
    for (volatile unsigned i = 0; i < n; i++) {}
}

/* One run on the stream (rfd, wfd). Returns the number of requests cancelled. */
static int hammer(int rfd, int wfd, int base) {
    static struct aiocb cbs[BATCH];
    static unsigned char got[BATCH];
    unsigned char next_out = 0, next_in = 0; /* byte values: a running counter */
    int cancelled = 0, done = 0, answered_canceled = 0, drained = 0;
    unsigned seed = 12345;
    for (int round = 0; round < ROUNDS; round++) {
        int n = round % 10 == 9 ? BATCH : 1; /* now and then several at once, fd-wide cancel */
        where_round = round, where_step = 1;
        seed = seed * 1103515245u + 12345u;
        unsigned r = seed >> 8;
        for (int k = 0; k < n; k++) {
            int id = base + round * BATCH + k;
            t_prep(&cbs[k], rfd, &got[k], 1);
            cbs[k].aio_sigevent.sigev_notify = SIGEV_THREAD;
            cbs[k].aio_sigevent.sigev_notify_function = on_done;
            cbs[k].aio_sigevent.sigev_value.sival_int = id;
            CHECK(aio_read(&cbs[k]) == 0, "aio_read round %d", round);
        }
        int write_when = r % 4; /* 0: before the delay, 1: after it, 2: after the cancel, 3: never */
        where_step = 2;
        if (write_when == 0) put(wfd, &next_out);
        switch ((r >> 2) % 4) { /* the delay before the cancel */
        case 0: break;
        case 1: spin(r % 2000); break;
        case 2: sched_yield(); break;
        case 3: t_sleep_ms(0), usleep(r % 300); break;
        }
        if (write_when == 1) put(wfd, &next_out);
        where_step = 3;
        uint64_t t0 = now_ns();
        int answer = n == 1 ? aio_cancel(rfd, &cbs[0]) : aio_cancel(rfd, NULL);
        where_step = 4;
        uint64_t took = now_ns() - t0;
        if (took > slowest) slowest = took;
        /* A read blocked on a stream is always cancellable (signal, poll or ring). */
        CHECK(answer == AIO_CANCELED || answer == AIO_ALLDONE, "round %d: aio_cancel answered %d after %.3f ms",
              round, answer, took / 1e6);
        if (write_when == 2) put(wfd, &next_out);
        int round_cancelled = 0, round_done = 0;
        where_step = 5;
        for (int k = 0; k < n; k++) {
            /* A read still running (NOTCANCELED, or not cancelled) needs a byte to end. */
            for (int tries = 0; aio_error(&cbs[k]) == EINPROGRESS; tries++) {
                const struct aiocb *list[1] = {&cbs[k]};
                struct timespec ts = {0, 20 * 1000000L};
                aio_suspend(list, 1, &ts);
                if (aio_error(&cbs[k]) == EINPROGRESS && tries % 10 == 9) put(wfd, &next_out);
                CHECK(tries < 500, "round %d request %d never ended", round, k);
            }
            int e = aio_error(&cbs[k]);
            ssize_t v = aio_return(&cbs[k]);
            if (e == ECANCELED) {
                CHECK(v == -1, "cancelled read returned %zd", v);
                round_cancelled++;
            } else {
                /* One stream lane runs in order: each read that completed took the oldest byte. */
                CHECK(e == 0 && v == 1, "round %d: error %d return %zd", round, e, v);
                CHECK(got[k] == next_in, "round %d: read byte %u, want %u", round, got[k], next_in);
                next_in++;
                round_done++;
            }
        }
        /* What aio_cancel answered holds (fd-wide, a read may have completed before the call). */
        if (answer == AIO_CANCELED) {
            CHECK(n > 1 || round_done == 0, "round %d: AIO_CANCELED but the read completed", round);
            CHECK(round_cancelled > 0, "round %d: AIO_CANCELED but nothing was cancelled", round);
            answered_canceled++;
        }
        if (answer == AIO_ALLDONE) CHECK(round_cancelled == 0, "AIO_ALLDONE but %d cancelled", round_cancelled);
        cancelled += round_cancelled;
        done += round_done;
        /* The bytes cancelled reads left behind are still there, oldest first; take them now
         * (a socket's buffer fills with a few hundred one-byte writes). */
        unsigned char rest[64];
        ssize_t left;
        while ((left = recv_nowait(rfd, rest, sizeof rest)) > 0)
            for (ssize_t i = 0; i < left; i++, next_in++, drained++)
                CHECK(rest[i] == next_in, "round %d: unread byte %u, want %u", round, rest[i], next_in);
    }
    /* Every byte written was read once: by a completed request or by the drain. */
    CHECK(next_in == next_out, "bytes: %d read by requests + %d drained != written (mod 256: %u)", done, drained,
          next_out);
    printf("stream %d: %d rounds, %d cancelled, %d done, %d answered AIO_CANCELED, %d bytes left behind, "
           "slowest aio_cancel %.3f ms\n", rfd, ROUNDS, cancelled, done, answered_canceled, drained, slowest / 1e6);
    return cancelled;
}

/* The narrowest window: B waits in the lane behind A; a byte completes A, and the worker that
 * finished A takes B, delivers A's notification (a thread start) and only then blocks in
 * read(2). A cancel of B landing in between must not be lost. */
static int successors(int rfd, int wfd) {
    static struct aiocb a, b;
    static unsigned char ga, gb;
    unsigned seed = 777;
    int cancelled = 0;
    for (int round = 0; round < ROUNDS; round++) {
        seed = seed * 1103515245u + 12345u;
        t_prep(&a, rfd, &ga, 1);
        t_prep(&b, rfd, &gb, 1);
        a.aio_sigevent.sigev_notify = b.aio_sigevent.sigev_notify = SIGEV_THREAD;
        a.aio_sigevent.sigev_notify_function = b.aio_sigevent.sigev_notify_function = on_done;
        a.aio_sigevent.sigev_value.sival_int = round * BATCH;
        b.aio_sigevent.sigev_value.sival_int = round * BATCH + 1;
        where_round = round, where_step = 11;
        CHECK(aio_read(&a) == 0 && aio_read(&b) == 0, "aio_read");
        where_step = 12;
        unsigned char byte = (unsigned char)round;
        CHECK(write(wfd, &byte, 1) == 1, "write");
        spin((seed >> 8) % 30000);
        uint64_t t0 = now_ns();
        where_step = 13;
        int answer = aio_cancel(rfd, &b);
        where_step = 14;
        uint64_t took = now_ns() - t0;
        if (took > slowest) slowest = took;
        CHECK(answer == AIO_CANCELED, "round %d: aio_cancel(B) answered %d after %.3f ms", round, answer, took / 1e6);
        CHECK(t_wait(&a, 5000) == 1 && ga == byte, "A read %u", ga);
        CHECK(aio_error(&b) == ECANCELED && aio_return(&b) == -1, "B: %d", aio_error(&b));
        cancelled++;
    }
    printf("successors on %d: %d rounds, slowest aio_cancel %.3f ms\n", rfd, ROUNDS, slowest / 1e6);
    return cancelled;
}

/* Exactly one notification per request of the run just done. */
static void check_notes(int pairs) {
    for (int i = 0; i < 200 && t_uaio_in_flight() != 0; i++) t_sleep_ms(10);
    t_sleep_ms(100); /* SIGEV_THREAD notifications run on threads of their own */
    for (int round = 0; round < ROUNDS; round++) {
        int n = pairs ? 2 : round % 10 == 9 ? BATCH : 1;
        for (int k = 0; k < BATCH; k++)
            CHECK(notes[round * BATCH + k] == (k < n), "request %d/%d notified %d times", round, k,
                  notes[round * BATCH + k]);
    }
    memset(notes, 0, sizeof notes);
}

int main(void) {
    int p[2], s[2];
    CHECK(pipe(p) == 0, "pipe");
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, s) == 0, "socketpair");
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGALRM, watchdog);
    alarm(60);
    printf("reads go to the %s\n", t_on_ring("read") ? "ring" : "pool");
    where_phase = 1;
    int c = hammer(p[0], p[1], 0);
    where_phase = 2;
    check_notes(0);
    where_phase = 3;
    c += hammer(s[0], s[1], 0);
    where_phase = 4;
    check_notes(0);
    slowest = 0;
    where_phase = 5;
    c += successors(p[0], p[1]);
    where_phase = 6;
    check_notes(1);
    CHECK(c > 0, "nothing was ever cancelled: the test did not test");
    t_require_uaio(2 * ROUNDS);
    return T_EXIT_PASS;
}
