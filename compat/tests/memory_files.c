/* Files on tmpfs (/dev/shm): no RWF_NOWAIT there, yet reads are memory copies. Reads, writes,
 * O_APPEND writes and fsync must all be right, many in flight at once, on every backend. */
#include "helpers.h"

enum { N = 64, SZ = 4096 };

int main(void) {
    char path[] = "/dev/shm/uaio-test-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        printf("no /dev/shm here\n");
        return T_EXIT_SKIP;
    }
    int afd = open(path, O_WRONLY | O_APPEND);
    unlink(path);
    static unsigned char data[N][SZ], back[N][SZ];
    static struct aiocb w[N], r[N], a[4], s;
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < SZ; j++) data[i][j] = t_pattern((size_t)i * SZ + j);
        t_prep(&w[i], fd, data[i], SZ);
        w[i].aio_offset = (off_t)i * SZ;
        CHECK(aio_write(&w[i]) == 0, "aio_write %d", i);
    }
    for (int i = 0; i < N; i++) CHECK(t_wait(&w[i], 5000) == SZ, "write %d", i);
    t_prep(&s, fd, NULL, 0);
    CHECK(aio_fsync(O_SYNC, &s) == 0 && t_wait(&s, 5000) == 0, "fsync");
    for (int i = 0; i < N; i++) {
        t_prep(&r[i], fd, back[i], SZ);
        r[i].aio_offset = (off_t)(N - 1 - i) * SZ;
        CHECK(aio_read(&r[i]) == 0, "aio_read %d", i);
    }
    for (int i = 0; i < N; i++) {
        CHECK(t_wait(&r[i], 5000) == SZ, "read %d", i);
        CHECK(memcmp(back[i], data[N - 1 - i], SZ) == 0, "read %d: wrong data", i);
    }
    /* Appends land in order after the N blocks. */
    static char rec[4][16];
    for (int i = 0; i < 4; i++) {
        snprintf(rec[i], sizeof rec[i], "append %d.....", i);
        t_prep(&a[i], afd, rec[i], 16);
        CHECK(aio_write(&a[i]) == 0, "append %d", i);
    }
    for (int i = 0; i < 4; i++) CHECK(t_wait(&a[i], 5000) == 16, "append %d", i);
    char tail[64];
    CHECK(pread(fd, tail, 64, (off_t)N * SZ) == 64, "file size");
    for (int i = 0; i < 4; i++) CHECK(memcmp(tail + 16 * i, rec[i], 16) == 0, "append %d out of order", i);
    /* A read past the end is 0, a read across it is short. */
    t_prep(&r[0], fd, back[0], SZ);
    r[0].aio_offset = (off_t)N * SZ + 32;
    CHECK(aio_read(&r[0]) == 0 && t_wait(&r[0], 5000) == 32, "short read at the end");
    t_require_uaio(2 * N + 6);
    return T_EXIT_PASS;
}
