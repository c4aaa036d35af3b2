// The ceiling of a one-worker pool for random 4 KiB buffered writes on this machine: the main
// thread touches each buffer and posts it into a 32-entry ring, one worker thread pwrites it and
// posts the count back. No lock, no sleep (both sides spin), no statistics, no notification:
// everything the library does around the pwrite, left out. Compare it with fio's psync (one
// thread, the write where the buffer was filled) and with fio's posixaio on libuaio.so:
//
//   gcc -O2 -pthread -o /tmp/poolceiling bench/poolceiling.c && /tmp/poolceiling FILE [SECONDS]
//
// FILE: an existing file of at least 64 MiB (it is overwritten). Not a test.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#define QD 32
static int fd;
static char buf[QD][4096] __attribute__((aligned(4096)));
static off_t off[QD];
static _Atomic unsigned posted, written; // the ring's two counters (release/acquire pairs)
static _Atomic int stop;

static void *worker(void *arg) {
    (void)arg;
    unsigned next = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        if (next == atomic_load_explicit(&posted, memory_order_acquire)) { __builtin_ia32_pause(); continue; }
        unsigned i = next % QD;
        if (pwrite(fd, buf[i], 4096, off[i]) != 4096) { perror("pwrite"); exit(1); }
        atomic_store_explicit(&written, ++next, memory_order_release);
    }
    return NULL;
}

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: poolceiling FILE [SECONDS]\n"); return 2; }
    double seconds = argc > 2 ? atof(argv[2]) : 3;
    if ((fd = open(argv[1], O_RDWR)) < 0) { perror("open"); return 1; }
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    unsigned seed = 1, tail = 0, done = 0;
    long n = 0;
    double start = now(), end = start;
    for (;;) {
        unsigned d = atomic_load_explicit(&written, memory_order_acquire);
        n += d - done;
        done = d;
        while (tail - done < QD) {
            unsigned i = tail % QD;
            seed = seed * 1103515245 + 12345;
            off[i] = (off_t)((seed >> 8) % 16384) * 4096;
            memset(buf[i], (int)tail, 64);
            atomic_store_explicit(&posted, ++tail, memory_order_release);
        }
        if ((n & 1023) == 0 && (end = now()) - start >= seconds) break;
        __builtin_ia32_pause();
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    printf("%.0f writes/s\n", n / (end - start));
    return 0;
}
