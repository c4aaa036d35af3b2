/* Bounded memory: past UAIO_MAX_REQUESTS submission fails with EAGAIN (and works again once
 * requests complete), and RSS stays flat across 10^6 requests. */
#include "helpers.h"

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
    t_require_uaio(1000000);
    return T_EXIT_PASS;
}
