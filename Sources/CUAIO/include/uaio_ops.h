/* UringAIO: system calls beyond read and write, asynchronously ("extended control blocks").
 * Shared by libuaio and by applications (installed with uaio.h, which includes it).
 *
 * A struct uaiocb starts with a struct aiocb: its address, cast to struct aiocb *, is what
 * aio_error, aio_return, aio_suspend, aio_cancel, aio_waitcomplete and aio_waitn take, and what
 * a lio_listio list holds (aio_lio_opcode LIO_UAIO). Submit one with uaio_submit(). Everything
 * an aiocb has works as on aio_read: aio_sigevent (every kind), aio_reqprio, aio_error
 * (EINPROGRESS, then 0, the errno or ECANCELED), aio_return (the system call's result: an fd,
 * a byte count, or 0). The control block, its paths and buffers must stay valid until then.
 * aio_cancel(cb->aiocb.aio_fildes, &cb->aiocb) works as for an aiocb, AT_FDCWD included; a
 * path operation that has started cannot be stopped (AIO_NOTCANCELED, as for disk I/O).
 *
 * The arguments, in the system call's order (unused fields are ignored; zero them):
 *
 *   op                     fields                                                   result
 *   UAIO_OP_OPENAT         fildes=dirfd, path, flags, mode                           the fd
 *   UAIO_OP_OPENAT2        fildes=dirfd, path, arg=struct open_how *, nbytes=its size the fd
 *   UAIO_OP_CLOSE          fildes                                                    0
 *   UAIO_OP_STATX          fildes=dirfd, path, flags (AT_*), mode=mask, buf=struct statx * 0
 *   UAIO_OP_FALLOCATE      fildes, flags=mode, offset, len                           0
 *   UAIO_OP_FTRUNCATE      fildes, len                                               0
 *   UAIO_OP_FADVISE        fildes, offset, len, flags=advice (POSIX_FADV_*)          0
 *   UAIO_OP_READAHEAD      fildes, offset, len                                       0
 *   UAIO_OP_SYNC_FILE_RANGE fildes, offset, len, flags (SYNC_FILE_RANGE_*)           0
 *   UAIO_OP_RENAMEAT       fildes=olddirfd, path=old, fd2=newdirfd, path2=new, flags (RENAME_*) 0
 *   UAIO_OP_UNLINKAT       fildes=dirfd, path, flags (AT_REMOVEDIR)                  0
 *   UAIO_OP_MKDIRAT        fildes=dirfd, path, mode                                  0
 *   UAIO_OP_SYMLINKAT      path2=target, fildes=newdirfd, path=linkpath              0
 *   UAIO_OP_LINKAT         fildes=olddirfd, path=old, fd2=newdirfd, path2=new, flags 0
 *   UAIO_OP_FGETXATTR      fildes, path=name, buf=value, nbytes=size                 the value's size
 *   UAIO_OP_FSETXATTR      fildes, path=name, buf=value, nbytes=size, flags (XATTR_*) 0
 *   UAIO_OP_FCHMOD         fildes, mode                                              0
 *   UAIO_OP_FCHMODAT       fildes=dirfd, path, mode, flags                           0
 *   UAIO_OP_FCHOWN         fildes, uid, gid                                          0
 *   UAIO_OP_FCHOWNAT       fildes=dirfd, path, uid, gid, flags                       0
 *   UAIO_OP_UTIMENSAT      fildes=dirfd, path (NULL: fildes itself), arg=struct timespec[2] or NULL, flags 0
 *   UAIO_OP_GETDENTS64     fildes, buf, nbytes                                       bytes
 *   UAIO_OP_COPY_FILE_RANGE fildes=in, offset=in offset, fd2=out, offset2=out offset (-1 for
 *                          either: the file position), nbytes, flags                 bytes
 *   UAIO_OP_READLINKAT     fildes=dirfd, path, buf, nbytes                           bytes
 *   UAIO_OP_SYNCFS         fildes                                                    0
 *
 * (fildes, buf, nbytes and offset are the aiocb's aio_fildes, aio_buf, aio_nbytes, aio_offset;
 * the others are uaio_* fields below.) Operations with an io_uring opcode go to the ring when
 * the running kernel's probe has it, to the worker pool otherwise (`uaio config` lists them;
 * UAIO_URING_DISABLE_OPS takes their names: "openat", "statx", ...). Operations that resolve a
 * path or check the caller's identity run with the credentials of the thread that submitted
 * them (fsuid, fsgid, supplementary groups), on either backend. Relative paths resolve against
 * the process's working directory and files are created with its umask, as when the request
 * runs. None is ordered with other requests: submit a dependent request after this one ends. */
#ifndef UAIO_OPS_H
#define UAIO_OPS_H

#include <aio.h>
#include <stdint.h>
#include <sys/types.h>

/* lio_listio: the entry is a struct uaiocb; its uaio_op says what to do. */
#define LIO_UAIO 8

enum uaio_op {
    UAIO_OP_OPENAT = 1,
    UAIO_OP_OPENAT2,
    UAIO_OP_CLOSE,
    UAIO_OP_STATX,
    UAIO_OP_FALLOCATE,
    UAIO_OP_FTRUNCATE,
    UAIO_OP_FADVISE,
    UAIO_OP_READAHEAD,
    UAIO_OP_SYNC_FILE_RANGE,
    UAIO_OP_RENAMEAT,
    UAIO_OP_UNLINKAT,
    UAIO_OP_MKDIRAT,
    UAIO_OP_SYMLINKAT,
    UAIO_OP_LINKAT,
    UAIO_OP_FGETXATTR,
    UAIO_OP_FSETXATTR,
    UAIO_OP_FCHMOD,
    UAIO_OP_FCHMODAT,
    UAIO_OP_FCHOWN,
    UAIO_OP_FCHOWNAT,
    UAIO_OP_UTIMENSAT,
    UAIO_OP_GETDENTS64,
    UAIO_OP_COPY_FILE_RANGE,
    UAIO_OP_READLINKAT,
    UAIO_OP_SYNCFS,
    UAIO_OP_LAST = UAIO_OP_SYNCFS
};

struct uaiocb {
    struct aiocb aiocb;     /* first, so that (struct aiocb *)cb is the same address */
    int32_t uaio_op;        /* enum uaio_op */
    int32_t uaio_flags;     /* open(2) flags, AT_* flags, a mode or advice, per the table */
    int32_t uaio_fd2;       /* the second fd: newdirfd, copy_file_range's out fd */
    uint32_t uaio_mode;     /* a file mode; statx's mask */
    const char *uaio_path;  /* the path (relative to aio_fildes as a dirfd); an xattr's name */
    const char *uaio_path2; /* the second path: rename/link target, symlink's target */
    void *uaio_arg;         /* struct open_how *, struct timespec[2] */
    int64_t uaio_len;       /* a length */
    int64_t uaio_offset2;   /* copy_file_range's out offset */
    uint32_t uaio_uid;      /* fchown(at): (uid_t)-1 keeps it */
    uint32_t uaio_gid;
    uint64_t uaio_reserved[4];
};

#endif
