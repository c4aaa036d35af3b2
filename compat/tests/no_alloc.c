/* No heap allocation per request on the hot path: after a warm-up, 20,000 more reads and
 * writes (8 in flight, aio_suspend, aio_error, aio_return) must not call malloc at all,
 * whichever backend serves them; nor 3,000 uaio_ops.h requests (statx, fchmodat, which the
 * pool runs with the submitter's identity, openat). The program interposes malloc and its siblings itself (an
 * executable's definitions come before libuaio's and glibc's, linked or preloaded). */
#include "helpers.h"
#include <malloc.h>
#include <uaio.h>

static unsigned long allocations;
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

void *malloc(size_t n) { __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED); return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { return memalign(a, n); }
int posix_memalign(void **p, size_t a, size_t n) { *p = memalign(a, n); return *p ? 0 : ENOMEM; }

static struct aiocb cbs[8];
static const struct aiocb *list[8];

static void run(int fd, int n) {
    static char bufs[8][512];
    for (int k = 0; k < n; k++) {
        struct aiocb *cb = &cbs[k % 8];
        if (list[k % 8]) {
            while (aio_error(cb) == EINPROGRESS) aio_suspend(list, 8, NULL);
            CHECK(aio_return(cb) == 512, "request %d", k);
        }
        t_prep(cb, fd, bufs[k % 8], 512);
        cb->aio_offset = (off_t)(k * 4096) % (1 << 20);
        list[k % 8] = cb;
        CHECK((k % 3 == 0 ? aio_write(cb) : aio_read(cb)) == 0, "submit %d", k);
    }
}

static void run_ops(const char *path, int n) {
    int (*submit)(struct uaiocb *) = (int (*)(struct uaiocb *))dlsym(RTLD_DEFAULT, "uaio_submit");
    CHECK(submit != NULL, "uaio_submit");
    static struct uaiocb u;
    static struct statx sx;
    for (int k = 0; k < n; k++) {
        switch (k % 3) {
        case 0: uaio_prep_statx(&u, AT_FDCWD, path, 0, STATX_SIZE, &sx); break;
        case 1: uaio_prep_fchmodat(&u, AT_FDCWD, path, 0600, 0); break;
        default: uaio_prep_openat(&u, AT_FDCWD, path, O_RDONLY, 0); break;
        }
        CHECK(submit(&u) == 0, "uaio_submit %d", k);
        ssize_t r = t_wait(&u.aiocb, 5000);
        CHECK(r >= 0, "operation %d: %s", k, strerror(aio_error(&u.aiocb)));
        if (k % 3 == 2) close((int)r);
    }
}

int main(void) {
    int fd = t_temp_file(1 << 20);
    run(fd, 2000); /* the engine, the workers or the reaper, the file's first entry */
    unsigned long before = __atomic_load_n(&allocations, __ATOMIC_RELAXED);
    run(fd, 20000);
    unsigned long after = __atomic_load_n(&allocations, __ATOMIC_RELAXED);
    printf("allocations: %lu during the warm-up, %lu during 20000 more requests (reads %s, writes %s)\n", before,
           after - before, t_on_ring("read") ? "uring" : "pool", t_on_ring("write") ? "uring" : "pool");
    CHECK(after == before, "%lu allocations in 20000 requests", after - before);
    for (int i = 0; i < 8; i++) {
        while (aio_error(&cbs[i]) == EINPROGRESS) aio_suspend(list, 8, NULL);
        aio_return(&cbs[i]);
    }
    char path[] = "/tmp/uaio-noalloc-XXXXXX";
    int pfd = mkstemp(path);
    CHECK(pfd >= 0, "mkstemp");
    close(pfd);
    run_ops(path, 300);
    before = __atomic_load_n(&allocations, __ATOMIC_RELAXED);
    run_ops(path, 3000);
    after = __atomic_load_n(&allocations, __ATOMIC_RELAXED);
    unlink(path);
    printf("allocations: %lu during 3000 statx, fchmodat and openat requests (fchmodat in the pool)\n", after - before);
    CHECK(after == before, "%lu allocations in 3000 uaio_ops.h requests", after - before);
    t_require_uaio(25000);
    return T_EXIT_PASS;
}
