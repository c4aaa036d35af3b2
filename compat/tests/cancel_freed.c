/* aio_cancel(fd, NULL) never reads an aiocb after its request ended: once a program has seen a
 * result, aio_return'd it and freed the aiocb, the library must not touch it again. Each round
 * puts one aiocb alone in a page, reads an empty pipe into it, and lets a second thread poll it:
 * that thread takes the result as soon as aio_error shows it and unmaps the page, while the main
 * thread's aio_cancel(fd, NULL) is still waiting for the cancel to take effect. A library that
 * reads the aiocb to learn the outcome faults. The answer must match what the poller saw. */
#include "helpers.h"
#include <sys/mman.h>

#define ROUNDS 2000

static struct aiocb *volatile target;
static volatile int seen_error;
static volatile int ready;

static void *poller(void *arg) {
    (void)arg;
    struct aiocb *cb = target;
    int e;
    ready = 1;
    while ((e = aio_error(cb)) == EINPROGRESS) {}
    aio_return(cb);
    seen_error = e;
    munmap(cb, 4096); /* the aiocb is gone: any later read of it faults */
    return NULL;
}

int main(void) {
    long page = sysconf(_SC_PAGESIZE);
    static char buf[64];
    int wrong = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int p[2];
        CHECK(pipe(p) == 0, "pipe");
        struct aiocb *cb = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(cb != MAP_FAILED, "mmap");
        t_prep(cb, p[0], buf, sizeof buf);
        CHECK(aio_read(cb) == 0, "aio_read");
        target = cb;
        ready = 0;
        pthread_t t;
        CHECK(pthread_create(&t, NULL, poller, NULL) == 0, "pthread_create");
        while (!ready) {} /* it polls: it may reap the cancelled read's completion first */
        int r = aio_cancel(p[0], NULL);
        pthread_join(t, NULL);
        if (!(r == AIO_CANCELED && seen_error == ECANCELED)) {
            if (wrong++ < 5) printf("round %d: aio_cancel said %d, the poller saw error %d\n", i, r, seen_error);
        }
        close(p[0]);
        close(p[1]);
    }
    printf("%d rounds, %d wrong answers\n", ROUNDS, wrong);
    CHECK(wrong == 0, "aio_cancel's answer differs from the request's end");
    t_require_uaio(ROUNDS);
    return T_EXIT_PASS;
}
