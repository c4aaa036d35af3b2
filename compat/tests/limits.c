/* Bounded memory: past UAIO_MAX_REQUESTS submission fails with EAGAIN (and works again once
 * requests complete), and RSS stays flat across 10^6 requests. */
#include "helpers.h"

static int shared_fd;
static long refused;
static pthread_mutex_t refused_lock = PTHREAD_MUTEX_INITIALIZER;

static void *two_in_flight(void *arg) {
    long id = (long)arg;
    static __thread char bufs[2][512];
    struct aiocb cb[2];
    long n = 0, mine = 0;
    for (int k = 0; k < 2; k++) {
        t_prep(&cb[k], shared_fd, bufs[k], 512);
        while (aio_read(&cb[k]) != 0) mine++;
    }
    for (int i = 0; i < 50000; i++) {
        struct aiocb *c = &cb[i % 2];
        CHECK(t_wait(c, 10000) == 512, "thread %ld request %d", id, i);
        c->aio_offset = ((n++ * 7 + id) * 4096) % (1 << 16);
        while (aio_read(c) != 0) {
            CHECK(errno == EAGAIN, "aio_read");
            mine++;
        }
    }
    for (int k = 0; k < 2; k++) CHECK(t_wait(&cb[k], 10000) == 512, "last");
    pthread_mutex_lock(&refused_lock);
    refused += mine;
    pthread_mutex_unlock(&refused_lock);
    return NULL;
}

int main(void) {
    setenv("UAIO_MAX_REQUESTS", "8", 1);
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    char buf[8];
    struct aiocb cbs[9];
    for (int i = 0; i < 9; i++) {
        t_prep(&cbs[i], p[0], buf, 1);
    }
    for (int i = 0; i < 8; i++) CHECK(aio_read(&cbs[i]) == 0, "aio_read %d", i);
    CHECK_ERRNO(aio_read(&cbs[8]), EAGAIN);
    CHECK(t_uaio_in_flight() == 8, "in flight: %d", t_uaio_in_flight());
    t_sleep_ms(50); /* let the first one start */
    /* 7 waiting, 1 blocked in the ring's poll or a worker's read: all cancelled. */
    CHECK(aio_cancel(p[0], NULL) == AIO_CANCELED, "cancel");
    CHECK(t_uaio_in_flight() == 0, "in flight after cancel: %d", t_uaio_in_flight());
    CHECK(aio_read(&cbs[8]) == 0, "room again");
    CHECK(write(p[1], "y", 1) == 1, "write");
    CHECK(t_wait(&cbs[8], 5000) == 1, "read");

    /* 10^6 requests, 8 in flight at a time. */
    int fd = t_temp_file(1 << 16);
    static char bufs[8][512];
    for (int i = 0; i < 8; i++) {
        t_prep(&cbs[i], fd, bufs[i], 512);
    }
    long before = 0;
    for (long n = 0; n < 1000000; n++) {
        struct aiocb *cb = &cbs[n % 8];
        if (n >= 8) CHECK(t_wait(cb, 10000) == 512, "request %ld", n);
        cb->aio_offset = (n * 4096) % (1 << 16);
        CHECK(aio_read(cb) == 0, "aio_read %ld", n);
        if (n == 20000) before = t_status("VmRSS");
    }
    for (int i = 0; i < 8; i++) CHECK(t_wait(&cbs[i], 10000) == 512, "last");
    long after = t_status("VmRSS");
    printf("RSS after 2*10^4 requests: %ld KiB; after 10^6: %ld KiB\n", before, after);
    CHECK(after - before < 1024, "RSS grew by %ld KiB", after - before);

    /* 4 threads with 2 each: 8 in flight at most (a request is resubmitted once reaped), so
     * no submission may fail. */
    shared_fd = fd;
    pthread_t t[4];
    for (long i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, two_in_flight, (void *)i) == 0, "pthread_create");
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    printf("4 threads, 2 requests each: %ld submissions refused\n", refused);
    CHECK(refused == 0, "EAGAIN with fewer than UAIO_MAX_REQUESTS in flight");
    t_require_uaio(1000000);
    return T_EXIT_PASS;
}
