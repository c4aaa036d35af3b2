/* A plugin host's way: dlopen libuaio, a few requests (a cached read, a read still blocked on a
 * pipe, so that the library's threads run), dlclose, and carry on. The library stays resident
 * (it is linked -z nodelete): its threads never run in unmapped code, and the blocked read
 * still completes into the program's buffer. Runs in a child started without LD_PRELOAD, so
 * that the dlopen is the only reference to the library (in the linked build it is a
 * dependency as well, and the test shows only that dlclose harms nothing). */
#include "helpers.h"
#include <sys/wait.h>

typedef int (*submit_fn)(struct aiocb *);
typedef int (*error_fn)(const struct aiocb *);
typedef ssize_t (*return_fn)(struct aiocb *);

static int child(const char *lib) {
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    CHECK(h != NULL, "dlopen %s: %s", lib, dlerror());
    submit_fn rd = (submit_fn)dlsym(h, "aio_read");
    error_fn er = (error_fn)dlsym(h, "aio_error");
    return_fn rt = (return_fn)dlsym(h, "aio_return");
    uint64_t (*submitted)(void) = (uint64_t(*)(void))dlsym(h, "uaio_requests_submitted");
    CHECK(rd && er && rt && submitted, "dlsym");
    int fd = t_temp_file(1 << 16);
    static char buf[8][4096], pb[1];
    static struct aiocb cbs[8], pr;
    for (int i = 0; i < 8; i++) {
        t_prep(&cbs[i], fd, buf[i], sizeof buf[i]);
        cbs[i].aio_offset = i * 4096;
        CHECK(rd(&cbs[i]) == 0, "aio_read %d", i);
    }
    for (int i = 0; i < 8; i++) {
        for (int t = 0; t < 500 && er(&cbs[i]) == EINPROGRESS; t++) t_sleep_ms(10);
        CHECK(rt(&cbs[i]) == 4096, "read %d", i);
    }
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    t_prep(&pr, p[0], pb, 1);
    CHECK(rd(&pr) == 0, "aio_read on a pipe");
    CHECK(submitted() >= 9, "libuaio served the requests");
    t_sleep_ms(20);
    CHECK(dlclose(h) == 0, "dlclose: %s", dlerror());
    /* The library's threads go on (workers, the reaper, their idle timeouts). */
    t_sleep_ms(300);
    CHECK(write(p[1], "x", 1) == 1, "write");
    for (int t = 0; t < 500 && pb[0] != 'x'; t++) t_sleep_ms(10);
    CHECK(pb[0] == 'x', "the blocked read completed after dlclose");
    t_sleep_ms(1500); /* past UAIO_WORKER_IDLE_MS: idle threads exit */
    /* dlopen again: the same library, still working. */
    h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    CHECK(h != NULL, "dlopen again");
    rd = (submit_fn)dlsym(h, "aio_read");
    er = (error_fn)dlsym(h, "aio_error");
    rt = (return_fn)dlsym(h, "aio_return");
    CHECK(rd(&cbs[0]) == 0, "aio_read after dlopen again");
    for (int t = 0; t < 500 && er(&cbs[0]) == EINPROGRESS; t++) t_sleep_ms(10);
    CHECK(rt(&cbs[0]) == 4096, "read after dlopen again");
    CHECK(dlclose(h) == 0, "dlclose again");
    return T_EXIT_PASS;
}

int main(int argc, char **argv) {
    const char *lib = getenv("UAIO_TEST_LIB");
    CHECK(lib != NULL, "UAIO_TEST_LIB not set");
    if (argc > 1 && strcmp(argv[1], "child") == 0) return child(lib);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        unsetenv("LD_PRELOAD");
        execl("/proc/self/exe", argv[0], "child", (char *)NULL);
        _exit(127);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: %s %d",
          WIFSIGNALED(status) ? "killed by signal" : "exit", WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    /* This process: its own requests through libuaio, as every test proves. */
    int fd = t_temp_file(4096);
    static char b[16];
    struct aiocb cb;
    t_prep(&cb, fd, b, sizeof b);
    CHECK(aio_read(&cb) == 0, "aio_read");
    CHECK(t_wait(&cb, 5000) == sizeof b, "read");
    t_require_uaio(1);
    return T_EXIT_PASS;
}
