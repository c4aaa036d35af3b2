/* aio_fsync: O_SYNC and O_DSYNC work, anything else is EINVAL, a read-only fd is EBADF, and
 * the fsync is a barrier: when it completes, every earlier request on the file (through a
 * dup'ed fd too) has completed. */
#include "helpers.h"

enum { N = 48, SZ = 1 << 20 };
static struct aiocb writes[N];
static struct aiocb sync_cb;
static volatile int checked, early;

static void on_sync_done(union sigval v) {
    (void)v;
    /* Runs after the fsync's result is visible; the barrier says all writes are done. */
    for (int i = 0; i < N; i++)
        if (aio_error(&writes[i]) == EINPROGRESS) early++;
    __atomic_store_n(&checked, 1, __ATOMIC_RELEASE);
}

int main(void) {
    int fd = t_temp_file(0);
    int fd2 = dup(fd);
    static char buf[SZ];
    memset(buf, 'x', sizeof buf);

    struct aiocb cb;
    memset(&cb, 0, sizeof cb);
    cb.aio_fildes = fd;
    CHECK_ERRNO(aio_fsync(0, &cb), EINVAL);
    CHECK_ERRNO(aio_fsync(O_RDWR, &cb), EINVAL);
    struct aiocb *volatile null_cb = NULL;
    CHECK_ERRNO(aio_fsync(O_SYNC, null_cb), EINVAL);
    cb.aio_fildes = open("/dev/null", O_RDONLY);
    CHECK_ERRNO(aio_fsync(O_SYNC, &cb), EBADF);
    cb.aio_fildes = -1;
    CHECK_ERRNO(aio_fsync(O_DSYNC, &cb), EBADF); /* at once, as glibc: only reads and writes defer it */

    for (int round = 0; round < 3; round++) {
        checked = 0;
        for (int i = 0; i < N; i++) {
            memset(&writes[i], 0, sizeof writes[i]);
            writes[i].aio_fildes = i % 2 ? fd2 : fd; /* half through the dup */
            writes[i].aio_buf = buf;
            writes[i].aio_nbytes = SZ;
            writes[i].aio_offset = (off_t)i * SZ;
            CHECK(aio_write(&writes[i]) == 0, "aio_write %d", i);
        }
        memset(&sync_cb, 0, sizeof sync_cb);
        sync_cb.aio_fildes = fd;
        sync_cb.aio_sigevent.sigev_notify = SIGEV_THREAD;
        sync_cb.aio_sigevent.sigev_notify_function = on_sync_done;
        CHECK(aio_fsync(round == 1 ? O_DSYNC : O_SYNC, &sync_cb) == 0, "aio_fsync");
        CHECK(t_wait(&sync_cb, 30000) == 0, "fsync result");
        for (int i = 0; i < 2000 && !__atomic_load_n(&checked, __ATOMIC_ACQUIRE); i++) t_sleep_ms(5);
        CHECK(checked, "the fsync's notification never ran");
        CHECK(early == 0, "round %d: fsync completed while %d earlier writes were in progress", round, early);
        for (int i = 0; i < N; i++) CHECK(t_wait(&writes[i], 5000) == SZ, "write %d", i);
    }
    t_require_uaio(3 * (N + 1));
    return T_EXIT_PASS;
}
