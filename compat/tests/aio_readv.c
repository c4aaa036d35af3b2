/* aio_readv / aio_writev (FreeBSD's signatures, uaio.h) and LIO_READV / LIO_WRITEV: scattered
 * writes and gathered reads on a file at an offset, on a pipe (stream order, a blocked readv
 * cancelled without consuming data), in lio_listio, and their errors: a count of 0 or above
 * IOV_MAX is EINVAL at submission, a NULL iovec array is EFAULT through aio_error, a readv on a
 * write-only fd is EBADF. */
#include "helpers.h"

#include <limits.h>
#include <uaio.h>

/* Through dlsym, so that the preloaded build (a plain glibc program) finds them too: a ported
 * program calling them links with -luaio, since glibc has no such functions. */
static int (*readv_fn)(struct aiocb *), (*writev_fn)(struct aiocb *);
#define aio_readv readv_fn
#define aio_writev writev_fn

int main(void) {
    readv_fn = (int (*)(struct aiocb *))dlsym(RTLD_DEFAULT, "aio_readv");
    writev_fn = (int (*)(struct aiocb *))dlsym(RTLD_DEFAULT, "aio_writev");
    CHECK(readv_fn && writev_fn, "aio_readv/aio_writev not found: libuaio is not loaded");
    int fd = t_temp_file(8192);
    char a[5] = "hello", b[1] = {' '}, c[6] = "world!";
    struct iovec out[3] = {{a, 5}, {b, 1}, {c, 6}};
    struct aiocb cb;
    t_prep(&cb, fd, NULL, 0);
    uaio_set_iov(&cb, out, 3);
    cb.aio_offset = 1000;
    CHECK(aio_writev(&cb) == 0, "aio_writev");
    CHECK(t_wait(&cb, 5000) == 12, "writev moved 12 bytes");
    char x[3], y[9], z[4];
    struct iovec in[3] = {{x, 3}, {y, 9}, {z, 4}};
    t_prep(&cb, fd, NULL, 0);
    uaio_set_iov(&cb, in, 3);
    cb.aio_offset = 1000;
    CHECK(aio_readv(&cb) == 0, "aio_readv");
    CHECK(t_wait(&cb, 5000) == 16, "readv moved 16 bytes");
    CHECK(memcmp(x, "hel", 3) == 0 && memcmp(y, "lo world!", 9) == 0, "gathered: %.3s|%.9s", x, y);
    for (int i = 0; i < 4; i++) CHECK((unsigned char)z[i] == t_pattern(1012 + i), "byte %d after the write", i);
    printf("readv goes to the %s, writev to the %s\n", t_on_ring("readv") ? "ring" : "pool",
           t_on_ring("writev") ? "ring" : "pool");

    /* A pipe: the readv waits in the stream's lane; cancelled, it takes nothing. */
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    char p1[2], p2[2];
    struct iovec pin[2] = {{p1, 2}, {p2, 2}};
    t_prep(&cb, p[0], NULL, 0);
    uaio_set_iov(&cb, pin, 2);
    CHECK(aio_readv(&cb) == 0, "aio_readv on a pipe");
    t_sleep_ms(30);
    CHECK(aio_error(&cb) == EINPROGRESS, "blocked");
    CHECK(aio_cancel(p[0], &cb) == AIO_CANCELED, "cancel the blocked readv");
    CHECK(aio_error(&cb) == ECANCELED && aio_return(&cb) == -1, "cancelled");
    struct iovec pout[2] = {{"ab", 2}, {"cd", 2}};
    struct aiocb w;
    t_prep(&w, p[1], NULL, 0);
    uaio_set_iov(&w, pout, 2);
    CHECK(aio_writev(&w) == 0 && t_wait(&w, 5000) == 4, "writev to the pipe");
    t_prep(&cb, p[0], NULL, 0);
    uaio_set_iov(&cb, pin, 2);
    CHECK(aio_readv(&cb) == 0 && t_wait(&cb, 5000) == 4, "readv from the pipe");
    CHECK(memcmp(p1, "ab", 2) == 0 && memcmp(p2, "cd", 2) == 0, "the cancelled readv took nothing");

    /* lio_listio with LIO_WRITEV then LIO_READV (LIO_WAIT). */
    char q[4] = "QRST", r[4] = {0};
    struct iovec qv[1] = {{q, 4}}, rv[1] = {{r, 4}};
    struct aiocb l1, l2;
    t_prep(&l1, fd, NULL, 0);
    uaio_set_iov(&l1, qv, 1);
    l1.aio_offset = 4000, l1.aio_lio_opcode = LIO_WRITEV;
    struct aiocb *list1[1] = {&l1};
    CHECK(lio_listio(LIO_WAIT, list1, 1, NULL) == 0 && aio_return(&l1) == 4, "LIO_WRITEV");
    t_prep(&l2, fd, NULL, 0);
    uaio_set_iov(&l2, rv, 1);
    l2.aio_offset = 4000, l2.aio_lio_opcode = LIO_READV;
    struct aiocb *list2[1] = {&l2};
    CHECK(lio_listio(LIO_WAIT, list2, 1, NULL) == 0 && aio_return(&l2) == 4, "LIO_READV");
    CHECK(memcmp(r, "QRST", 4) == 0, "LIO_READV read %.4s", r);

    /* Errors. */
    t_prep(&cb, fd, NULL, 0);
    uaio_set_iov(&cb, in, 0);
    CHECK_ERRNO(aio_readv(&cb), EINVAL);
    uaio_set_iov(&cb, in, IOV_MAX + 1);
    CHECK_ERRNO(aio_writev(&cb), EINVAL);
    uaio_set_iov(&cb, NULL, 1);
    CHECK(aio_readv(&cb) == 0, "a NULL iovec array is found by the read itself");
    t_wait(&cb, 5000);
    CHECK(aio_error(&cb) == EFAULT, "NULL iovecs: %d", aio_error(&cb));
    CHECK_ERRNO(aio_readv(NULL), EINVAL);
    t_prep(&cb, p[1], NULL, 0);
    uaio_set_iov(&cb, in, 1);
    CHECK_DEFERRED(aio_readv(&cb), &cb, EBADF); /* the pipe's write end */
    t_require_uaio(8);
    return T_EXIT_PASS;
}
