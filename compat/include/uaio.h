/* UringAIO extensions to POSIX AIO. The POSIX calls themselves keep glibc's <aio.h>
 * declarations and struct aiocb: include <aio.h> as usual, link with -luaio (or preload
 * libuaio.so), and include this header only for what POSIX does not have. */
#ifndef UAIO_H
#define UAIO_H

#include <aio.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include "uaio_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The longest list lio_listio accepts (glibc defines no AIO_LISTIO_MAX). */
#define UAIO_LISTIO_MAX 65536

/* Vectored I/O, with FreeBSD's signatures: a struct aiocb whose aio_buf points to a struct iovec
 * array and whose aio_nbytes is its count (1 to IOV_MAX), as FreeBSD's aio_iov/aio_iovcnt overlay
 * them. The result (aio_return) is the number of bytes moved; everything else (offset, reqprio,
 * sigevent, aio_error, aio_suspend, aio_cancel, ordering) is as for aio_read/aio_write. A count
 * out of range is EINVAL at submission; a bad iovec array is EFAULT through aio_error. */
int aio_readv(struct aiocb *aiocbp);
int aio_writev(struct aiocb *aiocbp);
/* lio_listio operations, built as FreeBSD builds them: LIO_READ or LIO_WRITE | LIO_VECTORED. */
#define UAIO_LIO_VECTORED 4
#define LIO_READV (LIO_READ | UAIO_LIO_VECTORED)
#define LIO_WRITEV (LIO_WRITE | UAIO_LIO_VECTORED)
/* Points cb's buffer fields at an iovec array (FreeBSD: cb->aio_iov = iov; cb->aio_iovcnt = n). */
static inline void uaio_set_iov(struct aiocb *cb, const struct iovec *iov, int n) {
    cb->aio_buf = (volatile void *)iov;
    cb->aio_nbytes = (size_t)n;
}

/* System calls beyond read and write (uaio_ops.h has the control block and its table):
 * submits cb for the operation its uaio_op names. 0, or -1 with errno: EINVAL (NULL, an
 * unknown uaio_op, a bad sigevent or aio_reqprio, cb already in flight), EAGAIN (too many
 * requests). The operation's own errors come through aio_error, as for aio_read. */
int uaio_submit(struct uaiocb *cb);

/* Fills cb for one operation (zeroing the rest: no notification until the caller sets
 * cb->aiocb.aio_sigevent), as liburing's io_uring_prep_* fill an SQE. */
static inline void uaio_prep(struct uaiocb *cb, int op, int fd) {
    memset(cb, 0, sizeof *cb);
    cb->uaio_op = op;
    cb->aiocb.aio_fildes = fd;
    cb->aiocb.aio_lio_opcode = LIO_UAIO;
    cb->aiocb.aio_sigevent.sigev_notify = SIGEV_NONE;
}
static inline void uaio_prep_openat(struct uaiocb *cb, int dirfd, const char *path, int flags, mode_t mode) {
    uaio_prep(cb, UAIO_OP_OPENAT, dirfd);
    cb->uaio_path = path, cb->uaio_flags = flags, cb->uaio_mode = mode;
}
static inline void uaio_prep_openat2(struct uaiocb *cb, int dirfd, const char *path, void *how, size_t size) {
    uaio_prep(cb, UAIO_OP_OPENAT2, dirfd);
    cb->uaio_path = path, cb->uaio_arg = how, cb->aiocb.aio_nbytes = size;
}
static inline void uaio_prep_close(struct uaiocb *cb, int fd) { uaio_prep(cb, UAIO_OP_CLOSE, fd); }
static inline void uaio_prep_statx(struct uaiocb *cb, int dirfd, const char *path, int flags, unsigned mask,
                                   void *statxbuf) {
    uaio_prep(cb, UAIO_OP_STATX, dirfd);
    cb->uaio_path = path, cb->uaio_flags = flags, cb->uaio_mode = mask, cb->aiocb.aio_buf = statxbuf;
}
static inline void uaio_prep_fallocate(struct uaiocb *cb, int fd, int mode, off_t offset, off_t len) {
    uaio_prep(cb, UAIO_OP_FALLOCATE, fd);
    cb->uaio_flags = mode, cb->aiocb.aio_offset = offset, cb->uaio_len = len;
}
static inline void uaio_prep_ftruncate(struct uaiocb *cb, int fd, off_t len) {
    uaio_prep(cb, UAIO_OP_FTRUNCATE, fd);
    cb->uaio_len = len;
}
static inline void uaio_prep_fadvise(struct uaiocb *cb, int fd, off_t offset, off_t len, int advice) {
    uaio_prep(cb, UAIO_OP_FADVISE, fd);
    cb->aiocb.aio_offset = offset, cb->uaio_len = len, cb->uaio_flags = advice;
}
static inline void uaio_prep_readahead(struct uaiocb *cb, int fd, off_t offset, size_t count) {
    uaio_prep(cb, UAIO_OP_READAHEAD, fd);
    cb->aiocb.aio_offset = offset, cb->uaio_len = (int64_t)count;
}
static inline void uaio_prep_sync_file_range(struct uaiocb *cb, int fd, off_t offset, off_t len, unsigned flags) {
    uaio_prep(cb, UAIO_OP_SYNC_FILE_RANGE, fd);
    cb->aiocb.aio_offset = offset, cb->uaio_len = len, cb->uaio_flags = (int)flags;
}
static inline void uaio_prep_renameat(struct uaiocb *cb, int olddirfd, const char *oldpath, int newdirfd,
                                      const char *newpath, unsigned flags) {
    uaio_prep(cb, UAIO_OP_RENAMEAT, olddirfd);
    cb->uaio_path = oldpath, cb->uaio_fd2 = newdirfd, cb->uaio_path2 = newpath, cb->uaio_flags = (int)flags;
}
static inline void uaio_prep_unlinkat(struct uaiocb *cb, int dirfd, const char *path, int flags) {
    uaio_prep(cb, UAIO_OP_UNLINKAT, dirfd);
    cb->uaio_path = path, cb->uaio_flags = flags;
}
static inline void uaio_prep_mkdirat(struct uaiocb *cb, int dirfd, const char *path, mode_t mode) {
    uaio_prep(cb, UAIO_OP_MKDIRAT, dirfd);
    cb->uaio_path = path, cb->uaio_mode = mode;
}
static inline void uaio_prep_symlinkat(struct uaiocb *cb, const char *target, int newdirfd, const char *linkpath) {
    uaio_prep(cb, UAIO_OP_SYMLINKAT, newdirfd);
    cb->uaio_path2 = target, cb->uaio_path = linkpath;
}
static inline void uaio_prep_linkat(struct uaiocb *cb, int olddirfd, const char *oldpath, int newdirfd,
                                    const char *newpath, int flags) {
    uaio_prep(cb, UAIO_OP_LINKAT, olddirfd);
    cb->uaio_path = oldpath, cb->uaio_fd2 = newdirfd, cb->uaio_path2 = newpath, cb->uaio_flags = flags;
}
static inline void uaio_prep_fgetxattr(struct uaiocb *cb, int fd, const char *name, void *value, size_t size) {
    uaio_prep(cb, UAIO_OP_FGETXATTR, fd);
    cb->uaio_path = name, cb->aiocb.aio_buf = value, cb->aiocb.aio_nbytes = size;
}
static inline void uaio_prep_fsetxattr(struct uaiocb *cb, int fd, const char *name, const void *value, size_t size,
                                       int flags) {
    uaio_prep(cb, UAIO_OP_FSETXATTR, fd);
    cb->uaio_path = name, cb->aiocb.aio_buf = (volatile void *)value, cb->aiocb.aio_nbytes = size, cb->uaio_flags = flags;
}
static inline void uaio_prep_fchmod(struct uaiocb *cb, int fd, mode_t mode) {
    uaio_prep(cb, UAIO_OP_FCHMOD, fd);
    cb->uaio_mode = mode;
}
static inline void uaio_prep_fchmodat(struct uaiocb *cb, int dirfd, const char *path, mode_t mode, int flags) {
    uaio_prep(cb, UAIO_OP_FCHMODAT, dirfd);
    cb->uaio_path = path, cb->uaio_mode = mode, cb->uaio_flags = flags;
}
static inline void uaio_prep_fchown(struct uaiocb *cb, int fd, uid_t uid, gid_t gid) {
    uaio_prep(cb, UAIO_OP_FCHOWN, fd);
    cb->uaio_uid = uid, cb->uaio_gid = gid;
}
static inline void uaio_prep_fchownat(struct uaiocb *cb, int dirfd, const char *path, uid_t uid, gid_t gid, int flags) {
    uaio_prep(cb, UAIO_OP_FCHOWNAT, dirfd);
    cb->uaio_path = path, cb->uaio_uid = uid, cb->uaio_gid = gid, cb->uaio_flags = flags;
}
static inline void uaio_prep_utimensat(struct uaiocb *cb, int dirfd, const char *path, const struct timespec *times,
                                       int flags) {
    uaio_prep(cb, UAIO_OP_UTIMENSAT, dirfd);
    cb->uaio_path = path, cb->uaio_arg = (void *)times, cb->uaio_flags = flags;
}
static inline void uaio_prep_getdents64(struct uaiocb *cb, int fd, void *buf, size_t count) {
    uaio_prep(cb, UAIO_OP_GETDENTS64, fd);
    cb->aiocb.aio_buf = buf, cb->aiocb.aio_nbytes = count;
}
static inline void uaio_prep_copy_file_range(struct uaiocb *cb, int fd_in, off_t off_in, int fd_out, off_t off_out,
                                             size_t len, unsigned flags) {
    uaio_prep(cb, UAIO_OP_COPY_FILE_RANGE, fd_in);
    cb->aiocb.aio_offset = off_in, cb->uaio_fd2 = fd_out, cb->uaio_offset2 = off_out;
    cb->aiocb.aio_nbytes = len, cb->uaio_flags = (int)flags;
}
static inline void uaio_prep_readlinkat(struct uaiocb *cb, int dirfd, const char *path, char *buf, size_t size) {
    uaio_prep(cb, UAIO_OP_READLINKAT, dirfd);
    cb->uaio_path = path, cb->aiocb.aio_buf = buf, cb->aiocb.aio_nbytes = size;
}
static inline void uaio_prep_syncfs(struct uaiocb *cb, int fd) { uaio_prep(cb, UAIO_OP_SYNCFS, fd); }

/* Batch reaping. Each takes completed requests from one queue, in completion order; a request
 * leaves it when one of these takes it or when aio_return reaps it first (so the styles mix).
 * The queue is fed from the start when the program is linked with these names (or declares
 * them weak), else from the first call (a program that finds them with dlsym). */
/* FreeBSD: waits for the next completed request; *cbp gets its aiocb and the result is that of
 * aio_return (the request is reaped), -1 with the request's errno if it failed. -1/EAGAIN when
 * nothing is outstanding or the timeout passed (NULL: no limit; {0, 0}: poll); EINTR; EINVAL. */
ssize_t aio_waitcomplete(struct aiocb **cbp, struct timespec *timeout);
/* illumos: waits until at least *nwait requests completed, puts up to nent of them in list and
 * sets *nwait to how many; their results are taken with aio_return as usual. 0, or -1 with
 * ETIME (timeout; *nwait says how many were filled), EINTR, EAGAIN (nothing outstanding),
 * EINVAL (*nwait > nent, NULL list or nwait, bad timeout). */
int aio_waitn(struct aiocb *list[], unsigned int nent, unsigned int *nwait, const struct timespec *timeout);
/* An eventfd readable while completed requests wait for aio_waitcomplete/aio_waitn (for epoll
 * loops; non-blocking, close-on-exec, libuaio's: do not read or close it). -1 with errno. */
int uaio_eventfd(void);

/* Requests this process has submitted through libuaio since it started (or forked). */
uint64_t uaio_requests_submitted(void);
/* Requests submitted and not yet complete. */
int uaio_requests_in_flight(void);
/* Where this process sends an operation now: "uring" or "pool"; NULL for an unknown name.
 * Operations: "read", "write", "fsync", "fdatasync", "readv", "writev", and uaio_ops.h's by
 * their system call's name ("openat", "statx", "sync_file_range", ...). "uring" means every request of that
 * operation the ring can take, with one exception: buffered writes (and writevs) to regular files go
 * to the pool (faster there: the kernel cannot do them without blocking). Reads whose data is
 * in the page cache complete on the caller's thread before either (UAIO_TRY_INLINE). */
const char *uaio_backend_for(const char *operation);
/* The library's version, "MAJOR.MINOR.PATCH". */
const char *uaio_version(void);

#ifdef __cplusplus
}
#endif
#endif
