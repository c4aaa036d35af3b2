/* Routing: every operation goes to the ring or the pool as the environment and the kernel
 * allow, and requests work either way. UAIO_EXPECT_RING=1 (or 0), set by the test runner,
 * asserts which: under the seccomp launcher, io_uring_setup fails with EPERM and everything
 * must go to the pool, silently (one diagnostic line only with UAIO_DEBUG). */
#include "helpers.h"

int main(void) {
    const char *ops[] = {"read", "write", "fsync", "fdatasync"};
    const char *expect = getenv("UAIO_EXPECT_RING");
    const char *backend = getenv("UAIO_BACKEND");
    for (size_t i = 0; i < 4; i++) {
        int ring = t_on_ring(ops[i]);
        printf("%s -> %s\n", ops[i], ring ? "uring" : "pool");
        if (backend && strcmp(backend, "pool") == 0) CHECK(!ring, "UAIO_BACKEND=pool, yet %s goes to the ring", ops[i]);
        else if (expect) CHECK(ring == atoi(expect), "%s: expected %s", ops[i], atoi(expect) ? "the ring" : "the pool");
    }
    const char *(*f)(const char *) = (const char *(*)(const char *))dlsym(RTLD_DEFAULT, "uaio_backend_for");
    CHECK(f && f("bogus") == NULL, "an unknown operation has no backend");
    /* The operations work wherever they go. */
    int fd = t_temp_file(4096);
    char buf[64];
    struct aiocb cb;
    t_prep(&cb, fd, buf, sizeof buf);
    CHECK(aio_write(&cb) == 0 && t_wait(&cb, 5000) == sizeof buf, "write");
    CHECK(aio_fsync(O_DSYNC, &cb) == 0 && t_wait(&cb, 5000) == 0, "fdatasync");
    CHECK(aio_read(&cb) == 0 && t_wait(&cb, 5000) == sizeof buf, "read");
    t_require_uaio(2);
    return T_EXIT_PASS;
}
