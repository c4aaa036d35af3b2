/* One worker budget: io_uring's own io-wq gets UAIO_MAX_BOUNDED_WORKERS, so a flood of syncs
 * (which io_uring always runs on iou-wrk threads) never spawns more than that. A forked child
 * with a limit of 2 must stay at 2 or less; a second child with a limit of 16 shows the same
 * flood really does spawn more when allowed (else the first check could not fail). */
#include "helpers.h"
#include <dirent.h>
#include <sys/wait.h>

static int iou_workers(void) {
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f && fgets(comm, sizeof comm, f) && strncmp(comm, "iou-wrk", 7) == 0) n++;
        if (f) fclose(f);
    }
    if (d) closedir(d);
    return n;
}

static int flood(const char *limit) {
    setenv("UAIO_MAX_BOUNDED_WORKERS", limit, 1);
    enum { N = 48 };
    static struct aiocb cbs[N];
    static char data[1 << 20];
    memset(data, 'd', sizeof data);
    for (int i = 0; i < N; i++) {
        int fd = t_temp_file(0);
        CHECK(write(fd, data, sizeof data) == (ssize_t)sizeof data, "write");
        memset(&cbs[i], 0, sizeof cbs[i]);
        cbs[i].aio_fildes = fd;
    }
    for (int i = 0; i < N; i++) CHECK(aio_fsync(O_SYNC, &cbs[i]) == 0, "aio_fsync %d", i);
    int most = 0;
    for (int done = 0; done < N;) {
        int n = iou_workers();
        if (n > most) most = n;
        done = 0;
        for (int i = 0; i < N; i++) done += aio_error(&cbs[i]) != EINPROGRESS;
        t_sleep_ms(1);
    }
    for (int i = 0; i < N; i++) CHECK(aio_return(&cbs[i]) == 0, "fsync %d", i);
    return most;
}

static int in_child(const char *limit) {
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    pid_t pid = fork();
    if (pid == 0) {
        int most = flood(limit);
        CHECK(write(p[1], &most, sizeof most) == sizeof most, "report");
        _exit(0);
    }
    int most = -1, status;
    CHECK(read(p[0], &most, sizeof most) == sizeof most, "child report");
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed");
    return most;
}

int main(void) {
    if (!t_on_ring("fsync")) {
        printf("fsync goes to the worker pool here: io-wq is not used\n");
        return T_EXIT_SKIP;
    }
    int limited = in_child("2"), wide = in_child("16");
    printf("iou-wrk threads at most: %d with a limit of 2, %d with a limit of 16\n", limited, wide);
    CHECK(limited <= 2, "%d iou-wrk threads with UAIO_MAX_BOUNDED_WORKERS=2", limited);
    CHECK(wide > 2, "the flood never needed more than 2 workers: the check above proves nothing");
    t_require_uaio(0);
    return T_EXIT_PASS;
}
