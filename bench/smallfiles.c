/* Small-file metadata work, four ways: over N files of 4 KiB in DIR,
 *   stat     statx of every file
 *   read     open, read 4 KiB, close
 *   create   create, write 4 KiB, fsync, close, unlink
 * by a plain synchronous loop ("sync"), by a pthread pool of T threads doing the same calls
 * ("threads"), and through libuaio ("uaio": uaio_submit, aio_read/aio_write/aio_fsync, reaped
 * with aio_waitcomplete, DEPTH files in flight; UAIO_BACKEND picks the ring or the pool).
 *
 *   smallfiles setup DIR N           make the files
 *   smallfiles run DIR N MODE PHASE [T|DEPTH]
 * prints one line: "MODE PHASE seconds ops/s". bench/smallfiles.py alternates and reports.
 * Not a test. Link with -luaio. */
#define _GNU_SOURCE
#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uaio.h>

static int dirfd_, nfiles;
static char data[4096];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void name_of(int i, char *buf) { snprintf(buf, 32, "f%06d", i); }
static void fail(const char *what, int i, int e) {
    fprintf(stderr, "smallfiles: %s on file %d: %s\n", what, i, strerror(e));
    exit(1);
}

/* One file's work, synchronously (the sync loop and the thread pool). */
static void one_sync(int phase, int i) {
    char name[32], buf[4096];
    name_of(i, name);
    if (phase == 's') {
        struct statx sx;
        if (statx(dirfd_, name, 0, STATX_SIZE, &sx) != 0 || sx.stx_size != 4096) fail("statx", i, errno);
    } else if (phase == 'r') {
        int fd = openat(dirfd_, name, O_RDONLY);
        if (fd < 0 || pread(fd, buf, sizeof buf, 0) != 4096) fail("open/read", i, errno);
        close(fd);
    } else {
        name[0] = 'n';
        int fd = openat(dirfd_, name, O_CREAT | O_WRONLY | O_TRUNC, 0600);
        if (fd < 0 || pwrite(fd, data, sizeof data, 0) != 4096 || fsync(fd) != 0) fail("create/write/fsync", i, errno);
        close(fd);
        if (unlinkat(dirfd_, name, 0) != 0) fail("unlink", i, errno);
    }
}

static int next_index, phase_g;
static void *worker(void *arg) {
    for (;;) {
        int i = __atomic_fetch_add(&next_index, 1, __ATOMIC_RELAXED);
        if (i >= nfiles) return NULL;
        one_sync(phase_g, i);
    }
}

/* libuaio: each slot walks one file through its steps; completions come from aio_waitcomplete. */
struct slot {
    struct uaiocb u;  /* first: &slot->u.aiocb is the slot */
    struct aiocb io;
    struct statx sx;
    char name[32];
    char buf[4096];
    int file, step, fd;
};

static int start_step(struct slot *s, int phase) {
    switch (phase * 16 + s->step) {
    case 's' * 16 + 0: uaio_prep_statx(&s->u, dirfd_, s->name, 0, STATX_SIZE, &s->sx); return uaio_submit(&s->u);
    case 'r' * 16 + 0: uaio_prep_openat(&s->u, dirfd_, s->name, O_RDONLY, 0); return uaio_submit(&s->u);
    case 'r' * 16 + 1:
    case 'c' * 16 + 1:
        memset(&s->io, 0, sizeof s->io);
        s->io.aio_fildes = s->fd;
        s->io.aio_buf = s->buf;
        s->io.aio_nbytes = sizeof s->buf;
        return phase == 'r' ? aio_read(&s->io) : aio_write(&s->io);
    case 'r' * 16 + 2:
    case 'c' * 16 + 3: uaio_prep_close(&s->u, s->fd); return uaio_submit(&s->u);
    case 'c' * 16 + 0: uaio_prep_openat(&s->u, dirfd_, s->name, O_CREAT | O_WRONLY | O_TRUNC, 0600); return uaio_submit(&s->u);
    case 'c' * 16 + 2:
        memset(&s->io, 0, sizeof s->io);
        s->io.aio_fildes = s->fd;
        return aio_fsync(O_SYNC, &s->io);
    case 'c' * 16 + 4: uaio_prep_unlinkat(&s->u, dirfd_, s->name, 0); return uaio_submit(&s->u);
    }
    return 1;  /* done */
}

static void run_uaio(int phase, int depth) {
    struct slot *slots = calloc((size_t)depth, sizeof *slots);
    int next = 0, done = 0;
    for (int k = 0; k < depth && next < nfiles; k++, next++) {
        struct slot *s = &slots[k];
        s->file = next, s->step = 0;
        name_of(next, s->name);
        if (phase == 'c') s->name[0] = 'n';
        if (start_step(s, phase) != 0) fail("submit", next, errno);
    }
    while (done < nfiles) {
        struct aiocb *cb;
        ssize_t r = aio_waitcomplete(&cb, NULL);
        if (!cb) fail("aio_waitcomplete", -1, errno);
        struct slot *s = NULL;
        for (int k = 0; k < depth; k++)
            if (cb == &slots[k].u.aiocb || cb == &slots[k].io) { s = &slots[k]; break; }
        if (r < 0) fail("a step", s->file, errno);
        if (s->step == 0 && phase != 's') s->fd = (int)r;
        s->step++;
        int more = start_step(s, phase);
        if (more < 0) fail("submit", s->file, errno);
        if (more == 0) continue;
        done++;
        if (next < nfiles) {
            s->file = next++, s->step = 0;
            name_of(s->file, s->name);
            if (phase == 'c') s->name[0] = 'n';
            if (start_step(s, phase) != 0) fail("submit", s->file, errno);
        }
    }
    free(slots);
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: smallfiles setup|run DIR N [MODE PHASE [T|DEPTH]]\n"); return 2; }
    dirfd_ = open(argv[2], O_RDONLY | O_DIRECTORY);
    nfiles = atoi(argv[3]);
    if (dirfd_ < 0 || nfiles <= 0) { perror(argv[2]); return 2; }
    memset(data, 'x', sizeof data);
    if (strcmp(argv[1], "setup") == 0) {
        for (int i = 0; i < nfiles; i++) {
            char name[32];
            name_of(i, name);
            int fd = openat(dirfd_, name, O_CREAT | O_WRONLY | O_TRUNC, 0600);
            if (fd < 0 || write(fd, data, sizeof data) != 4096) fail("setup", i, errno);
            close(fd);
        }
        return 0;
    }
    if (argc < 6) return 2;
    const char *mode = argv[4];
    phase_g = argv[5][0];
    int arg = argc > 6 ? atoi(argv[6]) : 8;
    double t0 = now();
    if (strcmp(mode, "sync") == 0) {
        for (int i = 0; i < nfiles; i++) one_sync(phase_g, i);
    } else if (strcmp(mode, "threads") == 0) {
        pthread_t t[256];
        for (int k = 0; k < arg; k++) pthread_create(&t[k], NULL, worker, NULL);
        for (int k = 0; k < arg; k++) pthread_join(t[k], NULL);
    } else {
        run_uaio(phase_g, arg);
    }
    double s = now() - t0;
    printf("%s %c %.4f %.0f\n", mode, phase_g, s, nfiles / s);
    return 0;
}
