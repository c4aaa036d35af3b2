/* A request the program has seen end is done for aio_cancel and for the in-flight count, even
 * while the library still does its bookkeeping (a pool worker publishes each result of a batch
 * as it comes, and retires the batch after). A write on file A, placed among 48 writes on file
 * B so that it runs in a worker's batch, is waited for and reaped; nothing else was submitted on
 * A: aio_cancel(A, NULL) must say AIO_ALLDONE, and once B's writes are reaped too, nothing is
 * in flight. */
#include "helpers.h"

#define NB 48
#define ROUNDS 1000

int main(void) {
    int fa = t_temp_file(1 << 16), fb = t_temp_file(1 << 16);
    static char buf[NB + 1][4096];
    struct aiocb a, b[NB];
    struct aiocb *list[NB + 1];
    int not_canceled = 0, other = 0, counted = 0;
    for (int i = 0; i < ROUNDS; i++) {
        t_prep(&a, fa, buf[0], 4096);
        a.aio_lio_opcode = LIO_WRITE;
        a.aio_offset = (i % 16) * 4096;
        for (int k = 0; k < NB; k++) {
            t_prep(&b[k], fb, buf[k + 1], 4096);
            b[k].aio_lio_opcode = LIO_WRITE;
            b[k].aio_offset = k * 4096;
            list[k] = &b[k];
        }
        int at = 8 + i % 32; /* A among B's */
        list[NB] = list[at];
        list[at] = &a;
        CHECK(lio_listio(LIO_NOWAIT, list, NB + 1, NULL) == 0, "lio_listio");
        while (aio_error(&a) == EINPROGRESS) {}
        CHECK(aio_return(&a) == 4096, "A's write");
        int r = aio_cancel(fa, NULL);
        if (r == AIO_NOTCANCELED) not_canceled++;
        else if (r != AIO_ALLDONE) other++;
        for (int k = 0; k < NB; k++) CHECK(t_wait(&b[k], 5000) == 4096, "B's write %d", k);
        if (t_uaio_in_flight() != 0) counted++;
    }
    printf("of %d rounds: aio_cancel of a reaped request said AIO_NOTCANCELED %d times, something else %d; "
           "in flight after all were reaped: %d\n", ROUNDS, not_canceled, other, counted);
    CHECK(not_canceled == 0 && other == 0, "aio_cancel of a request already done");
    CHECK(counted == 0, "requests counted in flight after their results were reaped");
    t_require_uaio(ROUNDS);
    return T_EXIT_PASS;
}
