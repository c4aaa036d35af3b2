/* O_APPEND: writes land in submission order, whatever their aio_offset, through dup'ed fds
 * too; reads on the same file meanwhile run in parallel. */
#include "helpers.h"

enum { N = 200, REC = 64 };

int main(void) {
    char path[] = "/tmp/uaio-append-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    int afd = open(path, O_WRONLY | O_APPEND);
    int afd2 = dup(afd);
    unlink(path);
    static char recs[N][REC];
    static struct aiocb cbs[N];
    for (int i = 0; i < N; i++) {
        snprintf(recs[i], REC, "record %06d", i);
        t_prep(&cbs[i], i % 3 ? afd : afd2, recs[i], REC);
        cbs[i].aio_offset = (N - i) * 1000; /* ignored for O_APPEND */
        CHECK(aio_write(&cbs[i]) == 0, "aio_write %d", i);
    }
    for (int i = 0; i < N; i++) CHECK(t_wait(&cbs[i], 10000) == REC, "write %d", i);
    static char back[N * REC + 1];
    CHECK(pread(fd, back, sizeof back, 0) == N * REC, "file size");
    for (int i = 0; i < N; i++) CHECK(memcmp(back + i * REC, recs[i], REC) == 0, "record %d out of order", i);
    t_require_uaio(N);
    return T_EXIT_PASS;
}
