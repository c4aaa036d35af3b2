/* aio_cancel answers what happened to the request: AIO_CANCELED only when it ends ECANCELED
 * (with nothing read: the byte written afterwards is still in the pipe), AIO_NOTCANCELED when
 * it runs to its end, never AIO_ALLDONE for one that was in progress. Two races: with the hand-
 * over of a read whose submitting thread exits at that moment (on the ring that exit cancels
 * the read itself; 23 of 3000 answered AIO_ALLDONE), by aiocb and for the whole fd; and large
 * reads of an uncached file, which the ring runs in io-wq, where a cancel is reported done
 * though the read carries on to its end (8 of 8 answered AIO_CANCELED with a full result). */
#include "helpers.h"

static struct aiocb cb;
static char buf[8];
static int p[2];
static _Atomic int go;
static int delay_ns, fdwide, answer, err_after;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}
/* Waits for `c` without taking its result (aio_error still answers). */
static void wait_for(struct aiocb *c) {
    const struct aiocb *list[1] = {c};
    uint64_t end = now_ns() + 20000000000ull;
    while (aio_error(c) == EINPROGRESS) {
        CHECK(now_ns() < end, "still in progress after 20 s");
        struct timespec ts = {0, 100 * 1000 * 1000};
        aio_suspend(list, 1, &ts);
    }
}

static void *submitter(void *a) {
    CHECK(aio_read(&cb) == 0, "aio_read");
    go = 1;
    return NULL;
}
static void *canceller(void *a) {
    while (!go) {}
    for (uint64_t end = now_ns() + (uint64_t)delay_ns; now_ns() < end;) {}
    answer = aio_cancel(p[0], fdwide ? NULL : &cb);
    err_after = aio_error(&cb);
    return NULL;
}

static void exit_race(int rounds) {
    unsigned seed = 1;
    for (int i = 0; i < rounds; i++) {
        CHECK(pipe(p) == 0, "pipe");
        memset(&cb, 0, sizeof cb);
        cb.aio_fildes = p[0], cb.aio_buf = buf, cb.aio_nbytes = 1;
        go = 0;
        delay_ns = (int)(rand_r(&seed) % 300000);
        pthread_t s, c;
        CHECK(pthread_create(&c, NULL, canceller, NULL) == 0 && pthread_create(&s, NULL, submitter, NULL) == 0, "threads");
        pthread_join(s, NULL);
        pthread_join(c, NULL);
        CHECK(write(p[1], "z", 1) == 1, "write");
        wait_for(&cb);
        usleep(1000);  // a read re-issued after all would have taken the byte by now
        int e = aio_error(&cb);
        aio_return(&cb);
        char left;
        CHECK(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0, "O_NONBLOCK");
        ssize_t k = read(p[0], &left, 1);
        if (answer == AIO_CANCELED)
            CHECK(err_after == ECANCELED && e == ECANCELED && k == 1, "round %d (%s): AIO_CANCELED, aio_error %d then %d, byte %s",
                  i, fdwide ? "fd" : "aiocb", err_after, e, k == 1 ? "left" : "taken");
        else
            CHECK(answer == AIO_NOTCANCELED && e == 0 && k == -1, "round %d (%s): aio_cancel %d, aio_error %d, byte %s", i,
                  fdwide ? "fd" : "aiocb", answer, e, k == 1 ? "left" : "taken");
        close(p[0]);
        close(p[1]);
    }
}

static void running_file_reads(void) {
    enum { BIG = 32 << 20 };
    int fd = t_temp_file(BIG);
    char *b = malloc(BIG);
    CHECK(b != NULL, "malloc");
    for (int i = 0; i < 8; i++) {
        CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0, "fadvise");
        struct aiocb f;
        t_prep(&f, fd, b, BIG);
        CHECK(aio_read(&f) == 0, "aio_read");
        int r = aio_cancel(fd, &f);
        wait_for(&f);
        int e = aio_error(&f);
        ssize_t n = aio_return(&f);
        if (r == AIO_CANCELED) CHECK(e == ECANCELED, "round %d: AIO_CANCELED, then aio_error %d and %zd bytes", i, e, n);
        else if (r == AIO_NOTCANCELED) CHECK(e == 0 && n == BIG, "round %d: AIO_NOTCANCELED, then %d, %zd", i, e, n);
        else CHECK(r == AIO_ALLDONE && e == 0 && n == BIG, "round %d: aio_cancel %d, then %d, %zd", i, r, e, n);
    }
    free(b);
    close(fd);
}

int main(void) {
    exit_race(1000);
    fdwide = 1;
    exit_race(1000);
    running_file_reads();
    t_require_uaio(2008);
    printf("cancel_truth: aio_cancel's answers matched the requests' ends\n");
    return T_EXIT_PASS;
}
