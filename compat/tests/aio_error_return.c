/* aio_error and aio_return: EINPROGRESS while running, the result exactly once, EINVAL for
 * a NULL, an aiocb never submitted, a second aio_return, or aio_return while in progress. */
#include "helpers.h"

int main(void) {
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    char buf[8];
    struct aiocb cb;
    t_prep(&cb, p[0], buf, sizeof buf);

    struct aiocb *volatile null_cb = NULL;
    CHECK_ERRNO(aio_error(null_cb), EINVAL);
    CHECK_ERRNO(aio_return(null_cb), EINVAL);
    CHECK_ERRNO(aio_error(&cb), EINVAL); /* never submitted */
    CHECK_ERRNO(aio_return(&cb), EINVAL);

    CHECK(aio_read(&cb) == 0, "aio_read");
    t_sleep_ms(20);
    CHECK(aio_error(&cb) == EINPROGRESS, "aio_error %d", aio_error(&cb));
    CHECK_ERRNO(aio_return(&cb), EINVAL); /* still running */
    CHECK_ERRNO(aio_read(&cb), EINVAL);   /* the same aiocb twice in flight */
    CHECK(write(p[1], "hello", 5) == 5, "write");
    const struct aiocb *list[] = {&cb};
    CHECK(aio_suspend(list, 1, NULL) == 0, "aio_suspend");
    CHECK(aio_error(&cb) == 0, "aio_error after completion");
    CHECK(aio_return(&cb) == 5, "aio_return");
    CHECK_ERRNO(aio_return(&cb), EINVAL); /* only once */
    CHECK(memcmp(buf, "hello", 5) == 0, "data");

    /* After aio_return the aiocb may be reused at once. */
    CHECK(aio_read(&cb) == 0, "aio_read again");
    CHECK(write(p[1], "abc", 3) == 3, "write");
    CHECK(t_wait(&cb, 5000) == 3, "second result");

    /* A failed request: data waits in the pipe, the buffer is unmapped: aio_error is EFAULT,
     * aio_return is -1, once. */
    CHECK(write(p[1], "xyz", 3) == 3, "write");
    cb.aio_buf = (void *)8; /* the first page is never mapped */
    CHECK(aio_read(&cb) == 0, "aio_read into a bad buffer");
    while (aio_error(&cb) == EINPROGRESS) t_sleep_ms(1);
    CHECK(aio_error(&cb) == EFAULT, "bad buffer: aio_error %d, want EFAULT", aio_error(&cb));
    CHECK(aio_return(&cb) == -1, "aio_return of a failed request");
    CHECK_ERRNO(aio_return(&cb), EINVAL);
    t_require_uaio(3);
    return T_EXIT_PASS;
}
