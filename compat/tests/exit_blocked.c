/* A process exits promptly while requests are blocked on pipes and sockets: by exit(), and by
 * returning from main, whichever backend holds them (the run modes cover the ring and the
 * pool). Each child blocks reads and a write on a full pipe, then leaves; the parent times it. */
#include "helpers.h"

#include <sys/socket.h>
#include <sys/wait.h>

static struct aiocb cbs[6];
static char bufs[6][16];
static char big[1 << 17];

static void block_some(void) {
    int p[2], q[2], s[2];
    CHECK(pipe(p) == 0 && pipe(q) == 0 && socketpair(AF_UNIX, SOCK_STREAM, 0, s) == 0, "pipes");
    /* Fill q so that a write to it blocks. */
    fcntl(q[1], F_SETFL, O_NONBLOCK);
    while (write(q[1], big, sizeof big) > 0) {}
    fcntl(q[1], F_SETFL, 0);
    int fds[6] = {p[0], p[0], s[0], s[1], q[1], s[0]};
    for (int i = 0; i < 6; i++) {
        t_prep(&cbs[i], fds[i], i == 4 ? big : bufs[i], i == 4 ? sizeof big : sizeof bufs[i]);
        int r = i == 4 ? aio_write(&cbs[i]) : aio_read(&cbs[i]);
        CHECK(r == 0, "submit %d", i);
    }
    t_sleep_ms(30); /* let them block: in workers' read/write, or in the kernel's poll */
    for (int i = 0; i < 6; i++) CHECK(aio_error(&cbs[i]) == EINPROGRESS, "request %d ended", i);
}

static double run_child(int how) {
    struct timespec t0, t1;
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        block_some();
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (how == 0) exit(3);
        return -1; /* how == 1: main returns 4 */
    }
    int status = 0;
    /* The child blocks for 30 ms first; time from there on. */
    t_sleep_ms(30);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 1000; i++) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        CHECK(w >= 0, "waitpid");
        if (w == pid) break;
        t_sleep_ms(5);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!WIFEXITED(status) && !WIFSIGNALED(status)) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        CHECK(0, "the child did not exit within 5 s (%s)", how ? "return from main" : "exit()");
    }
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3 + how, "child status %#x", status);
    return (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
}

int main(void) {
    /* The parent uses the library too, so that both run modes can prove who served it. */
    int fd = t_temp_file(4096);
    char b[16];
    struct aiocb cb;
    t_prep(&cb, fd, b, sizeof b);
    CHECK(aio_read(&cb) == 0 && t_wait(&cb, 5000) == sizeof b, "read");
    printf("reads go to the %s\n", t_on_ring("read") ? "ring" : "pool");
    for (int how = 0; how < 2; how++) {
        double s = run_child(how);
        if (s < 0) return 4; /* the child returning from main */
        printf("%s with 6 blocked requests: exited after %.3f s\n", how ? "return from main" : "exit()", s);
        CHECK(s < 1.0, "exit took %.3f s", s);
    }
    t_require_uaio(1);
    return T_EXIT_PASS;
}
