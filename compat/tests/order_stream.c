/* Streams: each direction runs in submission order, one request at a time (a pipe's bytes
 * are never interleaved or reordered), and the two directions of a socket run in parallel,
 * unlike glibc, which runs one request at a time per fd. */
#include "helpers.h"
#include <sys/socket.h>

enum { N = 64, REC = 32 };

int main(void) {
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    /* Reads first: all queued on the empty pipe, then the data arrives in one go. */
    static char in[N][REC], out[N * REC];
    static struct aiocb rd[N], wr[N];
    for (int i = 0; i < N; i++) {
        t_prep(&rd[i], p[0], in[i], REC);
        CHECK(aio_read(&rd[i]) == 0, "aio_read %d", i);
    }
    for (int i = 0; i < N * REC; i++) out[i] = (char)(i / REC);
    /* Writes through aio as well, in order, REC bytes each. */
    for (int i = 0; i < N; i++) {
        t_prep(&wr[i], p[1], out + i * REC, REC);
        CHECK(aio_write(&wr[i]) == 0, "aio_write %d", i);
    }
    for (int i = 0; i < N; i++) CHECK(t_wait(&wr[i], 10000) == REC, "write %d", i);
    for (int i = 0; i < N; i++) {
        CHECK(t_wait(&rd[i], 10000) == REC, "read %d", i);
        for (int j = 0; j < REC; j++) CHECK(in[i][j] == (char)i, "read %d got bytes of record %d", i, in[i][j]);
    }

    /* A socket: a read blocked on one end does not hold back a write on the same fd. */
    int s[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, s) == 0, "socketpair");
    char b[8];
    struct aiocb r, w;
    memset(&r, 0, sizeof r);
    memset(&w, 0, sizeof w);
    r.aio_fildes = s[0]; r.aio_buf = b; r.aio_nbytes = sizeof b;
    w.aio_fildes = s[0]; w.aio_buf = "ping"; w.aio_nbytes = 4;
    CHECK(aio_read(&r) == 0, "aio_read socket");
    t_sleep_ms(20);
    CHECK(aio_write(&w) == 0, "aio_write socket");
    CHECK(t_wait(&w, 5000) == 4, "the write finished while the read was blocked");
    CHECK(aio_error(&r) == EINPROGRESS, "the read is still waiting");
    char got[4];
    CHECK(read(s[1], got, 4) == 4 && memcmp(got, "ping", 4) == 0, "peer got the bytes");
    CHECK(write(s[1], "pong", 4) == 4, "peer write");
    CHECK(t_wait(&r, 5000) == 4 && memcmp(b, "pong", 4) == 0, "read");
    t_require_uaio(2 * N + 2);
    return T_EXIT_PASS;
}
