/* An fd number whose requests are done is the program's to close and reopen for another file,
 * even while the file it named is still busy through another fd: a write on the reopened
 * number goes to the new file, at its aio_offset, with the new open's flags (not the old
 * O_APPEND). The other fd keeps the old file busy with a large read from the disk (O_DIRECT
 * where the file system has it), which must still be in flight when the write is submitted. */
#include "helpers.h"

#define ROUNDS 10
#define BIG (64 << 20)

int main(void) {
    char p1[] = "/var/tmp/uaio-reopen-XXXXXX", p2[] = "/tmp/uaio-reopen-XXXXXX";
    int f1 = mkstemp(p1), f2 = mkstemp(p2);
    CHECK(f1 >= 0 && f2 >= 0, "mkstemp");
    close(f2);
    static char chunk[1 << 20], buf[512];
    for (int i = 0; i < BIG / (int)sizeof chunk; i++) CHECK(write(f1, chunk, sizeof chunk) == sizeof chunk, "fill");
    CHECK(fsync(f1) == 0, "fsync");
    int m = open(p1, O_RDONLY | O_DIRECT);
    if (m < 0) m = open(p1, O_RDONLY);
    CHECK(m >= 0, "open");
    void *big;
    CHECK(posix_memalign(&big, 4096, BIG) == 0, "posix_memalign");
    int counted = 0, misplaced = 0;
    for (int i = 0; i < ROUNDS; i++) {
        posix_fadvise(m, 0, 0, POSIX_FADV_DONTNEED);
        struct aiocb busy;
        t_prep(&busy, m, big, BIG);
        CHECK(aio_read(&busy) == 0, "the long read");
        int fd = open(p1, O_WRONLY | O_APPEND);
        CHECK(fd >= 0, "open");
        struct aiocb cb;
        t_prep(&cb, fd, buf, sizeof buf);
        CHECK(aio_write(&cb) == 0, "aio_write (O_APPEND)");
        CHECK(t_wait(&cb, 5000) == sizeof buf, "the O_APPEND write");
        close(fd);
        int fd2 = open(p2, O_RDWR | O_TRUNC);
        CHECK(fd2 >= 0, "open");
        if (fd2 != fd) { /* (a thread of the library took the number meanwhile) */
            CHECK(dup2(fd2, fd) == fd, "dup2");
            close(fd2);
            fd2 = fd;
        }
        t_prep(&cb, fd2, buf, sizeof buf);
        cb.aio_offset = 4096;
        CHECK(aio_write(&cb) == 0, "aio_write");
        int busy_then = aio_error(&busy) == EINPROGRESS;
        CHECK(t_wait(&cb, 5000) == sizeof buf, "the write");
        struct stat st;
        CHECK(fstat(fd2, &st) == 0, "fstat");
        if (busy_then) {
            counted++;
            if (st.st_size != 4096 + (off_t)sizeof buf) misplaced++;
        }
        close(fd2);
        CHECK(t_wait(&busy, 60000) == BIG, "the long read");
        CHECK(ftruncate(f1, BIG) == 0, "ftruncate");
    }
    unlink(p1);
    unlink(p2);
    printf("%d of %d writes on a reopened number, its old file busy, were misplaced\n", misplaced, counted);
    CHECK(misplaced == 0, "writes took the old file's flags");
    if (counted == 0) {
        printf("the disk read 64 MiB before the write was submitted, every round: nothing tested\n");
        return T_EXIT_SKIP;
    }
    t_require_uaio(3 * ROUNDS);
    return T_EXIT_PASS;
}
