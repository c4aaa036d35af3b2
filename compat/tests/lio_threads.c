/* lio_listio from several threads at once never deadlocks: two threads loop lio_listio(LIO_WAIT)
 * of four pipe reads (data already there) and two cached file reads (done inline), while a
 * third sleeps in aio_suspend on a read that never completes (on the ring it waits in the
 * kernel, and a completion for another thread rings its doorbell). A list keeps the ring's SQ
 * lock from its first entry to its one io_uring_enter; an entry that then waited for the
 * engine lock, held by a thread waiting for that SQ lock, hung both (2 threads: within 300
 * lists). No progress for 5 s fails the test. */
#include "helpers.h"

enum { LISTS = 4000, PIPES = 4, FILES = 2, N = PIPES + FILES };

static int fd;
static long done;
static _Atomic int stop;

static void *lister(void *arg) {
    int p[PIPES][2];
    static __thread struct aiocb cbs[N];
    struct aiocb *list[N];
    char buf[N][512];
    for (int i = 0; i < PIPES; i++) CHECK(pipe(p[i]) == 0, "pipe");
    for (int it = 0; it < LISTS; it++) {
        for (int i = 0; i < N; i++) {
            memset(&cbs[i], 0, sizeof cbs[i]);
            if (i < PIPES) {
                CHECK(write(p[i][1], "abcd", 4) == 4, "write");
                cbs[i].aio_fildes = p[i][0], cbs[i].aio_nbytes = 4;
            } else {
                cbs[i].aio_fildes = fd, cbs[i].aio_nbytes = 512, cbs[i].aio_offset = 512 * i;
            }
            cbs[i].aio_buf = buf[i];
            cbs[i].aio_lio_opcode = LIO_READ;
            list[i] = &cbs[i];
        }
        CHECK(lio_listio(LIO_WAIT, list, N, NULL) == 0, "lio_listio");
        for (int i = 0; i < N; i++)
            CHECK(aio_return(&cbs[i]) == (i < PIPES ? 4 : 512), "entry %d: %s", i, strerror(aio_error(&cbs[i])));
        __atomic_add_fetch(&done, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void *sleeper(void *arg) {
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    char c;
    struct aiocb cb;
    memset(&cb, 0, sizeof cb);
    cb.aio_fildes = p[0], cb.aio_buf = &c, cb.aio_nbytes = 1;
    CHECK(aio_read(&cb) == 0, "aio_read");
    const struct aiocb *list[1] = {&cb};
    while (!stop) {
        struct timespec ts = {0, 2 * 1000 * 1000};
        aio_suspend(list, 1, &ts);
    }
    CHECK(aio_cancel(p[0], &cb) == AIO_CANCELED, "aio_cancel");
    return NULL;
}

int main(void) {
    fd = t_temp_file(4096);
    char warm[4096];
    CHECK(pread(fd, warm, sizeof warm, 0) == sizeof warm, "pread");
    pthread_t t[3];
    CHECK(pthread_create(&t[2], NULL, sleeper, NULL) == 0, "pthread_create");
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, lister, NULL) == 0, "pthread_create");
    long last = -1;
    for (int quiet = 0;;) {
        usleep(100 * 1000);
        long d = __atomic_load_n(&done, __ATOMIC_RELAXED);
        if (d == 2 * LISTS) break;
        quiet = d == last ? quiet + 1 : 0;
        last = d;
        if (quiet == 50) {
            printf("lio_threads: no progress for 5 s at %ld of %d lists: deadlock\n", d, 2 * LISTS);
            fflush(stdout);
            _exit(T_EXIT_FAIL);
        }
    }
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    stop = 1;
    pthread_join(t[2], NULL);
    t_require_uaio(2 * LISTS * N);
    printf("lio_threads: %d lists of %d from 2 threads, with a third asleep in aio_suspend\n", 2 * LISTS, N);
    return T_EXIT_PASS;
}
