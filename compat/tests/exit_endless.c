/* A thread that exits with a read in flight on a regular file whose reads may never end (a
 * tracefs trace_pipe here; /proc/kmsg, a hung FUSE daemon) exits promptly, and its read goes
 * on for the process and ends with the data that comes: io_uring would otherwise keep the
 * exiting thread waiting for it, or the read would die with the thread. Needs tracefs (mounted
 * here if it is not, which takes root) and no active tracer; skips visibly otherwise. */
#include "helpers.h"
#include <sys/mount.h>

static char dir[64] = "/sys/kernel/tracing";
static int mounted;
static char path[128];
static char buf[4096];
static struct aiocb cb;

static void *submitter(void *arg) {
    (void)arg;
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    t_prep(&cb, fd, buf, sizeof buf);
    CHECK(aio_read(&cb) == 0, "aio_read");
    t_sleep_ms(20); /* blocked in the kernel */
    CHECK(aio_error(&cb) == EINPROGRESS, "the read ended early: %d", aio_error(&cb));
    return NULL;
}

static int tracefs_file(const char *name, char *out, size_t n) {
    char p[160];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t k = read(fd, out, n - 1);
    close(fd);
    out[k > 0 ? k : 0] = 0;
    return 0;
}

static void cleanup(void) {
    if (mounted) umount2(dir, MNT_DETACH), rmdir(dir);
}

int main(void) {
    snprintf(path, sizeof path, "%s/trace_pipe", dir);
    if (access(path, R_OK) != 0) {
        strcpy(dir, "/tmp/uaio-tracefs.XXXXXX");
        if (!mkdtemp(dir)) { printf("skip: no tracefs and no temporary directory\n"); return T_EXIT_SKIP; }
        if (mount("nodev", dir, "tracefs", 0, NULL) != 0) {
            printf("skip: tracefs is not mounted and cannot be (%s): needs root\n", strerror(errno));
            rmdir(dir);
            return T_EXIT_SKIP;
        }
        mounted = 1;
        atexit(cleanup);
        snprintf(path, sizeof path, "%s/trace_pipe", dir);
    }
    char tracer[64] = "";
    if (tracefs_file("current_tracer", tracer, sizeof tracer) != 0 || strncmp(tracer, "nop", 3) != 0) {
        printf("skip: a tracer is active (%s): trace_pipe would not stay empty\n", tracer);
        return T_EXIT_SKIP;
    }
    /* Drain what is there: the read below must block until the marker. */
    int drain = open(path, O_RDONLY | O_NONBLOCK);
    CHECK(drain >= 0, "open %s", path);
    while (read(drain, buf, sizeof buf) > 0) {}
    close(drain);

    pthread_t t;
    CHECK(pthread_create(&t, NULL, submitter, NULL) == 0, "pthread_create");
    struct timespec limit;
    clock_gettime(CLOCK_REALTIME, &limit);
    limit.tv_sec += 3;
    int joined = pthread_timedjoin_np(t, NULL, &limit);
    int in_flight = aio_error(&cb) == EINPROGRESS;

    /* What ends the read: a line in the trace buffer. */
    char marker_path[160];
    snprintf(marker_path, sizeof marker_path, "%s/trace_marker", dir);
    int marker = open(marker_path, O_WRONLY);
    CHECK(marker >= 0, "open trace_marker");
    CHECK(write(marker, "uaio-exit-endless\n", 18) == 18, "write trace_marker");
    close(marker);
    if (joined != 0) CHECK(pthread_join(t, NULL) == 0, "join");
    ssize_t n = t_wait(&cb, 5000);
    printf("thread exit %s; read %s, then %zd bytes\n", joined == 0 ? "within 3 s" : "waited for the read",
           in_flight ? "still in flight after it" : "ended by it", n);
    CHECK(joined == 0, "the exiting thread waited for a read that had no end in sight");
    CHECK(in_flight, "the read ended with its thread");
    CHECK(n > 0 && memmem(buf, (size_t)n, "uaio-exit-endless", 17) != NULL, "the read did not return the marker");
    close(cb.aio_fildes);
    t_require_uaio(1);
    return T_EXIT_PASS;
}
