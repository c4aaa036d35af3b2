/* The engine is built once, even when threads race to their first AIO call: afterwards the
 * process holds at most one io_uring (an engine built twice would leave a ring and its tables
 * behind), and every racing request completes. */
#include "helpers.h"
#include <dirent.h>
#include <sys/wait.h>

enum { T = 8 };
static pthread_barrier_t start;
static int fd;

static void *first_call(void *arg) {
    (void)arg;
    char buf[64];
    struct aiocb cb;
    t_prep(&cb, fd, buf, sizeof buf);
    pthread_barrier_wait(&start);
    CHECK(aio_read(&cb) == 0, "aio_read");
    CHECK(t_wait(&cb, 5000) == sizeof buf, "read");
    return NULL;
}

static int ring_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        char path[300], target[64] = "";
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len > 0 && strstr(target, "io_uring")) n++;
    }
    if (d) closedir(d);
    return n;
}

int main(void) {
    for (int round = 0; round < 20; round++) {
        pid_t pid = fork(); /* each round in a fresh process: a first use each time */
        if (pid == 0) {
            fd = t_temp_file(4096);
            pthread_barrier_init(&start, NULL, T);
            pthread_t threads[T];
            for (int i = 0; i < T; i++) pthread_create(&threads[i], NULL, first_call, NULL);
            for (int i = 0; i < T; i++) pthread_join(threads[i], NULL);
            CHECK(ring_fds() <= 1, "%d io_urings after %d threads raced to their first call", ring_fds(), T);
            t_require_uaio(T);
            _exit(0);
        }
        int status;
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0, "round %d", round);
    }
    return T_EXIT_PASS;
}
