/* The pool's two classes: blocked stream reads (unbounded class) never starve file I/O, busy
 * file workers never hold up stream I/O, the unbounded limit holds (a read past it waits for
 * a worker), and aio_init's aio_threads limits the bounded class when the environment is
 * silent. */
#include "helpers.h"

int main(void) {
    setenv("UAIO_MAX_UNBOUNDED_WORKERS", "3", 1);
    unsetenv("UAIO_MAX_BOUNDED_WORKERS");
    struct aioinit init;
    memset(&init, 0, sizeof init);
    init.aio_threads = 2;
    init.aio_idle_time = 1;
    aio_init(&init);

    enum { P = 4 };
    int pipes[P][2];
    char b[P][4];
    struct aiocb rd[P];
    for (int i = 0; i < P; i++) {
        CHECK(pipe(pipes[i]) == 0, "pipe");
        t_prep(&rd[i], pipes[i][0], b[i], 1);
        CHECK(aio_read(&rd[i]) == 0, "aio_read pipe %d", i);
    }
    t_sleep_ms(50);
    /* 3 unbounded workers block; file reads still run on bounded workers. */
    int fd = t_temp_file(1 << 20);
    static char fb[64][4096];
    static struct aiocb f[64];
    for (int i = 0; i < 64; i++) {
        t_prep(&f[i], fd, fb[i], 4096);
        f[i].aio_offset = i * 4096;
        CHECK(aio_read(&f[i]) == 0, "aio_read file %d", i);
    }
    for (int i = 0; i < 64; i++) CHECK(t_wait(&f[i], 5000) == 4096, "file read %d starved", i);
    /* Syncs say they may sleep, which would start workers up to the bounded limit (2). */
    static struct aiocb s[16];
    for (int i = 0; i < 16; i++) {
        memset(&s[i], 0, sizeof s[i]);
        s[i].aio_fildes = t_temp_file(4096);
        CHECK(aio_fsync(O_SYNC, &s[i]) == 0, "aio_fsync");
    }
    int most = 0;
    for (int i = 0; i < 16; i++) {
        int n = t_thread_count();
        if (n > most) most = n;
        CHECK(t_wait(&s[i], 10000) == 0, "fsync %d", i);
    }
    CHECK(most <= 1 + 3 + 2, "%d threads: more than main + 3 unbounded + 2 bounded", most);
    /* The fourth pipe read waits for an unbounded worker: none is free. */
    CHECK(write(pipes[3][1], "d", 1) == 1, "write");
    t_sleep_ms(100);
    int waiting_ok = 1;
    for (int i = 0; i < 3; i++) waiting_ok &= aio_error(&rd[i]) == EINPROGRESS;
    /* On the pool its data is there but no worker is: it must still wait. On the ring, pipe
     * reads wait in the kernel's poll and use no worker, so there is no limit to see. */
    int fourth_waits = aio_error(&rd[3]) == EINPROGRESS;
    int pool_reads = !t_on_ring("read");
    CHECK(!pool_reads || fourth_waits, "the fourth pipe read ran although all 3 unbounded workers were busy");
    for (int i = 0; i < 3; i++) CHECK(write(pipes[i][1], "x", 1) == 1, "write");
    for (int i = 0; i < P; i++) CHECK(t_wait(&rd[i], 5000) == 1, "pipe read %d", i);
    CHECK(waiting_ok, "blocked reads finished without data");
    int threads = t_thread_count();
    printf("pipe reads on the %s; %d threads at most\n", pool_reads ? "pool" : "ring", most);
    CHECK(threads <= 1 + 3 + 2, "%d threads", threads);

    /* The reverse: both bounded workers busy with large writes and more queued; a pipe
     * round trip still completes while they run. */
    size_t big = 128 << 20;
    char *bigbuf = malloc(big);
    memset(bigbuf, 'w', big);
    static struct aiocb bw[6];
    for (int i = 0; i < 6; i++) {
        t_prep(&bw[i], t_temp_file(0), bigbuf, big);
        CHECK(aio_write(&bw[i]) == 0, "big write %d", i);
    }
    struct aiocb pr, pw;
    char got[2];
    memset(&pr, 0, sizeof pr);
    memset(&pw, 0, sizeof pw);
    pr.aio_fildes = pipes[0][0]; pr.aio_buf = got; pr.aio_nbytes = 2;
    pw.aio_fildes = pipes[0][1]; pw.aio_buf = "ok"; pw.aio_nbytes = 2;
    CHECK(aio_read(&pr) == 0 && aio_write(&pw) == 0, "pipe round trip");
    CHECK(t_wait(&pr, 5000) == 2 && t_wait(&pw, 5000) == 2, "pipe I/O");
    CHECK(aio_error(&bw[5]) == EINPROGRESS, "the pipe round trip waited for the queued file writes");
    for (int i = 0; i < 6; i++) CHECK(t_wait(&bw[i], 60000) == (ssize_t)big, "big write %d", i);
    t_require_uaio(64 + 16 + P + 8);
    return T_EXIT_PASS;
}
