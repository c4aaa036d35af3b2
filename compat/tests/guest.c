/* libuaio is a good guest: loading it changes no signal disposition (no Swift backtracer),
 * starts no thread before the first AIO call, and its workers exit when idle. */
#include "helpers.h"

static const int watched[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGQUIT, SIGINT, SIGTERM,
                              SIGCHLD, SIGPIPE, SIGUSR1, SIGUSR2};

int main(void) {
    setenv("UAIO_WORKER_IDLE_MS", "100", 1);
    for (size_t i = 0; i < sizeof watched / sizeof watched[0]; i++) {
        struct sigaction sa;
        CHECK(sigaction(watched[i], NULL, &sa) == 0, "sigaction");
        CHECK(sa.sa_handler == SIG_DFL, "signal %d has a handler after loading libuaio", watched[i]);
    }
    for (int s = SIGRTMIN; s <= SIGRTMAX; s++) {
        struct sigaction sa;
        CHECK(sigaction(s, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL, "signal %d has a handler", s);
    }
    CHECK(t_thread_count() == 1, "%d threads before the first AIO call", t_thread_count());
    CHECK(dlsym(RTLD_DEFAULT, "uaio_requests_submitted") != NULL, "libuaio not loaded");

    int fd = t_temp_file(4096);
    char buf[16];
    struct aiocb cb;
    t_prep(&cb, fd, buf, sizeof buf);
    CHECK(aio_read(&cb) == 0, "aio_read");
    CHECK(t_wait(&cb, 5000) == sizeof buf, "read");
    /* Still no handler installed by serving a request. */
    struct sigaction sa;
    CHECK(sigaction(SIGSEGV, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL, "SIGSEGV handler after a request");
    /* The worker exits after UAIO_WORKER_IDLE_MS. */
    int threads = 0;
    for (int i = 0; i < 100 && (threads = t_thread_count()) > 1; i++) t_sleep_ms(20);
    CHECK(threads == 1, "%d threads 2 s after the last request (idle time 100 ms)", threads);
    t_require_uaio(1);
    return T_EXIT_PASS;
}
