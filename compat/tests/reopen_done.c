/* Once a request is done (aio_error 0, aio_return), its fd is the program's to close, and the
 * number may come back for another file (open, or dup2): a write there goes to the new file, at its
 * aio_offset, with the new open's flags. Here the old fd was O_APPEND (a write there ignores
 * aio_offset) and the new one is not; two other threads keep the engine's lock busy, so that
 * results are often out before their bookkeeping is done. */
#include "helpers.h"

#define ROUNDS 4000

static volatile int stop;
static int busy_fd;

static void *busy(void *arg) {
    (void)arg;
    static __thread char b[512];
    struct aiocb cb;
    while (!stop) {
        t_prep(&cb, busy_fd, b, sizeof b);
        if (aio_read(&cb) == 0) t_wait(&cb, 5000);
    }
    return NULL;
}

int main(void) {
    busy_fd = t_temp_file(1 << 16);
    char p1[] = "/tmp/uaio-reopen-XXXXXX", p2[] = "/tmp/uaio-reopen-XXXXXX";
    int f1 = mkstemp(p1), f2 = mkstemp(p2);
    CHECK(f1 >= 0 && f2 >= 0, "mkstemp");
    close(f1);
    close(f2);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, busy, NULL) == 0, "pthread_create");
    static char buf[512];
    int misplaced = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int fd = open(p1, O_WRONLY | O_APPEND | O_TRUNC);
        CHECK(fd >= 0, "open");
        struct aiocb cb;
        t_prep(&cb, fd, buf, sizeof buf);
        CHECK(aio_write(&cb) == 0, "aio_write (O_APPEND)");
        while (aio_error(&cb) == EINPROGRESS) {}
        CHECK(aio_return(&cb) == sizeof buf, "the O_APPEND write");
        close(fd);
        int fd2 = open(p2, O_RDWR | O_TRUNC);
        CHECK(fd2 >= 0, "open");
        if (fd2 != fd) { /* (a thread of the library took the lowest number meanwhile) */
            CHECK(dup2(fd2, fd) == fd, "dup2");
            close(fd2);
            fd2 = fd;
        }
        memset(buf, 'A' + i % 26, sizeof buf);
        t_prep(&cb, fd2, buf, sizeof buf);
        cb.aio_offset = 4096;
        CHECK(aio_write(&cb) == 0, "aio_write");
        while (aio_error(&cb) == EINPROGRESS) {}
        CHECK(aio_error(&cb) == 0 && aio_return(&cb) == sizeof buf, "the write: %s", strerror(aio_error(&cb)));
        struct stat st;
        char c = 0;
        CHECK(fstat(fd2, &st) == 0 && pread(fd2, &c, 1, 4096) >= 0, "fstat");
        if (st.st_size != 4096 + (off_t)sizeof buf || c != 'A' + i % 26) {
            if (misplaced++ < 3) fprintf(stderr, "round %d: %lld bytes, byte 4096 is %d\n", i, (long long)st.st_size, c);
        }
        close(fd2);
    }
    stop = 1;
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    unlink(p1);
    unlink(p2);
    printf("%d of %d writes on a reopened fd number were misplaced\n", misplaced, ROUNDS);
    CHECK(misplaced == 0, "writes took the old file's flags");
    t_require_uaio(2 * ROUNDS);
    return T_EXIT_PASS;
}
