/* Submission never holds the caller for long: lio_listio(LIO_NOWAIT) of ten 32 MiB reads of a
 * cached file returns at once (glibc: about 0.15 ms), and aio_read of one such read too; the
 * reads then run, in parallel, off the caller's thread; so do ten vectored reads (LIO_READV) of
 * four 8 MiB buffers each. A 4 KiB cached read still completes inline (that is the fast path,
 * and it stays). */
#include "helpers.h"

#include <sys/uio.h>
#include <uaio.h>

enum { N = 10, BIG = 32 << 20 };

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(void) {
    int fd = t_temp_file(BIG);
    static struct aiocb cbs[N];
    struct aiocb *list[N];
    char *bufs[N];
    for (int i = 0; i < N; i++) {
        bufs[i] = malloc(BIG);
        CHECK(bufs[i] != NULL, "malloc");
        memset(bufs[i], 0, BIG);  // faulted in: the copy, not page faults, is what is timed
    }
    /* Cached: read the file once. */
    CHECK(pread(fd, bufs[0], BIG, 0) == BIG, "pread");
    double worst = 0;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            t_prep(&cbs[i], fd, bufs[i], BIG);
            cbs[i].aio_lio_opcode = LIO_READ;
            list[i] = &cbs[i];
        }
        double t0 = now_ms();
        CHECK(lio_listio(LIO_NOWAIT, list, N, NULL) == 0, "lio_listio");
        double took = now_ms() - t0;
        if (round == 0 || took < worst) worst = took;  // the best of three rounds: the machine is shared
        for (int i = 0; i < N; i++) CHECK(t_wait(&cbs[i], 20000) == BIG, "read %d", i);
        CHECK(bufs[N - 1][BIG - 1] == (char)t_pattern(BIG - 1), "data");
    }
    printf("lio_listio(LIO_NOWAIT) of %d x %d MiB cached reads: %.3f ms in the call\n", N, BIG >> 20, worst);
    CHECK(worst < 20, "lio_listio held the caller %.1f ms", worst);
    static struct iovec iovs[N][4];
    worst = 0;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            for (int k = 0; k < 4; k++) iovs[i][k] = (struct iovec){bufs[i] + k * (BIG / 4), BIG / 4};
            t_prep(&cbs[i], fd, iovs[i], 4);
            cbs[i].aio_lio_opcode = LIO_READV;
            list[i] = &cbs[i];
        }
        double t0 = now_ms();
        CHECK(lio_listio(LIO_NOWAIT, list, N, NULL) == 0, "lio_listio of readv");
        double took = now_ms() - t0;
        if (round == 0 || took < worst) worst = took;
        for (int i = 0; i < N; i++) CHECK(t_wait(&cbs[i], 20000) == BIG, "readv %d", i);
    }
    printf("lio_listio(LIO_NOWAIT) of %d readv of 4 x %d MiB cached: %.3f ms in the call\n", N, BIG >> 22, worst);
    CHECK(worst < 20, "lio_listio of readv held the caller %.1f ms", worst);
    double best = 1e9;
    for (int round = 0; round < 3; round++) {
        t_prep(&cbs[0], fd, bufs[0], BIG);
        double t0 = now_ms();
        CHECK(aio_read(&cbs[0]) == 0, "aio_read");
        double took = now_ms() - t0;
        if (took < best) best = took;
        CHECK(t_wait(&cbs[0], 20000) == BIG, "big read");
    }
    printf("aio_read of %d MiB cached: %.3f ms in the call\n", BIG >> 20, best);
    CHECK(best < 5, "aio_read held the caller %.1f ms", best);
    /* The small read still completes inside aio_read where reads are tried inline. */
    const char *inl = getenv("UAIO_TRY_INLINE");
    if (!(inl && strcmp(inl, "0") == 0)) {
        t_prep(&cbs[1], fd, bufs[1], 4096);
        CHECK(aio_read(&cbs[1]) == 0, "small aio_read");
        CHECK(aio_error(&cbs[1]) == 0 && aio_return(&cbs[1]) == 4096, "a 4 KiB cached read completed inline");
    }
    t_require_uaio(6 * N + 3);
    return T_EXIT_PASS;
}
