/* fork with requests in flight (fio forks its jobs): the child starts with an empty engine
 * and works; the parent's requests complete in the parent only; in the child, a copy of an
 * aiocb the parent has in flight is not a request (aio_error: EINVAL). */
#include "helpers.h"
#include <sys/wait.h>

int main(void) {
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    char buf[8];
    struct aiocb cb;
    t_prep(&cb, p[0], buf, 4);
    CHECK(aio_read(&cb) == 0, "aio_read");
    int fd = t_temp_file(1 << 16);
    static char fbuf[16][4096];
    static struct aiocb fcbs[16];
    for (int i = 0; i < 16; i++) {
        t_prep(&fcbs[i], fd, fbuf[i], 4096);
        fcbs[i].aio_offset = i * 4096;
        CHECK(aio_read(&fcbs[i]) == 0, "aio_read file %d", i);
    }
    CHECK(t_uaio_in_flight() >= 1, "in flight before fork");

    pid_t child = fork();
    CHECK(child >= 0, "fork");
    if (child == 0) {
        CHECK(t_uaio_in_flight() == 0, "child inherited %d requests", t_uaio_in_flight());
        CHECK(t_uaio_submitted() == 0, "child inherited the counters");
        CHECK_ERRNO(aio_error(&cb), EINVAL);
        CHECK(t_thread_count() == 1, "child has %d threads", t_thread_count());
        /* The child's own I/O works, on a file and on a pipe. */
        char c[4096];
        struct aiocb own;
        t_prep(&own, fd, c, sizeof c);
        own.aio_offset = 4096;
        CHECK(aio_read(&own) == 0, "child aio_read");
        CHECK(t_wait(&own, 5000) == 4096 && (unsigned char)c[0] == t_pattern(4096), "child read");
        int q[2];
        CHECK(pipe(q) == 0, "pipe");
        own.aio_fildes = q[0];
        own.aio_nbytes = 3;
        CHECK(aio_read(&own) == 0, "child pipe read");
        CHECK(write(q[1], "abc", 3) == 3, "write");
        CHECK(t_wait(&own, 5000) == 3, "child pipe read");
        /* Forking again from the child works too. */
        pid_t grandchild = fork();
        if (grandchild == 0) {
            own.aio_fildes = fd;
            own.aio_nbytes = 10;
            CHECK(aio_read(&own) == 0, "grandchild aio_read");
            CHECK(t_wait(&own, 5000) == 10, "grandchild read");
            _exit(0);
        }
        int st;
        waitpid(grandchild, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "grandchild failed");
        t_require_uaio(2);
        _exit(0);
    }
    int status;
    CHECK(waitpid(child, &status, 0) == child, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed: %d", status);
    /* The parent's requests are untouched by the child and complete here. */
    for (int i = 0; i < 16; i++) CHECK(t_wait(&fcbs[i], 5000) == 4096, "parent file read %d", i);
    CHECK(aio_error(&cb) == EINPROGRESS, "parent pipe read still waiting");
    CHECK(write(p[1], "done", 4) == 4, "write");
    CHECK(t_wait(&cb, 5000) == 4 && memcmp(buf, "done", 4) == 0, "parent pipe read");
    t_require_uaio(17);
    return T_EXIT_PASS;
}
