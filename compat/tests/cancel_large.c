/* aio_cancel of a large read blocked on an empty stream returns at once with AIO_CANCELED:
 * 1 MiB reads of a pipe and of a socket, and a readv of 4 x 256 KiB, each cancelled as soon as
 * it is submitted, 100 rounds each. (Sent to io-wq instead of the kernel's poll, such a read
 * could miss the cancel and hold aio_cancel until data came: 1 round in 20.) A watchdog writes
 * to the stream if aio_cancel has not returned after 3 s, and that round fails. */
#include "helpers.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <uaio.h>

static int wfd;
static _Atomic int in_cancel;
static _Atomic int rescued;

static void *watchdog(void *arg) {
    for (;;) {
        int seen = in_cancel;
        usleep(3000 * 1000);
        if (seen && seen == in_cancel) {  // the same aio_cancel for 3 s
            rescued++;
            if (write(wfd, "hello", 5) != 5) {}
        }
    }
    return NULL;
}

int main(void) {
    pthread_t w;
    CHECK(pthread_create(&w, NULL, watchdog, NULL) == 0, "pthread_create");
    enum { SIZE = 1 << 20 };
    char *buf = malloc(SIZE);
    CHECK(buf != NULL, "malloc");
    int round = 0;
    for (int kind = 0; kind < 3; kind++) {
        for (int i = 0; i < 100; i++, round++) {
            int p[2];
            CHECK(kind == 1 ? socketpair(AF_UNIX, SOCK_STREAM, 0, p) == 0 : pipe(p) == 0, "pipe");
            wfd = p[1];
            struct aiocb cb;
            struct iovec iov[4];
            for (int k = 0; k < 4; k++) iov[k] = (struct iovec){buf + k * (SIZE / 4), SIZE / 4};
            memset(&cb, 0, sizeof cb);
            cb.aio_fildes = p[0];
            if (kind == 2) {
                cb.aio_buf = iov, cb.aio_nbytes = 4, cb.aio_lio_opcode = LIO_READV;
                struct aiocb *list[1] = {&cb};
                CHECK(lio_listio(LIO_NOWAIT, list, 1, NULL) == 0, "lio_listio(LIO_READV)");
            } else {
                cb.aio_buf = buf, cb.aio_nbytes = SIZE;
                CHECK(aio_read(&cb) == 0, "aio_read");
            }
            in_cancel = round + 1;
            int r = aio_cancel(p[0], &cb);
            in_cancel = 0;
            CHECK(!rescued, "kind %d, round %d: aio_cancel returned %d only after the watchdog wrote", kind, i, r);
            CHECK(r == AIO_CANCELED && aio_error(&cb) == ECANCELED && aio_return(&cb) == -1,
                  "kind %d, round %d: aio_cancel %d, aio_error %d", kind, i, r, aio_error(&cb));
            close(p[0]);
            close(p[1]);
        }
    }
    t_require_uaio(300);
    printf("cancel_large: 300 large stream reads cancelled at once\n");
    return T_EXIT_PASS;
}
