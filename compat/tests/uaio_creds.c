/* Operations that resolve a path run as the thread that submitted them (uaio_ops.h), on the
 * ring and in the pool. As root: a thread that switched its own fsuid/fsgid to 65534 (a
 * per-thread system call, as file servers do) asks to open a root-only 0600 file, to stat a
 * file in a 0700 directory and to create one there: EACCES for each, while the main thread's
 * same requests succeed, before and after. First in a child on the pool without the inline
 * attempt, where root's first request makes the worker and the fsuid-65534 thread's requests
 * must make it switch (inline, the requests would run on the threads themselves); then with
 * the settings given. Then, in a child that drops root for the whole process with setuid()
 * after its workers exist, no request runs with the old identity. */
#include "helpers.h"

#include <grp.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <uaio.h>

static int (*submit_fn)(struct uaiocb *);
static char dir[64], secret[96], link_path[96];

static int result_of(struct uaiocb *cb, ssize_t *ret) {
    CHECK(submit_fn(cb) == 0, "uaio_submit");
    *ret = t_wait(&cb->aiocb, 10000);
    return aio_error(&cb->aiocb);
}

/* What an unprivileged identity gets: EACCES for each; 0 when all three were refused. */
static int try_all(const char *who) {
    struct uaiocb cb;
    ssize_t r;
    int e;
    uaio_prep_openat(&cb, AT_FDCWD, secret, O_RDONLY, 0);
    e = result_of(&cb, &r);
    if (r >= 0) close((int)r);
    CHECK(e == EACCES, "%s: openat of a root-only file: error %d, expected EACCES", who, e);
    struct statx sx;
    uaio_prep_statx(&cb, AT_FDCWD, secret, 0, STATX_SIZE, &sx);
    e = result_of(&cb, &r);
    CHECK(e == EACCES, "%s: statx inside a 0700 directory: error %d", who, e);
    uaio_prep_openat(&cb, AT_FDCWD, dir, O_RDONLY | O_DIRECTORY, 0);
    e = result_of(&cb, &r);
    CHECK(e == EACCES, "%s: opening the 0700 directory: error %d", who, e);
    /* The operations only the pool runs: each resolves a path through the 0700 directory. */
    uaio_prep_fchmodat(&cb, AT_FDCWD, secret, 0644, 0);
    CHECK((e = result_of(&cb, &r)) == EACCES, "%s: fchmodat: error %d", who, e);
    uaio_prep_fchownat(&cb, AT_FDCWD, secret, 65534, 65534, 0);
    CHECK((e = result_of(&cb, &r)) == EACCES, "%s: fchownat: error %d", who, e);
    uaio_prep_utimensat(&cb, AT_FDCWD, secret, NULL, 0);
    CHECK((e = result_of(&cb, &r)) == EACCES, "%s: utimensat: error %d", who, e);
    char target[64];
    uaio_prep_readlinkat(&cb, AT_FDCWD, link_path, target, sizeof target);
    CHECK((e = result_of(&cb, &r)) == EACCES, "%s: readlinkat: error %d", who, e);
    return 0;
}

static void root_succeeds(void) {
    struct uaiocb cb;
    ssize_t r;
    uaio_prep_openat(&cb, AT_FDCWD, secret, O_RDONLY, 0);
    CHECK(result_of(&cb, &r) == 0 && r >= 0, "root's openat");
    close((int)r);
    struct statx sx;
    uaio_prep_statx(&cb, AT_FDCWD, secret, 0, STATX_SIZE, &sx);
    CHECK(result_of(&cb, &r) == 0 && sx.stx_size == 6, "root's statx");
}

static void *as_nobody(void *arg) {
    /* This thread only: raw system calls (glibc's setfsuid is per thread too). */
    syscall(SYS_setfsgid, 65534);
    syscall(SYS_setfsuid, 65534);
    CHECK(syscall(SYS_setfsuid, -1) == 65534, "setfsuid");
    try_all("thread with fsuid 65534");
    return NULL;
}

int main(void) {
    if (geteuid() != 0) {
        printf("uaio_creds: skipped: needs root to switch identities\n");
        return T_EXIT_SKIP;
    }
    submit_fn = (int (*)(struct uaiocb *))dlsym(RTLD_DEFAULT, "uaio_submit");
    CHECK(submit_fn != NULL, "uaio_submit is not loaded");
    strcpy(dir, "/tmp/uaio-creds-XXXXXX");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    CHECK(chmod(dir, 0700) == 0, "chmod");
    snprintf(secret, sizeof secret, "%s/secret", dir);
    int fd = open(secret, O_CREAT | O_WRONLY, 0600);
    CHECK(fd >= 0 && write(fd, "secret", 6) == 6 && close(fd) == 0, "create %s", secret);
    snprintf(link_path, sizeof link_path, "%s/link", dir);
    CHECK(symlink("secret", link_path) == 0, "symlink");

    pid_t worker_child = fork();
    CHECK(worker_child >= 0, "fork");
    if (worker_child == 0) {  /* the engine is built at the first call: these settings */
        setenv("UAIO_BACKEND", "pool", 1);
        setenv("UAIO_TRY_INLINE", "0", 1);
        root_succeeds();
        pthread_t t;
        CHECK(pthread_create(&t, NULL, as_nobody, NULL) == 0, "pthread_create");
        pthread_join(t, NULL);
        root_succeeds();
        _exit(0);
    }
    int worker_status;
    CHECK(waitpid(worker_child, &worker_status, 0) == worker_child && WIFEXITED(worker_status) &&
              WEXITSTATUS(worker_status) == 0,
          "the pool child failed (status %d)", worker_status);

    root_succeeds();  /* workers (or the ring) exist from here, as root */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, as_nobody, NULL) == 0, "pthread_create");
    pthread_join(t, NULL);
    root_succeeds();  /* the main thread is still root, whatever the workers did meanwhile */

    /* The process drops root for good (glibc applies setuid to every thread, the pool's
     * included); a request submitted afterwards never runs as root. */
    pid_t child = fork();
    CHECK(child >= 0, "fork");
    if (child == 0) {
        root_succeeds();  /* the child's own engine and workers, as root */
        CHECK(setgroups(0, NULL) == 0 && setgid(65534) == 0 && setuid(65534) == 0, "setuid");
        try_all("process after setuid(65534)");
        _exit(0);
    }
    int status;
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "the child failed (status %d)", status);
    unlink(secret);
    unlink(link_path);
    rmdir(dir);
    printf("uaio_creds: fsuid 65534 refused on the %s, root served, setuid() honoured\n",
           t_on_ring("openat") ? "ring" : "pool");
    t_require_uaio(6);
    return T_EXIT_PASS;
}
