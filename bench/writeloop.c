// QD32 random 4 KiB writes to a file, reaped as fio's posixaio engine reaps: aio_error on every
// request in flight, aio_suspend on up to 8 of them when none is done. For instruction counts
// per write (the machine has no PMU), run it twice under callgrind and take the difference:
//
//   gcc -O2 -o /tmp/writeloop bench/writeloop.c
//   cp stage/lib/libuaio.so /tmp/libuaio.so && strip -g /tmp/libuaio.so
//   for n in 2000 6000; do UAIO_BACKEND=pool LD_PRELOAD=/tmp/libuaio.so valgrind
//       --tool=callgrind --separate-threads=yes --callgrind-out-file=/tmp/cg.$n.%p
//       /tmp/writeloop FILE $n; done      (one line)
//
// FILE: an existing file of at least 64 MiB (it is overwritten). Not a test.
#include <aio.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#define QD 32
int main(int argc, char **argv) {
    int n = atoi(argv[2]);
    int fd = open(argv[1], O_RDWR);
    static char buf[QD][4096];
    struct aiocb cb[QD]; memset(cb, 0, sizeof cb);
    int inflight[QD] = {0}; unsigned seed = 1; int done = 0, sub = 0;
    while (done < n) {
        for (int i = 0; i < QD && sub < n; i++) if (!inflight[i]) {
            seed = seed * 1103515245 + 12345;
            cb[i].aio_fildes = fd; cb[i].aio_buf = buf[i]; cb[i].aio_nbytes = 4096;
            cb[i].aio_offset = (off_t)((seed >> 8) % 16384) * 4096;
            if (aio_write(&cb[i])) { perror("aio_write"); return 1; }
            inflight[i] = 1; sub++;
        }
        const struct aiocb *list[QD]; int m = 0, got = 0;
        for (int i = 0; i < QD; i++) if (inflight[i]) {
            int e = aio_error(&cb[i]);
            if (e == EINPROGRESS) { if (m < 8) list[m++] = &cb[i]; continue; }
            if (aio_return(&cb[i]) != 4096) { fprintf(stderr, "bad\n"); return 1; }
            inflight[i] = 0; done++; got++;
        }
        if (!got && m) aio_suspend(list, m, NULL);
    }
    return 0;
}
