/* Shared by the compat tests: exit codes as liburing's tests use them, checks that say what
 * failed, and the proof that libuaio (linked or preloaded), not glibc, served the calls. */
#ifndef UAIO_TEST_HELPERS_H
#define UAIO_TEST_HELPERS_H

#define _GNU_SOURCE
#include <aio.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define T_EXIT_PASS 0
#define T_EXIT_FAIL 1
#define T_EXIT_SKIP 77

#define CHECK(cond, ...)                                                             \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fprintf(stderr, " (errno %d %s)\n", errno, strerror(errno));             \
            exit(T_EXIT_FAIL);                                                       \
        }                                                                            \
    } while (0)

/* Asserts a call failed with -1 and the given errno. */
#define CHECK_ERRNO(call, err)                                                     \
    do {                                                                           \
        errno = 0;                                                                 \
        long r_ = (long)(call);                                                    \
        CHECK(r_ == -1 && errno == (err), "%s returned %ld, expected -1/%s", #call, r_, #err); \
    } while (0)

/* Asserts a submission that glibc accepts and fails later: 0 at once, then aio_error gives
 * `err` (at once: nothing ran) and aio_return -1. EBADF is reported this way. */
#define CHECK_DEFERRED(call, cbp, err)                                                  \
    do {                                                                               \
        errno = 0;                                                                     \
        long r_ = (long)(call);                                                        \
        CHECK(r_ == 0, "%s returned %ld, expected 0 and %s from aio_error", #call, r_, #err); \
        int e_ = aio_error(cbp);                                                       \
        CHECK(e_ == (err), "%s: aio_error %d, expected %s", #call, e_, #err);          \
        CHECK(aio_return(cbp) == -1, "%s: aio_return", #call);                         \
    } while (0)

static inline uint64_t t_uaio_submitted(void) {
    uint64_t (*f)(void) = (uint64_t(*)(void))dlsym(RTLD_DEFAULT, "uaio_requests_submitted");
    return f ? f() : 0;
}

/* uaio_requests_in_flight through dlsym, so that preloaded (unlinked) builds can call it. */
static inline int t_uaio_in_flight(void) {
    int (*f)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "uaio_requests_in_flight");
    return f ? f() : -1;
}

/* 1 if libuaio sends `operation` to io_uring in this process, 0 for the worker pool. */
static inline int t_on_ring(const char *operation) {
    const char *(*f)(const char *) = (const char *(*)(const char *))dlsym(RTLD_DEFAULT, "uaio_backend_for");
    const char *b = f ? f(operation) : NULL;
    return b && strcmp(b, "uring") == 0;
}

/* Fails unless libuaio served at least `n` requests of this process: with glibc alone the
 * symbol does not exist, and a named version node would make glibc win silently. */
static inline void t_require_uaio(uint64_t n) {
    void *ours = dlsym(RTLD_DEFAULT, "uaio_requests_submitted");
    CHECK(ours != NULL, "libuaio is not loaded: glibc served these calls");
    Dl_info a, b;
    CHECK(dladdr(dlsym(RTLD_DEFAULT, "aio_read64"), &a) && dladdr(ours, &b), "dladdr");
    CHECK(strcmp(a.dli_fname, b.dli_fname) == 0, "aio_read64 binds to %s, not libuaio", a.dli_fname);
    CHECK(dladdr(dlsym(RTLD_DEFAULT, "aio_read"), &a) && strcmp(a.dli_fname, b.dli_fname) == 0,
          "aio_read binds to %s", a.dli_fname);
    CHECK(t_uaio_submitted() >= n, "libuaio served %llu requests, expected at least %llu",
          (unsigned long long)t_uaio_submitted(), (unsigned long long)n);
}

/* A temporary file of `size` bytes where byte i is (i * 7 + 3) & 0xff; unlinked at once. */
static inline int t_temp_file(size_t size) {
    char path[] = "/tmp/uaio-test-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    unlink(path);
    unsigned char buf[4096];
    for (size_t off = 0; off < size; off += sizeof buf) {
        size_t n = size - off < sizeof buf ? size - off : sizeof buf;
        for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)(((off + i) * 7 + 3) & 0xff);
        CHECK(pwrite(fd, buf, n, (off_t)off) == (ssize_t)n, "pwrite");
    }
    return fd;
}

static inline unsigned char t_pattern(size_t i) { return (unsigned char)((i * 7 + 3) & 0xff); }

/* Waits for cb with aio_suspend (at most `ms`), then checks aio_error and returns aio_return. */
static inline ssize_t t_wait(struct aiocb *cb, int ms) {
    const struct aiocb *list[1] = {cb};
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (aio_error(cb) == EINPROGRESS) {
        int r = aio_suspend(list, 1, &ts);
        CHECK(r == 0 || errno == EINTR, "aio_suspend timed out after %d ms", ms);
    }
    return aio_return(cb);
}

static inline void t_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
}

/* A numeric field of /proc/self/status ("Threads", "VmRSS"...), -1 if absent. */
static inline long t_status(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long n = -1;
    size_t len = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0 && line[len] == ':' && sscanf(line + len + 1, "%ld", &n) == 1) break;
    if (f) fclose(f);
    return n;
}

static inline int t_thread_count(void) { return (int)t_status("Threads"); }

/* A zero-filled aiocb for `n` bytes at `buf` on `fd` (offset 0, SIGEV_SIGNAL with signal 0:
 * no notification, as ported code that zero-fills its aiocbs gets). */
static inline void t_prep(struct aiocb *cb, int fd, volatile void *buf, size_t n) {
    memset(cb, 0, sizeof *cb);
    cb->aio_fildes = fd;
    cb->aio_buf = buf;
    cb->aio_nbytes = n;
}

#endif
