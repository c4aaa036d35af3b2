/* An engine that cannot be built (its tables do not fit the address-space limit) fails each
 * call with EAGAIN and leaves nothing mapped, so that the calls after it, which try again, do
 * not pile up mappings (each failed build left hundreds of MiB mapped); once the limit is
 * lifted, the next call builds it and works. */
#include "helpers.h"

#include <sys/resource.h>

static long vm_kib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    CHECK(f != NULL, "/proc/self/status");
    char line[256], fmt[64];
    snprintf(fmt, sizeof fmt, "%s: %%ld kB", field);
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, fmt, &kib) == 1) break;
    fclose(f);
    return kib;
}

int main(void) {
    setenv("UAIO_MAX_REQUESTS", "4194304", 1);  // about 1.6 GiB of (unbacked) tables
    int fd = open("/proc/self/exe", O_RDONLY);
    CHECK(fd >= 0, "open");
    char buf[64];
    struct aiocb cb;
    memset(&cb, 0, sizeof cb);
    cb.aio_fildes = fd;
    cb.aio_buf = buf;
    cb.aio_nbytes = sizeof buf;
    struct rlimit old;
    CHECK(getrlimit(RLIMIT_AS, &old) == 0, "getrlimit");
    long before = vm_kib("VmSize");
    struct rlimit tight = {(rlim_t)(before + 900 * 1024) * 1024, old.rlim_max};  // room for some tables
    CHECK(setrlimit(RLIMIT_AS, &tight) == 0, "setrlimit");
    for (int i = 0; i < 20; i++) CHECK_ERRNO(aio_read(&cb), EAGAIN);
    long after = vm_kib("VmSize");
    CHECK(setrlimit(RLIMIT_AS, &old) == 0, "setrlimit back");
    printf("build_retry: 20 failed builds left %ld KiB mapped\n", after - before);
    CHECK(after - before < 64 * 1024, "20 failed builds left %ld KiB mapped", after - before);
    CHECK(aio_read(&cb) == 0, "aio_read once the limit is lifted");
    const struct aiocb *list[1] = {&cb};
    while (aio_error(&cb) == EINPROGRESS) aio_suspend(list, 1, NULL);
    CHECK(aio_return(&cb) == sizeof buf, "aio_return");
    t_require_uaio(1);
    return T_EXIT_PASS;
}
