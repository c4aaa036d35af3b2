/* lio_listio: LIO_WAIT and LIO_NOWAIT; NULL and LIO_NOP entries skipped; list notification
 * by signal and by thread, after every request is done; a bad entry makes LIO_WAIT fail
 * with EIO, and LIO_NOWAIT returns 0 (the entry keeps its error), while the rest still run; EINVAL for a bad mode, list
 * or notification. */
#include "helpers.h"
#include "uaio.h"
#include <sys/time.h>

enum { N = 16, SZ = 512 };
static unsigned char bufs[N][SZ];
static struct aiocb cbs[N];
static struct aiocb *list[N + 2];
static volatile int list_done, signalled, early;

static void on_list(union sigval v) {
    for (int i = 0; i < N; i++)
        if (list[i] && list[i]->aio_lio_opcode != LIO_NOP && aio_error(list[i]) == EINPROGRESS) early++;
    __atomic_store_n(&list_done, v.sival_int, __ATOMIC_RELEASE);
}
static void on_signal(int s, siginfo_t *si, void *c) {
    (void)s; (void)c;
    if (si->si_code == SI_ASYNCIO) signalled = si->si_value.sival_int;
}

static void on_alarm(int s) { (void)s; }

static void build(int fd, int op) {
    for (int i = 0; i < N; i++) {
        t_prep(&cbs[i], fd, bufs[i], SZ);
        cbs[i].aio_offset = i * SZ;
        cbs[i].aio_lio_opcode = (i % 5 == 4) ? LIO_NOP : op;
        list[i] = (i % 7 == 3) ? NULL : &cbs[i];
    }
}

int main(void) {
    int fd = t_temp_file(N * SZ);
    uint64_t before = t_uaio_submitted();

    build(fd, LIO_READ);
    CHECK(lio_listio(LIO_WAIT, list, N, NULL) == 0, "LIO_WAIT");
    int queued = 0;
    for (int i = 0; i < N; i++) {
        if (!list[i] || cbs[i].aio_lio_opcode == LIO_NOP) continue;
        queued++;
        CHECK(aio_error(&cbs[i]) == 0 && aio_return(&cbs[i]) == SZ, "entry %d", i);
        for (int j = 0; j < SZ; j++) CHECK(bufs[i][j] == t_pattern(i * SZ + j), "entry %d byte %d", i, j);
    }
    CHECK(t_uaio_submitted() - before == (uint64_t)queued, "skipped entries were submitted");

    /* LIO_NOWAIT with SIGEV_THREAD for the list. */
    build(fd, LIO_READ);
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD;
    ev.sigev_notify_function = on_list;
    ev.sigev_value.sival_int = 42;
    CHECK(lio_listio(LIO_NOWAIT, list, N, &ev) == 0, "LIO_NOWAIT");
    for (int i = 0; i < 500 && !__atomic_load_n(&list_done, __ATOMIC_ACQUIRE); i++) t_sleep_ms(10);
    CHECK(list_done == 42 && early == 0, "list notification %d, %d entries still running", list_done, early);
    for (int i = 0; i < N; i++)
        if (list[i] && cbs[i].aio_lio_opcode != LIO_NOP) CHECK(aio_return(&cbs[i]) == SZ, "entry %d", i);

    /* LIO_NOWAIT with SIGEV_SIGNAL for the list; writes this time. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGRTMIN + 1, &sa, NULL);
    build(fd, LIO_WRITE);
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGRTMIN + 1;
    ev.sigev_value.sival_int = 7;
    CHECK(lio_listio(LIO_NOWAIT, list, N, &ev) == 0, "LIO_NOWAIT signal");
    for (int i = 0; i < 500 && !signalled; i++) t_sleep_ms(10);
    CHECK(signalled == 7, "list signal %d", signalled);

    /* A bad entry: the others still run, each entry tells its own story. */
    build(fd, LIO_READ);
    cbs[1].aio_lio_opcode = 99;
    cbs[2].aio_offset = -1;
    CHECK_ERRNO(lio_listio(LIO_WAIT, list, N, NULL), EIO);
    CHECK(aio_error(&cbs[1]) == EINVAL && aio_error(&cbs[2]) == EINVAL, "bad entries %d %d",
          aio_error(&cbs[1]), aio_error(&cbs[2]));
    CHECK(aio_return(&cbs[1]) == -1, "bad entry returns -1");
    CHECK(aio_error(&cbs[0]) == 0 && aio_return(&cbs[0]) == SZ, "good entry ran");
    build(fd, LIO_READ);
    cbs[0].aio_reqprio = 99;
    CHECK(lio_listio(LIO_NOWAIT, list, N, NULL) == 0, "LIO_NOWAIT: an entry's error is its own");
    CHECK(aio_error(&cbs[0]) == EINVAL, "entry 0: %d", aio_error(&cbs[0]));
    CHECK(t_wait(&cbs[1], 5000) == SZ, "entry 1 still ran");

    /* A signal interrupts LIO_WAIT: -1/EINTR, and the requests go on and complete later. */
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    static char pb[2];
    static struct aiocb pr[2];
    struct aiocb *plist[2] = {&pr[0], &pr[1]};
    for (int i = 0; i < 2; i++) {
        t_prep(&pr[i], p[0], &pb[i], 1);
        pr[i].aio_lio_opcode = LIO_READ;
    }
    struct sigaction alarm_sa;
    memset(&alarm_sa, 0, sizeof alarm_sa);
    alarm_sa.sa_handler = on_alarm; /* no SA_RESTART */
    sigaction(SIGALRM, &alarm_sa, NULL);
    struct itimerval it = {{0, 0}, {0, 200000}};
    setitimer(ITIMER_REAL, &it, NULL);
    CHECK_ERRNO(lio_listio(LIO_WAIT, plist, 2, NULL), EINTR);
    CHECK(aio_error(&pr[0]) == EINPROGRESS && aio_error(&pr[1]) == EINPROGRESS, "still waiting for data");
    CHECK(write(p[1], "ab", 2) == 2, "write");
    CHECK(t_wait(&pr[0], 5000) == 1 && t_wait(&pr[1], 5000) == 1, "completed after the interruption");
    CHECK(pb[0] == 'a' && pb[1] == 'b', "in order: %c%c", pb[0], pb[1]);

    /* Argument errors. */
    CHECK_ERRNO(lio_listio(5, list, N, NULL), EINVAL);
    CHECK_ERRNO(lio_listio(LIO_WAIT, list, -1, NULL), EINVAL);
    CHECK_ERRNO(lio_listio(LIO_WAIT, list, UAIO_LISTIO_MAX + 1, NULL), EINVAL);
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = 12345;
    CHECK_ERRNO(lio_listio(LIO_NOWAIT, list, N, &ev), EINVAL);
    /* An empty list notifies at once. */
    list_done = 0;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD;
    ev.sigev_notify_function = on_list;
    ev.sigev_value.sival_int = 9;
    CHECK(lio_listio(LIO_NOWAIT, list, 0, &ev) == 0, "empty list");
    for (int i = 0; i < 500 && !__atomic_load_n(&list_done, __ATOMIC_ACQUIRE); i++) t_sleep_ms(10);
    CHECK(list_done == 9, "empty list notification");
    t_require_uaio(queued + 2);
    return T_EXIT_PASS;
}
