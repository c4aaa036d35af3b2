/* The engine's tables cost memory only as they are used: one aio_read in a process that allows
 * 4 Mi requests in flight (UAIO_MAX_REQUESTS) must not make its resident set grow by the
 * tables' full size (the reap queue alone is 64 MiB then), nor by more than a few MiB. */
#include "helpers.h"

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    CHECK(f != NULL, "/proc/self/status");
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}

int main(void) {
    setenv("UAIO_MAX_REQUESTS", "4194304", 1);  // read when the engine is built: at the first call
    char buf[64];
    int fd = open("/proc/self/exe", O_RDONLY);
    CHECK(fd >= 0, "open");
    long before = rss_kib();
    struct aiocb cb;
    memset(&cb, 0, sizeof cb);
    cb.aio_fildes = fd;
    cb.aio_buf = buf;
    cb.aio_nbytes = sizeof buf;
    CHECK(aio_read(&cb) == 0, "aio_read");
    const struct aiocb *list[1] = {&cb};
    while (aio_error(&cb) == EINPROGRESS) aio_suspend(list, 1, NULL);
    CHECK(aio_return(&cb) == sizeof buf, "aio_return");
    long after = rss_kib();
    t_require_uaio(1);
    printf("lazy_memory: the first request made the resident set grow by %ld KiB\n", after - before);
    CHECK(after - before < 8192, "the first request made the resident set grow by %ld KiB", after - before);
    return T_EXIT_PASS;
}
