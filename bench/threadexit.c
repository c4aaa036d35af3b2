// What a thread's exit costs with a request in flight: COUNT rounds of (create a thread, which
// submits a 1-byte aio_read on an empty pipe, join it, write the byte, wait for the read).
// Modes: `wait` (the thread waits for its read before it exits: nothing is left in flight),
// `exit` (it exits at once: on the ring its read is cancelled and re-issued on the pool), and
// `none` (it submits nothing; the main thread does, after the join: the bare thread cost).
// Prints microseconds per round; run it with glibc, with libuaio preloaded, and with
// UAIO_BACKEND=pool, alternating, and take medians. Not a test.
//
//   gcc -O2 -pthread -o /tmp/threadexit bench/threadexit.c
//   for m in wait exit none; do /tmp/threadexit 2000 $m;
//       LD_PRELOAD=stage/lib/libuaio.so /tmp/threadexit 2000 $m; done
#define _GNU_SOURCE
#include <aio.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int p[2];
static struct aiocb cb;
static char byte;
static int mode;  // 0 wait, 1 exit, 2 none

static void submit(void) {
    memset(&cb, 0, sizeof cb);
    cb.aio_fildes = p[0];
    cb.aio_buf = &byte;
    cb.aio_nbytes = 1;
    if (aio_read(&cb) != 0) {
        perror("aio_read");
        exit(1);
    }
}

static void wait_read(void) {
    const struct aiocb *list[1] = {&cb};
    while (aio_error(&cb) == EINPROGRESS) aio_suspend(list, 1, NULL);
    if (aio_return(&cb) != 1) {
        fprintf(stderr, "read failed: %s\n", strerror(aio_error(&cb)));
        exit(1);
    }
}

static void *thread(void *arg) {
    if (mode == 2) return NULL;
    submit();
    if (mode == 0) {
        if (write(p[1], "x", 1) != 1) exit(1);
        wait_read();
    }
    return NULL;
}

int main(int argc, char **argv) {
    const char *modes[] = {"wait", "exit", "none"};
    if (argc < 3) {
        fprintf(stderr, "usage: threadexit COUNT wait|exit|none\n");
        return 2;
    }
    int n = atoi(argv[1]);
    for (mode = 0; mode < 3 && strcmp(argv[2], modes[mode]); mode++) {}
    if (n <= 0 || mode == 3) {
        fprintf(stderr, "usage: threadexit COUNT wait|exit|none\n");
        return 2;
    }
    if (pipe(p) != 0) return 1;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, thread, NULL) != 0) return 1;
        pthread_join(t, NULL);
        if (mode == 2) submit();
        if (mode != 0) {
            if (write(p[1], "x", 1) != 1) return 1;
            wait_read();
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double us = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 1e3 / n;
    printf("%s: %.1f us per round\n", modes[mode], us);
    return 0;
}
