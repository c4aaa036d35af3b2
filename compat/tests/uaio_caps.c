/* A request runs with its submitter's capabilities, not with those of the thread that happened
 * to create the pool worker: a thread that dropped CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
 * from its effective set cannot open another user's 0600 file through uaio_submit (the ring
 * refuses it too, and so does open(2) on that thread), though a thread with them made the
 * worker; and that thread still can afterwards. Checked in a child on the pool (UAIO_BACKEND=pool) and one
 * with the default backend, both without the inline attempt, so that a worker runs the opens.
 * Needs root (CI runs as root): skipped otherwise. */
#include "helpers.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <uaio.h>

static int (*submit_fn)(struct uaiocb *);
static char path[64];

static void drop_dac(void) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    CHECK(syscall(SYS_capget, &h, d) == 0, "capget");
    d[0].effective &= ~((1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH));
    CHECK(syscall(SYS_capset, &h, d) == 0, "capset");
}

/* uaio openat of `path`: the fd (closed) or -errno. */
static int open_through_uaio(void) {
    struct uaiocb cb;
    uaio_prep_openat(&cb, AT_FDCWD, path, O_RDONLY, 0);
    CHECK(submit_fn(&cb) == 0, "uaio_submit");
    const struct aiocb *list[1] = {&cb.aiocb};
    while (aio_error(&cb.aiocb) == EINPROGRESS) aio_suspend(list, 1, NULL);
    int e = aio_error(&cb.aiocb);
    long r = aio_return(&cb.aiocb);
    if (e) return -e;
    close((int)r);
    return (int)r;
}

static void *dropped(void *arg) {
    drop_dac();
    CHECK(open(path, O_RDONLY) == -1 && errno == EACCES, "open(2) without CAP_DAC_OVERRIDE");
    for (int i = 0; i < 4; i++) {
        int r = open_through_uaio();
        CHECK(r == -EACCES, "uaio openat without CAP_DAC_OVERRIDE gave %d, expected -EACCES (%s)", r,
              (const char *)arg);
    }
    return NULL;
}

static void run(const char *backend) {
    if (backend) setenv("UAIO_BACKEND", backend, 1);
    setenv("UAIO_TRY_INLINE", "0", 1);  // read when the engine is built: at the first call
    for (int i = 0; i < 4; i++) CHECK(open_through_uaio() >= 0, "uaio openat before (%s)", backend ? backend : "default");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, dropped, (void *)(backend ? backend : "default")) == 0, "pthread_create");
    pthread_join(t, NULL);
    for (int i = 0; i < 4; i++) {
        int r = open_through_uaio();
        CHECK(r >= 0, "uaio openat with CAP_DAC_OVERRIDE gave %d (%s)", r, backend ? backend : "default");
    }
    t_require_uaio(12);
}

int main(void) {
    if (geteuid() != 0) {
        printf("needs root: a file another user owns, and capabilities to drop\n");
        return T_EXIT_SKIP;
    }
    submit_fn = (int (*)(struct uaiocb *))dlsym(RTLD_DEFAULT, "uaio_submit");
    CHECK(submit_fn != NULL, "uaio_submit is not loaded");
    snprintf(path, sizeof path, "/tmp/uaio-caps-%d", (int)getpid());
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    CHECK(fd >= 0 && fchown(fd, 65534, 65534) == 0, "create %s", path);
    close(fd);
    const char *backends[2] = {"pool", NULL};
    for (int i = 0; i < 2; i++) {
        pid_t pid = fork();
        CHECK(pid >= 0, "fork");
        if (pid == 0) {
            run(backends[i]);
            _exit(0);
        }
        int status;
        CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the %s child failed", backends[i] ? backends[i] : "default");
    }
    unlink(path);
    printf("uaio_caps: requests ran with their submitter's capabilities, on the pool and by default\n");
    return T_EXIT_PASS;
}
