/* aio_write: data lands where asked; many writes in flight on one fd; EBADF on a read-only
 * fd; a write to a closed pipe end reports EPIPE through aio_error (SIGPIPE ignored). */
#include "helpers.h"

int main(void) {
    int fd = t_temp_file(0);
    enum { N = 32, SZ = 4096 };
    static unsigned char bufs[N][SZ];
    struct aiocb cbs[N];
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < SZ; j++) bufs[i][j] = t_pattern((size_t)i * SZ + j);
        t_prep(&cbs[i], fd, bufs[i], SZ);
        cbs[i].aio_offset = (off_t)(N - 1 - i) * SZ; /* back to front */
        for (int j = 0; j < SZ; j++) bufs[i][j] = t_pattern((size_t)(N - 1 - i) * SZ + j);
        CHECK(aio_write(&cbs[i]) == 0, "aio_write %d", i);
    }
    for (int i = 0; i < N; i++) CHECK(t_wait(&cbs[i], 5000) == SZ, "write %d", i);
    static unsigned char back[N * SZ];
    CHECK(pread(fd, back, sizeof back, 0) == (ssize_t)sizeof back, "pread");
    for (size_t i = 0; i < sizeof back; i++) CHECK(back[i] == t_pattern(i), "byte %zu", i);

    struct aiocb cb;
    memset(&cb, 0, sizeof cb);
    cb.aio_buf = bufs[0];
    cb.aio_nbytes = 1;
    cb.aio_fildes = open("/dev/zero", O_RDONLY);
    CHECK_DEFERRED(aio_write(&cb), &cb, EBADF);
    cb.aio_fildes = fd;
    cb.aio_offset = -5;
    CHECK_ERRNO(aio_write(&cb), EINVAL);

    signal(SIGPIPE, SIG_IGN);
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    close(p[0]);
    cb.aio_fildes = p[1];
    cb.aio_offset = -5; /* ignored on a stream */
    CHECK(aio_write(&cb) == 0, "aio_write to a pipe");
    CHECK(t_wait(&cb, 5000) == -1 && aio_error(&cb) == EPIPE, "EPIPE, got %d", aio_error(&cb));
    t_require_uaio(N + 1);
    return T_EXIT_PASS;
}
