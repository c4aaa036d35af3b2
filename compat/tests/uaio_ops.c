/* Every operation of uaio_ops.h through uaio_submit, as an application uses them: each one's
 * effect on real files, its result through aio_error/aio_return, and its error paths (a path
 * that does not exist, a bad fd, a NULL path, an unknown operation); a lio_listio of them with
 * a SIGEV_THREAD list notification; aio_cancel on one. Runs on whatever backend the settings
 * pick (run.sh: the ring, the pool, seccomp). */
#include "helpers.h"

#include <dirent.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <uaio.h>

static int (*submit_fn)(struct uaiocb *);

/* Submits cb, waits, and returns aio_return; *err gets aio_error. */
static ssize_t run(struct uaiocb *cb, int *err) {
    CHECK(submit_fn(cb) == 0, "uaio_submit(op %d)", cb->uaio_op);
    const struct aiocb *list[1] = {&cb->aiocb};
    struct timespec ts = {10, 0};
    while (aio_error(&cb->aiocb) == EINPROGRESS) CHECK(aio_suspend(list, 1, &ts) == 0 || errno == EINTR, "suspend");
    *err = aio_error(&cb->aiocb);
    return aio_return(&cb->aiocb);
}

#define OK(cb, expected)                                                                          \
    do {                                                                                          \
        int e_;                                                                                   \
        ssize_t r_ = run(cb, &e_);                                                                \
        CHECK(e_ == 0 && r_ == (ssize_t)(expected), "op %d: error %d, result %zd, expected %zd", \
              (cb)->uaio_op, e_, r_, (ssize_t)(expected));                                        \
    } while (0)
#define FAILS(cb, errno_)                                                                                   \
    do {                                                                                                    \
        int e_;                                                                                             \
        ssize_t r_ = run(cb, &e_);                                                                          \
        CHECK(e_ == (errno_) && r_ == -1, "op %d: error %d (%s), result %zd, expected %s", (cb)->uaio_op, \
              e_, strerror(e_), r_, #errno_);                                                               \
    } while (0)

static volatile int list_done;
static void on_list(union sigval v) { __atomic_store_n(&list_done, v.sival_int, __ATOMIC_RELEASE); }

int main(void) {
    submit_fn = (int (*)(struct uaiocb *))dlsym(RTLD_DEFAULT, "uaio_submit");
    CHECK(submit_fn != NULL, "uaio_submit is not loaded");
    char dir[] = "/tmp/uaio-ops-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    CHECK(dfd >= 0, "open dir");
    struct uaiocb cb;

    /* openat (create) and close */
    uaio_prep_openat(&cb, dfd, "a", O_CREAT | O_RDWR | O_EXCL, 0640);
    int e;
    ssize_t fd = run(&cb, &e);
    CHECK(e == 0 && fd >= 0, "openat: %d", e);
    struct stat st;
    CHECK(fstat((int)fd, &st) == 0 && (st.st_mode & 0777) == (0640 & ~umask(022)), "mode %o", st.st_mode & 0777);
    CHECK(pwrite((int)fd, "hello, world", 12, 0) == 12, "pwrite");
    FAILS(&cb, EEXIST);  /* O_EXCL, again */
    uaio_prep_close(&cb, (int)fd);
    OK(&cb, 0);
    CHECK(fcntl((int)fd, F_GETFD) == -1 && errno == EBADF, "close did not close");
    FAILS(&cb, EBADF);  /* twice */

    /* openat2 with RESOLVE_BENEATH: "../" escapes and is refused */
    struct open_how how = {.flags = O_RDONLY, .resolve = RESOLVE_BENEATH};
    uaio_prep_openat2(&cb, dfd, "a", &how, sizeof how);
    fd = run(&cb, &e);
    CHECK(e == 0 && fd >= 0, "openat2: %d", e);
    close((int)fd);
    uaio_prep_openat2(&cb, dfd, "../etc/passwd", &how, sizeof how);
    FAILS(&cb, EXDEV);

    /* statx */
    struct statx sx;
    uaio_prep_statx(&cb, dfd, "a", 0, STATX_SIZE | STATX_MODE, &sx);
    OK(&cb, 0);
    CHECK(sx.stx_size == 12 && S_ISREG(sx.stx_mode), "statx size %llu", (unsigned long long)sx.stx_size);
    uaio_prep_statx(&cb, dfd, "missing", 0, STATX_SIZE, &sx);
    FAILS(&cb, ENOENT);
    uaio_prep_statx(&cb, dfd, NULL, 0, STATX_SIZE, &sx);
    { int e2; run(&cb, &e2); CHECK(e2 == EFAULT || e2 == 0, "statx NULL path: %d", e2); } /* 6.11+: NULL is "" */
    uaio_prep_statx(&cb, -7, "a", 0, STATX_SIZE, &sx);
    FAILS(&cb, EBADF);

    int afd = openat(dfd, "a", O_RDWR);
    CHECK(afd >= 0, "open a");
    /* fallocate, ftruncate, fadvise, readahead, sync_file_range */
    uaio_prep_fallocate(&cb, afd, 0, 0, 1 << 16);
    OK(&cb, 0);
    CHECK(fstat(afd, &st) == 0 && st.st_size == 1 << 16, "fallocate: size %lld", (long long)st.st_size);
    uaio_prep_ftruncate(&cb, afd, 100);
    OK(&cb, 0);
    CHECK(fstat(afd, &st) == 0 && st.st_size == 100, "ftruncate: size %lld", (long long)st.st_size);
    uaio_prep_ftruncate(&cb, -1, 100);
    FAILS(&cb, EBADF);
    uaio_prep_fadvise(&cb, afd, 0, 100, POSIX_FADV_WILLNEED);
    OK(&cb, 0);
    uaio_prep_fadvise(&cb, afd, 0, 100, 12345);
    FAILS(&cb, EINVAL);
    /* A negative offset is the system call's to refuse, wherever it runs (on the ring, its
     * conversion to the SQE's offset killed the program), and a field an operation does not
     * use may hold anything. */
    uaio_prep_fadvise(&cb, afd, -1, 100, POSIX_FADV_WILLNEED);
    { int e3; run(&cb, &e3); CHECK(e3 == 0 || e3 == EINVAL, "fadvise at offset -1: %d", e3); }
    uaio_prep_ftruncate(&cb, afd, 100);
    cb.aiocb.aio_offset = -1;
    OK(&cb, 0);
    uaio_prep_readahead(&cb, afd, 0, 100);
    OK(&cb, 0);
    uaio_prep_sync_file_range(&cb, afd, 0, 100, SYNC_FILE_RANGE_WRITE);
    OK(&cb, 0);
    uaio_prep_sync_file_range(&cb, afd, 0, 100, 0x80);
    FAILS(&cb, EINVAL);

    /* fsetxattr / fgetxattr (user.* on the temp directory's file system) */
    uaio_prep_fsetxattr(&cb, afd, "user.uaio", "v1", 2, 0);
    { int e2; ssize_t r2 = run(&cb, &e2);
      if (e2 == ENOTSUP) fprintf(stderr, "uaio_ops: skipping xattrs: %s has none\n", dir);
      else {
          CHECK(e2 == 0 && r2 == 0, "fsetxattr: %d", e2);
          char value[16] = {0};
          uaio_prep_fgetxattr(&cb, afd, "user.uaio", value, sizeof value);
          OK(&cb, 2);
          CHECK(memcmp(value, "v1", 2) == 0, "fgetxattr value");
          uaio_prep_fgetxattr(&cb, afd, "user.missing", value, sizeof value);
          FAILS(&cb, ENODATA);
          uaio_prep_fsetxattr(&cb, afd, "user.uaio", "v2", 2, XATTR_CREATE);
          FAILS(&cb, EEXIST);
      } }

    /* fchmod, fchmodat, fchown, fchownat, utimensat */
    uaio_prep_fchmod(&cb, afd, 0600);
    OK(&cb, 0);
    CHECK(fstat(afd, &st) == 0 && (st.st_mode & 0777) == 0600, "fchmod");
    uaio_prep_fchmodat(&cb, dfd, "a", 0644, 0);
    OK(&cb, 0);
    CHECK(fstat(afd, &st) == 0 && (st.st_mode & 0777) == 0644, "fchmodat");
    uaio_prep_fchmodat(&cb, dfd, "missing", 0644, 0);
    FAILS(&cb, ENOENT);
    uaio_prep_fchown(&cb, afd, getuid(), getgid());
    OK(&cb, 0);
    uaio_prep_fchownat(&cb, dfd, "a", (uid_t)-1, getgid(), 0);
    OK(&cb, 0);
    uaio_prep_fchownat(&cb, dfd, NULL, (uid_t)-1, getgid(), 0);
    FAILS(&cb, EFAULT);
    struct timespec times[2] = {{1000000000, 0}, {1234567890, 0}};
    uaio_prep_utimensat(&cb, dfd, "a", times, 0);
    OK(&cb, 0);
    CHECK(fstat(afd, &st) == 0 && st.st_mtime == 1234567890, "utimensat: mtime %ld", (long)st.st_mtime);
    times[1].tv_sec = 1111111111;
    uaio_prep_utimensat(&cb, afd, NULL, times, 0);  /* NULL path: the fd itself (futimens) */
    OK(&cb, 0);
    CHECK(fstat(afd, &st) == 0 && st.st_mtime == 1111111111, "utimensat(fd): mtime %ld", (long)st.st_mtime);

    /* mkdirat, symlinkat, readlinkat, linkat, renameat, unlinkat */
    uaio_prep_mkdirat(&cb, dfd, "d", 0755);
    OK(&cb, 0);
    FAILS(&cb, EEXIST);
    uaio_prep_symlinkat(&cb, "a", dfd, "s");
    OK(&cb, 0);
    char target[64] = {0};
    uaio_prep_readlinkat(&cb, dfd, "s", target, sizeof target);
    OK(&cb, 1);
    CHECK(strcmp(target, "a") == 0, "readlinkat: %s", target);
    uaio_prep_readlinkat(&cb, dfd, "a", target, sizeof target);
    FAILS(&cb, EINVAL);  /* not a link */
    uaio_prep_linkat(&cb, dfd, "a", dfd, "d/hard", 0);
    OK(&cb, 0);
    CHECK(fstat(afd, &st) == 0 && st.st_nlink == 2, "linkat: nlink %lu", (unsigned long)st.st_nlink);
    uaio_prep_renameat(&cb, dfd, "d/hard", dfd, "b", 0);
    OK(&cb, 0);
    CHECK(fstatat(dfd, "b", &st, 0) == 0 && fstatat(dfd, "d/hard", &st, 0) == -1, "renameat");
    uaio_prep_renameat(&cb, dfd, "b", dfd, "a", RENAME_NOREPLACE);
    FAILS(&cb, EEXIST);
    uaio_prep_unlinkat(&cb, dfd, "b", 0);
    OK(&cb, 0);
    FAILS(&cb, ENOENT);
    uaio_prep_unlinkat(&cb, dfd, NULL, 0);
    FAILS(&cb, EFAULT);

    /* getdents64: the directory's entries */
    char dents[4096];
    uaio_prep_getdents64(&cb, dfd, dents, sizeof dents);
    fd = run(&cb, &e);
    CHECK(e == 0 && fd > 0, "getdents64: %d", e);
    int names = 0;
    for (ssize_t off = 0; off < fd;) {
        struct dirent64 *d = (struct dirent64 *)(dents + off);
        if (strcmp(d->d_name, "a") == 0 || strcmp(d->d_name, "d") == 0 || strcmp(d->d_name, "s") == 0) names++;
        off += d->d_reclen;
    }
    CHECK(names == 3, "getdents64 found %d of a, d, s", names);
    uaio_prep_getdents64(&cb, afd, dents, sizeof dents);
    FAILS(&cb, ENOTDIR);

    /* copy_file_range: explicit offsets, and the file positions (-1) */
    CHECK(pwrite(afd, "0123456789", 10, 0) == 10, "pwrite");
    int bfd = openat(dfd, "c", O_CREAT | O_RDWR, 0600);
    CHECK(bfd >= 0, "open c");
    uaio_prep_copy_file_range(&cb, afd, 2, bfd, 5, 4, 0);
    OK(&cb, 4);
    char got[16] = {0};
    CHECK(pread(bfd, got, sizeof got, 0) == 9 && memcmp(got + 5, "2345", 4) == 0, "copy_file_range data");
    uaio_prep_copy_file_range(&cb, afd, -1, bfd, -1, 3, 0);
    OK(&cb, 3);
    CHECK(lseek(afd, 0, SEEK_CUR) == 3 && lseek(bfd, 0, SEEK_CUR) == 3, "positions moved");
    uaio_prep_copy_file_range(&cb, afd, 0, -1, 0, 3, 0);
    FAILS(&cb, EBADF);

    /* syncfs */
    uaio_prep_syncfs(&cb, afd);
    OK(&cb, 0);
    uaio_prep_syncfs(&cb, 12345);
    FAILS(&cb, EBADF);

    /* cwd and umask: a relative path with AT_FDCWD resolves against the working directory,
     * and a created file gets the process's umask, when the request runs. */
    char cwd[4096];
    CHECK(getcwd(cwd, sizeof cwd) != NULL && chdir(dir) == 0, "chdir");
    mode_t old_mask = umask(027);
    uaio_prep_openat(&cb, AT_FDCWD, "relative", O_CREAT | O_WRONLY | O_EXCL, 0666);
    fd = run(&cb, &e);
    CHECK(e == 0 && fd >= 0, "relative openat: %d", e);
    CHECK(fstat((int)fd, &st) == 0 && (st.st_mode & 0777) == 0640, "umask 027: mode %o", st.st_mode & 0777);
    close((int)fd);
    uaio_prep_mkdirat(&cb, AT_FDCWD, "reldir", 0777);
    OK(&cb, 0);
    CHECK(fstatat(dfd, "reldir", &st, 0) == 0 && (st.st_mode & 0777) == 0750, "mkdirat with umask: %o", st.st_mode & 0777);
    uaio_prep_unlinkat(&cb, AT_FDCWD, "reldir", AT_REMOVEDIR);
    OK(&cb, 0);
    uaio_prep_unlinkat(&cb, AT_FDCWD, "relative", 0);
    OK(&cb, 0);
    CHECK(aio_cancel(AT_FDCWD, &cb.aiocb) == AIO_ALLDONE, "aio_cancel(AT_FDCWD, cb) of a finished request");
    CHECK(aio_cancel(AT_FDCWD, NULL) == -1 && errno == EBADF, "aio_cancel(AT_FDCWD, NULL): EBADF");
    umask(old_mask);
    CHECK(chdir(cwd) == 0, "chdir back");

    /* Submission errors: NULL, an unknown operation, a bad sigevent; aio_error on a never-
     * submitted uaiocb. */
    CHECK_ERRNO(submit_fn(NULL), EINVAL);
    uaio_prep(&cb, 999, afd);
    CHECK_ERRNO(submit_fn(&cb), EINVAL);
    uaio_prep(&cb, 0, afd);
    CHECK_ERRNO(submit_fn(&cb), EINVAL);
    uaio_prep_syncfs(&cb, afd);
    cb.aiocb.aio_sigevent.sigev_notify = 12345;
    CHECK_ERRNO(submit_fn(&cb), EINVAL);

    /* lio_listio: mkdir, then (unordered, so independent) stats and a create, with a
     * SIGEV_THREAD notification for the list; LIO_WAIT for another. */
    struct uaiocb l[4];
    struct statx sx2;
    uaio_prep_mkdirat(&l[0], dfd, "e", 0700);
    uaio_prep_statx(&l[1], dfd, "a", 0, STATX_SIZE, &sx2);
    uaio_prep_openat(&l[2], dfd, "f", O_CREAT | O_WRONLY, 0600);
    uaio_prep_statx(&l[3], dfd, "missing", 0, STATX_SIZE, &sx2);
    struct aiocb *list[4] = {&l[0].aiocb, &l[1].aiocb, &l[2].aiocb, &l[3].aiocb};
    struct sigevent ev = {.sigev_notify = SIGEV_THREAD, .sigev_notify_function = on_list, .sigev_value.sival_int = 7};
    CHECK(lio_listio(LIO_NOWAIT, list, 4, &ev) == 0, "lio_listio");
    for (int i = 0; i < 2000 && __atomic_load_n(&list_done, __ATOMIC_ACQUIRE) != 7; i++) t_sleep_ms(1);
    CHECK(list_done == 7, "the list's notification did not come");
    CHECK(aio_error(list[0]) == 0 && aio_error(list[1]) == 0 && aio_error(list[2]) == 0, "list results");
    CHECK(aio_error(list[3]) == ENOENT && aio_return(list[3]) == -1, "list: ENOENT");
    fd = aio_return(list[2]);
    CHECK(fd >= 0 && close((int)fd) == 0, "list: openat's fd");
    uaio_prep_unlinkat(&l[0], dfd, "e", AT_REMOVEDIR);
    uaio_prep_unlinkat(&l[1], dfd, "f", 0);
    uaio_prep_unlinkat(&l[2], dfd, "s", 0);
    uaio_prep_unlinkat(&l[3], dfd, "d", 0);  /* a directory without AT_REMOVEDIR */
    /* One entry fails while running: -1/EIO, as glibc; each entry keeps its own result. */
    CHECK(lio_listio(LIO_WAIT, list, 4, NULL) == -1 && errno == EIO, "lio_listio(LIO_WAIT)");
    CHECK(aio_error(list[0]) == 0 && aio_error(list[1]) == 0 && aio_error(list[2]) == 0, "unlinks");
    CHECK(aio_error(list[3]) == EISDIR, "unlink of a directory: %d", aio_error(list[3]));
    /* An unknown operation inside a list fails that entry only. */
    uaio_prep(&l[0], 999, dfd);
    uaio_prep_unlinkat(&l[1], dfd, "d", AT_REMOVEDIR);
    CHECK(lio_listio(LIO_WAIT, list, 2, NULL) == -1 && errno == EIO, "list with an unknown op");
    CHECK(aio_error(list[0]) == EINVAL && aio_error(list[1]) == 0, "unknown op: %d, rmdir: %d", aio_error(list[0]),
          aio_error(list[1]));

    const char *ring = t_on_ring("openat") ? "ring" : "pool";
    printf("uaio_ops: %d operations, their errors, lists; openat on the %s, readahead on the %s\n", UAIO_OP_LAST, ring,
           t_on_ring("readahead") ? "ring" : "pool");
    CHECK(!t_on_ring("readahead") && !t_on_ring("getdents64"), "io_uring has no opcode for these");
    if (getenv("UAIO_EXPECT_RING") && strcmp(getenv("UAIO_EXPECT_RING"), "1") == 0)
        CHECK(t_on_ring("openat") && t_on_ring("statx") && t_on_ring("unlinkat"), "path operations should be on the ring");
    close(afd);
    close(bfd);
    unlinkat(dfd, "a", 0);
    unlinkat(dfd, "c", 0);
    close(dfd);
    CHECK(rmdir(dir) == 0, "rmdir %s", dir);
    t_require_uaio(50);
    return T_EXIT_PASS;
}
