/* SIGEV_THREAD: the function runs with sigev_value on a new thread made from
 * sigev_notify_attributes (a joinable attribute set is fine: we detach), after the result is
 * visible, with no signal blocked. */
#include "helpers.h"

static volatile int count, bad;
static volatile size_t stack_seen;
static pthread_t main_thread;

static void on_done(union sigval v) {
    struct aiocb *cb = v.sival_ptr;
    if (aio_error(cb) == EINPROGRESS || pthread_equal(pthread_self(), main_thread)) bad++;
    sigset_t mask;
    pthread_sigmask(SIG_SETMASK, NULL, &mask);
    if (!sigisemptyset(&mask)) bad++;
    pthread_attr_t a;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        size_t s = 0;
        pthread_attr_getstacksize(&a, &s);
        stack_seen = s;
        pthread_attr_destroy(&a);
    }
    __atomic_add_fetch(&count, 1, __ATOMIC_SEQ_CST);
}

int main(void) {
    main_thread = pthread_self();
    int fd = t_temp_file(4096);
    char buf[16];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1 << 20);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_JOINABLE);

    enum { N = 10 };
    static struct aiocb cbs[N];
    for (int i = 0; i < N; i++) {
        t_prep(&cbs[i], fd, buf, sizeof buf);
        cbs[i].aio_sigevent.sigev_notify = SIGEV_THREAD;
        cbs[i].aio_sigevent.sigev_notify_function = on_done;
        cbs[i].aio_sigevent.sigev_notify_attributes = i % 2 ? &attr : NULL;
        cbs[i].aio_sigevent.sigev_value.sival_ptr = &cbs[i];
        CHECK(aio_read(&cbs[i]) == 0, "aio_read");
    }
    for (int i = 0; i < 500 && count < N; i++) t_sleep_ms(10);
    CHECK(count == N && bad == 0, "%d callbacks, %d bad", count, bad);
    CHECK(stack_seen > 0, "stack size not seen");

    /* A NULL function is EINVAL at submission. */
    struct aiocb cb;
    t_prep(&cb, fd, buf, 1);
    cb.aio_sigevent.sigev_notify = SIGEV_THREAD;
    CHECK_ERRNO(aio_read(&cb), EINVAL);
    t_require_uaio(N);
    return T_EXIT_PASS;
}
