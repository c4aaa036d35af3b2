// Random 4 KiB requests to a file at a fixed depth, reaped as fio's posixaio engine reaps:
// aio_error on every request in flight, aio_suspend on up to 8 of them when none is done.
// Modes: `write` (QD32 page-cache writes: the pool's serial path) and `direct` (O_DIRECT reads
// at QD8: the ring's submit and reap path on the caller's thread). For instruction counts per
// request (the machine has no PMU), run it twice under callgrind and take the difference:
//
//   gcc -O2 -o /tmp/aioloop bench/aioloop.c
//   cp stage/lib/libuaio.so /tmp/libuaio.so && strip -g /tmp/libuaio.so
//   for n in 2000 6000; do LD_PRELOAD=/tmp/libuaio.so valgrind --tool=callgrind
//       --separate-threads=yes --callgrind-out-file=/tmp/cg.$n.%p /tmp/aioloop FILE $n write; done
//
// (one line; UAIO_BACKEND=pool for the pool alone). `write` needs UAIO_BACKEND=pool under
// valgrind: with the ring, the waiter sleeps in io_uring_enter for the worker's doorbell, and
// valgrind, which runs one thread at a time, never ran the worker again (the run hung).
// FILE: an existing file of at least 64 MiB (`write` overwrites it). Not a test.
#define _GNU_SOURCE
#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#define MAXQD 32
int main(int argc, char **argv) {
    if (argc < 4 || (strcmp(argv[3], "write") && strcmp(argv[3], "direct"))) {
        fprintf(stderr, "usage: aioloop FILE COUNT write|direct\n");
        return 2;
    }
    int n = atoi(argv[2]);
    int direct = !strcmp(argv[3], "direct");
    int qd = direct ? 8 : 32;
    int fd = open(argv[1], direct ? O_RDONLY | O_DIRECT : O_RDWR);
    if (fd < 0) { perror("open"); return 1; }
    static char buf[MAXQD][4096] __attribute__((aligned(4096)));
    struct aiocb cb[MAXQD]; memset(cb, 0, sizeof cb);
    int inflight[MAXQD] = {0}; unsigned seed = 1; int done = 0, sub = 0;
    while (done < n) {
        for (int i = 0; i < qd && sub < n; i++) if (!inflight[i]) {
            seed = seed * 1103515245 + 12345;
            cb[i].aio_fildes = fd; cb[i].aio_buf = buf[i]; cb[i].aio_nbytes = 4096;
            cb[i].aio_offset = (off_t)((seed >> 8) % 16384) * 4096;
            if ((direct ? aio_read : aio_write)(&cb[i])) { perror("submit"); return 1; }
            inflight[i] = 1; sub++;
        }
        const struct aiocb *list[MAXQD]; int m = 0, got = 0;
        for (int i = 0; i < qd; i++) if (inflight[i]) {
            int e = aio_error(&cb[i]);
            if (e == EINPROGRESS) { if (m < 8) list[m++] = &cb[i]; continue; }
            if (aio_return(&cb[i]) != 4096) { fprintf(stderr, "bad\n"); return 1; }
            inflight[i] = 0; done++; got++;
        }
        if (!got && m) aio_suspend(list, m, NULL);
    }
    return 0;
}
