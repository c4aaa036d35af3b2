/* A program that closes every fd it did not open itself, as some servers do after start-up:
 * the library's too (the ring's, its reaper's eventfd, the completion ring's eventfds).
 * Nothing is lost and nothing spins: a read the kernel already had completes and notifies,
 * later requests are served (by the worker pool: no io_uring_enter can reach the ring now),
 * and no thread burns the CPU. Before, the reaper spun on its closed eventfd (ppoll reports it
 * at once, for ever), and requests submitted afterwards were never started. */
#include "helpers.h"

#include <sys/resource.h>

static volatile int count;

static void on_done(union sigval v) { __atomic_add_fetch(&count, 1, __ATOMIC_SEQ_CST); }

/* A one-byte read from `p` with a SIGEV_THREAD notification: the reaper delivers it, since
 * nobody calls the library meanwhile. */
static void start_read(struct aiocb *cb, char *byte, int p[2]) {
    t_prep(cb, p[0], byte, 1);
    cb->aio_sigevent.sigev_notify = SIGEV_THREAD;
    cb->aio_sigevent.sigev_notify_function = on_done;
    CHECK(aio_read(cb) == 0, "aio_read");
}

static void expect_notified(struct aiocb *cb, const char *byte, int n) {
    for (int i = 0; i < 500 && count < n; i++) t_sleep_ms(10);
    CHECK(count == n, "notification %d did not arrive in 5 s", n);
    CHECK(aio_error(cb) == 0 && aio_return(cb) == 1 && *byte == 'x', "read %d", n);
}

/* The process's CPU time (every thread), in ms. */
static long cpu_ms(void) {
    struct rusage u;
    CHECK(getrusage(RUSAGE_SELF, &u) == 0, "getrusage");
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000L + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1000;
}

static void expect_idle(void) {
    long before = cpu_ms();
    t_sleep_ms(300);
    long spent = cpu_ms() - before;
    CHECK(spent < 100, "%ld ms of CPU in 300 ms with nothing to do: a thread spins", spent);
}

/* Closes every fd from 3 up but the pipe's; with `eventfds_only`, only eventfds. */
static int close_fds(int p[2], int eventfds_only) {
    int closed = 0;
    for (int fd = 3; fd < 1024; fd++) {
        if (fd == p[0] || fd == p[1]) continue;
        char path[64], target[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0) continue;
        target[n] = 0;
        if ((!eventfds_only || strcmp(target, "anon_inode:[eventfd]") == 0) && close(fd) == 0) closed++;
    }
    return closed;
}

int main(void) {
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    struct aiocb first, pending, later;
    char a, b, c;
    start_read(&first, &a, p); /* the engine, its ring and reaper exist from here */
    CHECK(write(p[1], "x", 1) == 1, "write");
    expect_notified(&first, &a, 1);

    /* First only the eventfds: the reaper makes another and registers it with the ring. */
    int closed = close_fds(p, 1);
    if (t_on_ring("read")) CHECK(closed >= 1, "no eventfd of the ring's reaper found");
    start_read(&first, &a, p);
    CHECK(write(p[1], "x", 1) == 1, "write");
    expect_notified(&first, &a, 2); /* wakes the reaper, which then finds its fd closed */
    expect_idle();
    start_read(&first, &a, p);
    CHECK(write(p[1], "x", 1) == 1, "write");
    expect_notified(&first, &a, 3);

    /* Then every fd, the ring's own too. */
    start_read(&pending, &b, p); /* in the kernel's hands (or a worker's) when its fds go */
    t_sleep_ms(20);
    closed = close_fds(p, 0);
    if (t_on_ring("read")) CHECK(closed >= 2, "closed %d fds: where are the ring's?", closed);
    CHECK(write(p[1], "x", 1) == 1, "write");
    expect_notified(&pending, &b, 4);
    start_read(&later, &c, p); /* submitted after: the ring cannot take it */
    CHECK(write(p[1], "x", 1) == 1, "write");
    expect_notified(&later, &c, 5);
    expect_idle();

    /* A wait in aio_suspend, and a file read, after all that. */
    CHECK(write(p[1], "x", 1) == 1, "write");
    t_prep(&later, p[0], &c, 1);
    CHECK(aio_read(&later) == 0, "aio_read");
    CHECK(t_wait(&later, 5000) == 1 && c == 'x', "waited read");
    int fd = t_temp_file(4096);
    char buf[64];
    t_prep(&later, fd, buf, sizeof buf);
    later.aio_offset = 100;
    CHECK(aio_read(&later) == 0, "aio_read of a file");
    CHECK(t_wait(&later, 5000) == sizeof buf && (unsigned char)buf[0] == t_pattern(100), "file read");
    t_require_uaio(7);
    return T_EXIT_PASS;
}
