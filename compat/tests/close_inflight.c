/* close() with requests in flight (README, "close() with requests in flight"). close() cancels
 * nothing: a request that has started keeps the open file description the kernel holds for it
 * and completes normally (data or end of file); aio_cancel on the closed number is EBADF, as
 * POSIX requires. The number, reused for another file meanwhile, means the new file: a read on
 * it is positioned, not taken for the old pipe's stream. Slots are reused only after their
 * request ended: many requests afterwards all complete right. */
#include "helpers.h"

int main(void) {
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    char a[4] = {0}, b[4] = {0};
    struct aiocb ca, cb;
    t_prep(&ca, p[0], a, sizeof a);
    t_prep(&cb, p[0], b, sizeof b);
    CHECK(aio_read(&ca) == 0 && aio_read(&cb) == 0, "aio_read");
    t_sleep_ms(30); /* ca blocks on the empty pipe; cb waits behind it */
    int closed = p[0];
    CHECK(close(p[0]) == 0, "close");
    CHECK_ERRNO(aio_cancel(closed, NULL), EBADF);
    CHECK_ERRNO(aio_cancel(closed, &ca), EBADF);

    /* The number is reused at once (lowest free): a regular file now. */
    int fd = t_temp_file(8192);
    CHECK(fd == closed, "expected fd %d to be reused, got %d", closed, fd);
    unsigned char c[16];
    struct aiocb cc;
    t_prep(&cc, fd, c, sizeof c);
    cc.aio_offset = 1000;
    CHECK(aio_read(&cc) == 0, "aio_read on the reused number");
    CHECK(t_wait(&cc, 5000) == sizeof c, "read on the new file");
    for (int i = 0; i < 16; i++) CHECK(c[i] == t_pattern(1000 + i), "byte %d of the new file is %u", i, c[i]);

    /* The old pipe's requests still complete: data, then end of file once the writer closes. */
    CHECK(write(p[1], "data", 4) == 4, "write");
    ssize_t n = t_wait(&ca, 5000);
    CHECK(n == 4 && memcmp(a, "data", 4) == 0, "ca: %zd", n);
    CHECK(close(p[1]) == 0, "close the writer");
    n = t_wait(&cb, 5000);
    /* cb started after the close: its read finds the number taken by the file (reading it at the
     * file position) or, on the ring or a worker that held the pipe, the end of file. */
    CHECK(n >= 0, "cb: %zd (errno %d)", n, aio_error(&cb));
    printf("ca: 4 bytes; cb: %zd\n", n);

    /* Slots cycle normally afterwards. */
    for (int i = 0; i < 2000; i++) {
        t_prep(&cc, fd, c, 8);
        cc.aio_offset = i;
        CHECK(aio_read(&cc) == 0 && t_wait(&cc, 5000) == 8 && c[0] == t_pattern(i), "read %d", i);
    }
    CHECK(t_uaio_in_flight() == 0, "in flight: %d", t_uaio_in_flight());
    t_require_uaio(2003);
    return T_EXIT_PASS;
}
