/* A bad sigevent is EINVAL at submission, for every submitting call: an unknown
 * sigev_notify, a signal number out of range. */
#include "helpers.h"

int main(void) {
    int fd = t_temp_file(4096);
    char buf[16];
    struct aiocb cb;
    t_prep(&cb, fd, buf, sizeof buf);
    int kinds[] = {3, 5, -1, 1000};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        cb.aio_sigevent.sigev_notify = kinds[i];
        CHECK_ERRNO(aio_read(&cb), EINVAL);
        CHECK_ERRNO(aio_write(&cb), EINVAL);
        CHECK_ERRNO(aio_fsync(O_SYNC, &cb), EINVAL);
    }
    int signals[] = {-1, 65, 1000};
    cb.aio_sigevent.sigev_notify = SIGEV_SIGNAL;
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        cb.aio_sigevent.sigev_signo = signals[i];
        CHECK_ERRNO(aio_read(&cb), EINVAL);
    }
    /* SIGEV_NONE ignores the signal number. */
    cb.aio_sigevent.sigev_notify = SIGEV_NONE;
    cb.aio_sigevent.sigev_signo = 1000;
    CHECK(aio_read(&cb) == 0, "SIGEV_NONE");
    CHECK(t_wait(&cb, 5000) == sizeof buf, "read");
    t_require_uaio(1);
    return T_EXIT_PASS;
}
