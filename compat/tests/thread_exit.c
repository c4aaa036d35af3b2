/* A request belongs to the process, not to the thread that submitted it: every kind of request
 * submitted by a thread that then exits completes with its true result, as with glibc. On the
 * ring this is not given: io_uring ties a request to its submitting task, and at the task's
 * exit cancels its poll-armed reads (ECANCELED when the data comes) and finishes its uncached
 * buffered reads from a kernel worker without the process's memory (EFAULT). Covered: pipe and
 * socket reads, a blocked pipe write, uncached and cached file reads, lio_listio, a uaio_ops.h
 * open, a chain of SIGEV_THREAD callbacks that each submit the next read (the notification
 * thread returns at once), many connection threads, and aio_cancel of a request whose
 * submitter is gone (cancelled, and the data it did not take still in the pipe). */
#include "helpers.h"

#include <sys/socket.h>
#include <uaio.h>

#define FILE_SIZE (4 << 20)

static void wait_done(struct aiocb *cb) {
    const struct aiocb *list[1] = {cb};
    uint64_t start = (uint64_t)time(NULL);
    while (aio_error(cb) == EINPROGRESS) {
        struct timespec ts = {1, 0};
        CHECK(aio_suspend(list, 1, &ts) == 0 || errno == EAGAIN || errno == EINTR, "aio_suspend");
        CHECK((uint64_t)time(NULL) - start < 20, "request still in progress after 20 s");
    }
}

static void expect(struct aiocb *cb, ssize_t n, const char *what) {
    wait_done(cb);
    int e = aio_error(cb);
    ssize_t r = aio_return(cb);
    CHECK(e == 0 && r == n, "%s: aio_error %d (%s), aio_return %zd, expected %zd", what, e, strerror(e), r, n);
}

/* Runs `submit(arg)` on a thread that exits at once, and joins it. */
static void on_exiting_thread(void *(*submit)(void *), void *arg) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, submit, arg) == 0, "pthread_create");
    CHECK(pthread_join(t, NULL) == 0, "pthread_join");
}

static void *submit_read(void *arg) {
    CHECK(aio_read(arg) == 0, "aio_read");
    return NULL;
}
static void *submit_write(void *arg) {
    CHECK(aio_write(arg) == 0, "aio_write");
    return NULL;
}

static void prep(struct aiocb *cb, int fd, void *buf, size_t n, off_t off) {
    memset(cb, 0, sizeof *cb);
    cb->aio_fildes = fd;
    cb->aio_buf = buf;
    cb->aio_nbytes = n;
    cb->aio_offset = off;
}

/* A read on an empty stream whose submitter exited gets the data written later. */
static void stream_read(int rfd, int wfd, const char *what) {
    char buf[64] = {0};
    struct aiocb cb;
    prep(&cb, rfd, buf, sizeof buf, 0);
    on_exiting_thread(submit_read, &cb);
    usleep(20000);
    CHECK(aio_error(&cb) == EINPROGRESS, "%s: done before the data came", what);
    CHECK(write(wfd, "hello", 5) == 5, "write");
    expect(&cb, 5, what);
    CHECK(memcmp(buf, "hello", 5) == 0, "%s: wrong data", what);
}

/* A write to a full pipe, submitted by a thread that exits, is written once there is room. */
static void blocked_write(void) {
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    CHECK(fcntl(p[1], F_SETPIPE_SZ, 4096) >= 0, "F_SETPIPE_SZ");
    int fl = fcntl(p[1], F_GETFL);
    CHECK(fcntl(p[1], F_SETFL, fl | O_NONBLOCK) == 0, "O_NONBLOCK");
    char junk[4096];
    memset(junk, 'j', sizeof junk);
    size_t full = 0;
    for (ssize_t w; (w = write(p[1], junk, sizeof junk)) > 0;) full += (size_t)w;
    CHECK(fcntl(p[1], F_SETFL, fl) == 0, "blocking again");
    static char msg[4096];
    memset(msg, 'm', sizeof msg);
    struct aiocb cb;
    prep(&cb, p[1], msg, sizeof msg, 0);
    on_exiting_thread(submit_write, &cb);
    usleep(20000);
    CHECK(aio_error(&cb) == EINPROGRESS, "blocked write: done with a full pipe");
    CHECK(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0, "O_NONBLOCK");
    char sink[8192];
    size_t drained = 0;
    uint64_t start = (uint64_t)time(NULL);
    while (aio_error(&cb) == EINPROGRESS || drained < full + sizeof msg) {
        ssize_t r = read(p[0], sink, sizeof sink);
        if (r > 0) drained += (size_t)r;
        else if (aio_error(&cb) != EINPROGRESS) break;
        else usleep(1000);
        CHECK((uint64_t)time(NULL) - start < 20, "blocked write: still in progress after 20 s");
    }
    expect(&cb, sizeof msg, "blocked pipe write");
    CHECK(drained == full + sizeof msg, "blocked write: %zu bytes came out, expected %zu", drained, full + sizeof msg);
    close(p[0]);
    close(p[1]);
}

static int make_file(const char *name) {
    int fd = open(name, O_CREAT | O_RDWR | O_TRUNC, 0600);
    CHECK(fd >= 0, "open %s", name);
    unsigned char *data = malloc(FILE_SIZE);
    for (size_t i = 0; i < FILE_SIZE; i++) data[i] = (unsigned char)(i * 7 + i / 4096);
    CHECK(write(fd, data, FILE_SIZE) == FILE_SIZE, "write file");
    CHECK(fsync(fd) == 0, "fsync");
    free(data);
    return fd;
}

static int check_bytes(const unsigned char *b, size_t n, off_t off) {
    for (size_t i = 0; i < n; i++) {
        size_t at = (size_t)off + i;
        if (b[i] != (unsigned char)(at * 7 + at / 4096)) return 0;
    }
    return 1;
}

struct batch {
    struct aiocb cbs[8];
    unsigned char *bufs[8];
    int n;
};
static void *submit_batch(void *arg) {
    struct batch *b = arg;
    for (int i = 0; i < b->n; i++) CHECK(aio_read(&b->cbs[i]) == 0, "aio_read %d", i);
    return NULL;
}

/* Reads of a file whose pages were dropped (and, the second time, of cached pages), submitted
 * by a thread that exits at once. */
static void file_reads(int fd, int uncached) {
    for (int round = 0; round < 4; round++) {
        if (uncached) CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0, "fadvise");
        struct batch b = {.n = 8};
        for (int i = 0; i < b.n; i++) {
            size_t n = 64 << 10;
            off_t off = (off_t)((i * 517 + round * 131) % (FILE_SIZE / 4096 - 16)) * 4096;
            b.bufs[i] = malloc(n);
            prep(&b.cbs[i], fd, b.bufs[i], n, off);
        }
        on_exiting_thread(submit_batch, &b);
        for (int i = 0; i < b.n; i++) {
            expect(&b.cbs[i], 64 << 10, uncached ? "uncached file read" : "cached file read");
            CHECK(check_bytes(b.bufs[i], 64 << 10, b.cbs[i].aio_offset), "read %d: wrong data", i);
            free(b.bufs[i]);
        }
    }
}

/* lio_listio(LIO_NOWAIT) of a pipe read, a socket read and an uncached file read. */
struct list_args {
    struct aiocb *list[3];
};
static void *submit_list(void *arg) {
    struct list_args *a = arg;
    CHECK(lio_listio(LIO_NOWAIT, a->list, 3, NULL) == 0, "lio_listio");
    return NULL;
}
static void list_of_three(int fd) {
    int p[2], s[2];
    CHECK(pipe(p) == 0 && socketpair(AF_UNIX, SOCK_STREAM, 0, s) == 0, "pipe, socketpair");
    CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0, "fadvise");
    char pb[16], sb[16];
    unsigned char *fb = malloc(128 << 10);
    struct aiocb cbs[3];
    prep(&cbs[0], p[0], pb, sizeof pb, 0);
    prep(&cbs[1], s[0], sb, sizeof sb, 0);
    prep(&cbs[2], fd, fb, 128 << 10, 1 << 20);
    for (int i = 0; i < 2; i++) cbs[i].aio_lio_opcode = LIO_READ;
    cbs[2].aio_lio_opcode = LIO_READ;
    struct list_args a = {{&cbs[0], &cbs[1], &cbs[2]}};
    on_exiting_thread(submit_list, &a);
    usleep(20000);
    CHECK(write(p[1], "pipe", 4) == 4 && write(s[1], "sock", 4) == 4, "write");
    expect(&cbs[0], 4, "listed pipe read");
    expect(&cbs[1], 4, "listed socket read");
    expect(&cbs[2], 128 << 10, "listed file read");
    CHECK(memcmp(pb, "pipe", 4) == 0 && memcmp(sb, "sock", 4) == 0, "listed: wrong data");
    CHECK(check_bytes(fb, 128 << 10, 1 << 20), "listed file read: wrong data");
    free(fb);
    close(p[0]), close(p[1]), close(s[0]), close(s[1]);
}

/* A uaio_ops.h open, submitted by a thread that exits. */
static int (*uaio_submit_fn)(struct uaiocb *);
static void *submit_open(void *arg) {
    CHECK(uaio_submit_fn(arg) == 0, "uaio_submit");
    return NULL;
}
static void extended_open(void) {
    uaio_submit_fn = (int (*)(struct uaiocb *))dlsym(RTLD_DEFAULT, "uaio_submit");
    CHECK(uaio_submit_fn != NULL, "uaio_submit is not loaded");
    for (int i = 0; i < 8; i++) {
        struct uaiocb cb;
        uaio_prep_openat(&cb, AT_FDCWD, "data", O_RDONLY, 0);
        on_exiting_thread(submit_open, &cb);
        wait_done(&cb.aiocb);
        CHECK(aio_error(&cb.aiocb) == 0, "openat: %d", aio_error(&cb.aiocb));
        int fd = (int)aio_return(&cb.aiocb);
        CHECK(fd >= 0 && fcntl(fd, F_GETFD) >= 0, "openat gave %d", fd);
        close(fd);
    }
}

/* An event loop's chain: each SIGEV_THREAD callback checks its read and submits the next. */
#define CHAIN 24
static int chain_pipe[2];
static struct aiocb chain_cb;
static char chain_buf[1];
static int chain_done, chain_failed;
static void submit_chain(void);
static void on_chain(union sigval v) {
    if (aio_error(&chain_cb) != 0 || aio_return(&chain_cb) != 1 || chain_buf[0] != (char)('a' + chain_done % 26))
        __atomic_store_n(&chain_failed, 1 + chain_done, __ATOMIC_RELEASE);
    int n = __atomic_add_fetch(&chain_done, 1, __ATOMIC_ACQ_REL);
    if (n < CHAIN) submit_chain();
}
static void submit_chain(void) {
    prep(&chain_cb, chain_pipe[0], chain_buf, 1, 0);
    chain_cb.aio_sigevent.sigev_notify = SIGEV_THREAD;
    chain_cb.aio_sigevent.sigev_notify_function = on_chain;
    if (aio_read(&chain_cb) != 0) __atomic_store_n(&chain_failed, 1000 + errno, __ATOMIC_RELEASE);
}
static void callback_chain(void) {
    CHECK(pipe(chain_pipe) == 0, "pipe");
    submit_chain();
    for (int i = 0; i < CHAIN; i++) {
        usleep(5000);  // the callback that submitted the read has returned by now
        char c = (char)('a' + i % 26);
        CHECK(write(chain_pipe[1], &c, 1) == 1, "write");
        uint64_t start = (uint64_t)time(NULL);
        while (__atomic_load_n(&chain_done, __ATOMIC_ACQUIRE) <= i && !__atomic_load_n(&chain_failed, __ATOMIC_ACQUIRE)) {
            CHECK((uint64_t)time(NULL) - start < 20, "link %d never completed", i);
            usleep(1000);
        }
        int f = __atomic_load_n(&chain_failed, __ATOMIC_ACQUIRE);
        CHECK(f == 0, "link %d failed (aio_error %d)", f - 1, f > 1000 ? f - 1000 : aio_error(&chain_cb));
    }
}

/* Thread-per-connection: each thread submits its connection's read and exits. */
#define CONNECTIONS 64
static void connections(void) {
    int s[CONNECTIONS][2];
    char buf[CONNECTIONS][8];
    static struct aiocb cbs[CONNECTIONS];
    for (int i = 0; i < CONNECTIONS; i++) {
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, s[i]) == 0, "socketpair");
        prep(&cbs[i], s[i][0], buf[i], sizeof buf[i], 0);
        on_exiting_thread(submit_read, &cbs[i]);
    }
    usleep(20000);
    for (int i = 0; i < CONNECTIONS; i++) CHECK(write(s[i][1], &i, sizeof i) == sizeof i, "write");
    for (int i = 0; i < CONNECTIONS; i++) {
        expect(&cbs[i], sizeof(int), "connection read");
        CHECK(memcmp(buf[i], &i, sizeof i) == 0, "connection %d: wrong data", i);
        close(s[i][0]), close(s[i][1]);
    }
}

/* aio_cancel of a blocked read whose submitter is gone: cancelled, and the byte written after
 * it is still in the pipe. */
static void cancel_orphan(void) {
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    char buf[8];
    struct aiocb cb;
    prep(&cb, p[0], buf, sizeof buf, 0);
    on_exiting_thread(submit_read, &cb);
    usleep(20000);
    CHECK(aio_error(&cb) == EINPROGRESS, "orphan: done with nothing to read");
    int r = aio_cancel(p[0], &cb);
    CHECK(r == AIO_CANCELED, "aio_cancel returned %d", r);
    CHECK(aio_error(&cb) == ECANCELED && aio_return(&cb) == -1, "orphan: aio_error %d", aio_error(&cb));
    CHECK(write(p[1], "x", 1) == 1, "write");
    usleep(20000);
    char c = 0;
    CHECK(read(p[0], &c, 1) == 1 && c == 'x', "the cancelled read took the byte");
    close(p[0]), close(p[1]);
}

int main(void) {
    int p[2], s[2];
    CHECK(pipe(p) == 0 && socketpair(AF_UNIX, SOCK_STREAM, 0, s) == 0, "pipe, socketpair");
    for (int i = 0; i < 4; i++) {
        stream_read(p[0], p[1], "pipe read");
        stream_read(s[0], s[1], "socket read");
    }
    blocked_write();
    int fd = make_file("data");
    file_reads(fd, 1);
    file_reads(fd, 0);
    list_of_three(fd);
    extended_open();
    callback_chain();
    connections();
    cancel_orphan();
    close(fd);
    unlink("data");
    t_require_uaio(50);
    printf("thread_exit: every request outlived its submitting thread\n");
    return T_EXIT_PASS;
}
