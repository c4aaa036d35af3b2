// The operations beyond read and write (uaio_ops.h): how the worker pool runs each with its
// system call, how the ring's SQE is prepared for those io_uring has, and the submitter's
// credentials that the pool applies around those that check them. Results follow the
// kernel's convention: the value, or -errno.
#define _GNU_SOURCE
#include "cuaio.h"
#include "uaio_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

// IORING_OP_FTRUNCATE (6.9) is newer than Debian 12's liburing 2.3; the kernel's number.
#define CUAIO_IORING_OP_FTRUNCATE 55

long cuaio_op_perform(const void *p) {
    const struct uaiocb *cb = p;
    const struct aiocb *a = &cb->aiocb;
    const int fd = a->aio_fildes;
    long r;
    do {
        switch (cb->uaio_op) {
        case UAIO_OP_OPENAT: r = openat(fd, cb->uaio_path, cb->uaio_flags, (mode_t)cb->uaio_mode); break;
        case UAIO_OP_OPENAT2: r = syscall(SYS_openat2, fd, cb->uaio_path, cb->uaio_arg, a->aio_nbytes); break;
        case UAIO_OP_CLOSE: return close(fd) == 0 ? 0 : (errno == EINTR ? 0 : -errno);  // closed even on EINTR
        case UAIO_OP_STATX: r = statx(fd, cb->uaio_path, cb->uaio_flags, cb->uaio_mode, (struct statx *)a->aio_buf); break;
        case UAIO_OP_FALLOCATE: r = fallocate(fd, cb->uaio_flags, a->aio_offset, cb->uaio_len); break;
        case UAIO_OP_FTRUNCATE: r = ftruncate(fd, cb->uaio_len); break;
        case UAIO_OP_FADVISE: {
            int e = posix_fadvise(fd, a->aio_offset, cb->uaio_len, cb->uaio_flags);  // returns the error
            return -e;
        }
        case UAIO_OP_READAHEAD: r = readahead(fd, a->aio_offset, (size_t)cb->uaio_len); break;
        case UAIO_OP_SYNC_FILE_RANGE: r = sync_file_range(fd, a->aio_offset, cb->uaio_len, (unsigned)cb->uaio_flags); break;
        case UAIO_OP_RENAMEAT: r = renameat2(fd, cb->uaio_path, cb->uaio_fd2, cb->uaio_path2, (unsigned)cb->uaio_flags); break;
        case UAIO_OP_UNLINKAT: r = unlinkat(fd, cb->uaio_path, cb->uaio_flags); break;
        case UAIO_OP_MKDIRAT: r = mkdirat(fd, cb->uaio_path, (mode_t)cb->uaio_mode); break;
        case UAIO_OP_SYMLINKAT: r = symlinkat(cb->uaio_path2, fd, cb->uaio_path); break;
        case UAIO_OP_LINKAT: r = linkat(fd, cb->uaio_path, cb->uaio_fd2, cb->uaio_path2, cb->uaio_flags); break;
        case UAIO_OP_FGETXATTR: r = fgetxattr(fd, cb->uaio_path, (void *)a->aio_buf, a->aio_nbytes); break;
        case UAIO_OP_FSETXATTR: r = fsetxattr(fd, cb->uaio_path, (const void *)a->aio_buf, a->aio_nbytes, cb->uaio_flags); break;
        case UAIO_OP_FCHMOD: r = fchmod(fd, (mode_t)cb->uaio_mode); break;
        case UAIO_OP_FCHMODAT: r = fchmodat(fd, cb->uaio_path, (mode_t)cb->uaio_mode, cb->uaio_flags); break;
        case UAIO_OP_FCHOWN: r = fchown(fd, cb->uaio_uid, cb->uaio_gid); break;
        case UAIO_OP_FCHOWNAT: r = fchownat(fd, cb->uaio_path, cb->uaio_uid, cb->uaio_gid, cb->uaio_flags); break;
        // The system call itself: glibc's utimensat refuses a NULL path, the kernel takes it as futimens.
        case UAIO_OP_UTIMENSAT: r = syscall(SYS_utimensat, fd, cb->uaio_path, cb->uaio_arg, cb->uaio_flags); break;
        case UAIO_OP_GETDENTS64: r = syscall(SYS_getdents64, fd, (void *)a->aio_buf, a->aio_nbytes); break;
        case UAIO_OP_COPY_FILE_RANGE: {
            off64_t in = a->aio_offset, out = cb->uaio_offset2;
            r = copy_file_range(fd, in < 0 ? NULL : &in, cb->uaio_fd2, out < 0 ? NULL : &out, a->aio_nbytes,
                                (unsigned)cb->uaio_flags);
            break;
        }
        case UAIO_OP_READLINKAT: r = readlinkat(fd, cb->uaio_path, (char *)a->aio_buf, a->aio_nbytes); break;
        case UAIO_OP_SYNCFS: r = syncfs(fd); break;
        default: return -EINVAL;
        }
    } while (r == -1 && errno == EINTR);
    return r == -1 ? -errno : r;
}

// Whether openat2 takes RESOLVE_CACHED here (5.12): 0 not asked yet, 1 yes, 2 no. Asked once
// with a call that cannot fail otherwise; relaxed: racing askers get the same answer.
static int cached_open;

static int has_cached_open(void) {
    int v = __atomic_load_n(&cached_open, __ATOMIC_RELAXED);
    if (v) return v == 1;
    struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_CACHED};
    long fd = syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how);
    if (fd >= 0) close((int)fd);
    v = fd >= 0 || errno == EAGAIN ? 1 : 2;
    __atomic_store_n(&cached_open, v, __ATOMIC_RELAXED);
    return v == 1;
}

// Inline statx calls that took longer than a cached one can (the file system went to a device
// or a server): +8 each, -1 for each fast one. Past 64 (most calls slow, a network file
// system), statx is queued for good; a slow call now and then (a preempted thread, an inode
// read from the disk) does not turn it off. Relaxed: a hint.
static int slow_statx;
#define CUAIO_INLINE_STATX_BUDGET_NS 100000
#define CUAIO_INLINE_STATX_OFF 64

// statx of a path the kernel has cached: an O_PATH open with RESOLVE_CACHED (EAGAIN if any
// component would need a lookup), then statx of that fd, which reads the inode in memory.
static long statx_cached(const struct uaiocb *cb) {
    const char *path = cb->uaio_path;
    int flags = cb->uaio_flags;
    int slow = __atomic_load_n(&slow_statx, __ATOMIC_RELAXED);
    if (!path || slow > CUAIO_INLINE_STATX_OFF || !has_cached_open()) return -EAGAIN;
    uint64_t start = cuaio_now_ns();
    long r;
    if (path[0] == 0) {
        if (!(flags & AT_EMPTY_PATH)) return -EAGAIN;  // (ENOENT, from the queued one)
        r = statx(cb->aiocb.aio_fildes, "", flags, cb->uaio_mode, (struct statx *)cb->aiocb.aio_buf);
    } else {
        struct open_how how = {.flags = O_PATH | O_CLOEXEC | ((flags & AT_SYMLINK_NOFOLLOW) ? O_NOFOLLOW : 0),
                               .resolve = RESOLVE_CACHED};
        long fd = syscall(SYS_openat2, cb->aiocb.aio_fildes, path, &how, sizeof how);
        if (fd < 0) return errno == EAGAIN || errno == EINVAL ? -EAGAIN : -errno;  // ENOENT, EACCES...: statx's too
        r = statx((int)fd, "", AT_EMPTY_PATH | (flags & ~AT_SYMLINK_NOFOLLOW), cb->uaio_mode,
                  (struct statx *)cb->aiocb.aio_buf);
        int e = errno;
        close((int)fd);
        errno = e;
    }
    if (cuaio_now_ns() - start > CUAIO_INLINE_STATX_BUDGET_NS) __atomic_store_n(&slow_statx, slow + 8, __ATOMIC_RELAXED);
    else if (slow > 0) __atomic_store_n(&slow_statx, slow - 1, __ATOMIC_RELAXED);
    // An O_PATH open does not trigger an automount where statx would: an automount point is
    // left to the queued statx (which overwrites the buffer).
    if (r == 0 && !(flags & AT_NO_AUTOMOUNT) && (((struct statx *)cb->aiocb.aio_buf)->stx_attributes & STATX_ATTR_AUTOMOUNT))
        return -EAGAIN;
    return r == -1 ? -errno : r;
}

long cuaio_op_inline(const void *p) {
    const struct uaiocb *cb = p;
    if (cb->uaio_op == UAIO_OP_CLOSE) return cuaio_op_perform(cb);
    if (cb->uaio_op == UAIO_OP_STATX) return statx_cached(cb);
    // A create or truncate writes: never cached. openat2 also refuses mode bits without O_CREAT.
    if (cb->uaio_op != UAIO_OP_OPENAT || (cb->uaio_flags & (O_CREAT | O_TRUNC | __O_TMPFILE)) || !has_cached_open())
        return -EAGAIN;
    struct open_how how = {.flags = (uint64_t)(unsigned)cb->uaio_flags, .resolve = RESOLVE_CACHED};
    long r = syscall(SYS_openat2, cb->aiocb.aio_fildes, cb->uaio_path, &how, sizeof how);
    if (r >= 0) return r;
    // EAGAIN: not all cached. EINVAL: flags openat2 is stricter about than openat: the
    // queued openat gives the true answer.
    return errno == EAGAIN || errno == EINVAL ? -EAGAIN : -errno;
}

int cuaio_op_ring_fits(const void *p) {
    const struct uaiocb *cb = p;
    switch (cb->uaio_op) {
    // Their lengths travel in the SQE's 32-bit len field.
    case UAIO_OP_FADVISE:
    case UAIO_OP_SYNC_FILE_RANGE: return cb->uaio_len >= 0 && cb->uaio_len <= UINT32_MAX;
    case UAIO_OP_FGETXATTR:
    case UAIO_OP_FSETXATTR:
    case UAIO_OP_OPENAT2: return cb->aiocb.aio_nbytes <= UINT32_MAX;
    default: return 1;
    }
}

int cuaio_op_prep(void *s, const void *p) {
    struct io_uring_sqe *sqe = s;
    const struct uaiocb *cb = p;
    const struct aiocb *a = &cb->aiocb;
    const int fd = a->aio_fildes;
    switch (cb->uaio_op) {
    case UAIO_OP_OPENAT: io_uring_prep_openat(sqe, fd, cb->uaio_path, cb->uaio_flags, (mode_t)cb->uaio_mode); break;
    case UAIO_OP_OPENAT2:
        io_uring_prep_openat2(sqe, fd, cb->uaio_path, (struct open_how *)cb->uaio_arg);
        sqe->len = (unsigned)a->aio_nbytes;  // the caller's size, as openat2(2) takes it
        break;
    case UAIO_OP_CLOSE: io_uring_prep_close(sqe, fd); break;
    case UAIO_OP_STATX:
        io_uring_prep_statx(sqe, fd, cb->uaio_path, cb->uaio_flags, cb->uaio_mode, (struct statx *)a->aio_buf);
        break;
    case UAIO_OP_FALLOCATE: io_uring_prep_fallocate(sqe, fd, cb->uaio_flags, a->aio_offset, cb->uaio_len); break;
    case UAIO_OP_FTRUNCATE: io_uring_prep_rw(CUAIO_IORING_OP_FTRUNCATE, sqe, fd, NULL, 0, (uint64_t)cb->uaio_len); break;
    case UAIO_OP_FADVISE: io_uring_prep_fadvise(sqe, fd, (uint64_t)a->aio_offset, cb->uaio_len, cb->uaio_flags); break;
    case UAIO_OP_SYNC_FILE_RANGE:
        io_uring_prep_sync_file_range(sqe, fd, (unsigned)cb->uaio_len, (uint64_t)a->aio_offset, cb->uaio_flags);
        break;
    case UAIO_OP_RENAMEAT:
        io_uring_prep_renameat(sqe, fd, cb->uaio_path, cb->uaio_fd2, cb->uaio_path2, (unsigned)cb->uaio_flags);
        break;
    case UAIO_OP_UNLINKAT: io_uring_prep_unlinkat(sqe, fd, cb->uaio_path, cb->uaio_flags); break;
    case UAIO_OP_MKDIRAT: io_uring_prep_mkdirat(sqe, fd, cb->uaio_path, (mode_t)cb->uaio_mode); break;
    case UAIO_OP_SYMLINKAT: io_uring_prep_symlinkat(sqe, cb->uaio_path2, fd, cb->uaio_path); break;
    case UAIO_OP_LINKAT: io_uring_prep_linkat(sqe, fd, cb->uaio_path, cb->uaio_fd2, cb->uaio_path2, cb->uaio_flags); break;
    case UAIO_OP_FGETXATTR:
        io_uring_prep_fgetxattr(sqe, fd, cb->uaio_path, (char *)a->aio_buf, (unsigned)a->aio_nbytes);
        break;
    case UAIO_OP_FSETXATTR:
        io_uring_prep_fsetxattr(sqe, fd, cb->uaio_path, (const char *)a->aio_buf, cb->uaio_flags,
                                (unsigned)a->aio_nbytes);
        break;
    default: return -1;  // no opcode: the pool's
    }
    return 0;
}

// MARK: credentials

// The list is inline up to CUAIO_INLINE_GROUPS (no pointer into the struct: it is copied).
static gid_t *groups_of(const struct cuaio_creds *c) {
    return c->heap_groups ? c->heap_groups : (gid_t *)c->inline_groups;
}

// Capabilities are per thread, like the fs ids: capget/capset of this thread (pid 0).
static int caps_get(struct cuaio_creds *c) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0) return 0;
    for (int i = 0; i < 2; i++) {
        c->effective[i] = d[i].effective;
        c->permitted[i] = d[i].permitted;
        c->inheritable[i] = d[i].inheritable;
    }
    return 1;
}

static int caps_set_effective(const struct cuaio_creds *c, const uint32_t effective[2]) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    for (int i = 0; i < 2; i++) {
        d[i].effective = effective[i];
        d[i].permitted = c->permitted[i];
        d[i].inheritable = c->inheritable[i];
    }
    return syscall(SYS_capset, &h, d) == 0 ? 0 : -errno;
}

int cuaio_creds_take(struct cuaio_creds *c) {
    c->fsuid = (uint32_t)syscall(SYS_setfsuid, -1);  // an invalid id changes nothing: the current one
    c->fsgid = (uint32_t)syscall(SYS_setfsgid, -1);
    c->caps_known = caps_get(c);
    c->caps_switched = 0;
    c->heap_groups = NULL;
    c->ngroups = 0;
    for (;;) {
        long n = syscall(SYS_getgroups, 0, NULL);
        free(c->heap_groups);
        c->heap_groups = NULL;
        if (n < 0) return -errno;
        if (n > CUAIO_INLINE_GROUPS && !(c->heap_groups = malloc((size_t)n * sizeof(gid_t)))) return -ENOMEM;
        long got = syscall(SYS_getgroups, n, groups_of(c));
        if (got >= 0) { c->ngroups = (int)got; return 0; }
        if (errno != EINVAL) {  // (EINVAL: the list grew meanwhile: again)
            int e = -errno;
            cuaio_creds_release(c);  // a failure holds nothing: cuaio_creds_enter's callers free nothing
            return e;
        }
    }
}

void cuaio_creds_release(struct cuaio_creds *c) {
    free(c->heap_groups);
    c->heap_groups = NULL;
    c->ngroups = 0;
}

static int same_groups(const struct cuaio_creds *a, const struct cuaio_creds *b) {
    return a->ngroups == b->ngroups &&
           memcmp(groups_of(a), groups_of(b), (size_t)a->ngroups * sizeof(gid_t)) == 0;
}

static int switch_ids(const struct cuaio_creds *want, struct cuaio_creds *saved) {
    int e;
    saved->switched = 1;
    if (!same_groups(saved, want) && syscall(SYS_setgroups, (size_t)want->ngroups, groups_of(want)) != 0) {
        e = -errno;
        cuaio_creds_leave(saved);
        return e;
    }
    syscall(SYS_setfsgid, want->fsgid);
    syscall(SYS_setfsuid, want->fsuid);
    // setfsuid/setfsgid report no error: check that they took, or run nothing.
    if ((uint32_t)syscall(SYS_setfsuid, -1) != want->fsuid || (uint32_t)syscall(SYS_setfsgid, -1) != want->fsgid) {
        cuaio_creds_leave(saved);
        return -EPERM;
    }
    return 0;
}

// Per-thread raw system calls: glibc's setgroups/setfsuid wrappers would change every thread.
// The effective capabilities last, since setfsuid() drops or raises the file-system ones: the
// submitter's, within what this thread may hold (a capability the submitter has and the worker
// does not is missing; one the submitter dropped is never used for it).
int cuaio_creds_enter(const struct cuaio_creds *want, struct cuaio_creds *saved) {
    saved->switched = 0;
    int e = cuaio_creds_take(saved);
    if (e) return e;
    if (saved->fsuid != want->fsuid || saved->fsgid != want->fsgid || !same_groups(saved, want)) {
        e = switch_ids(want, saved);
        if (e) return e;
    }
    if (!want->caps_known || !saved->caps_known) return 0;
    struct cuaio_creds now;
    if (!caps_get(&now)) return 0;
    uint32_t effective[2] = {want->effective[0] & now.permitted[0], want->effective[1] & now.permitted[1]};
    if (effective[0] == now.effective[0] && effective[1] == now.effective[1]) return 0;
    saved->caps_switched = 1;
    if ((e = caps_set_effective(&now, effective)) != 0) {
        cuaio_creds_leave(saved);
        return e;
    }
    return 0;
}

void cuaio_creds_leave(struct cuaio_creds *saved) {
    if (saved->switched) {
        // Back to this thread's effective ids, read now: a setuid() or setgid() of the process
        // meanwhile (glibc applies them to every thread, this one included) wins over `saved`.
        uid_t r, e, s;
        gid_t gr, ge, gs;
        syscall(SYS_setgroups, (size_t)saved->ngroups, groups_of(saved));
        if (syscall(SYS_getresgid, &gr, &ge, &gs) == 0) syscall(SYS_setfsgid, ge);
        if (syscall(SYS_getresuid, &r, &e, &s) == 0) syscall(SYS_setfsuid, e);
    }
    if (saved->caps_switched) caps_set_effective(saved, saved->effective);
    saved->switched = 0;
    saved->caps_switched = 0;
    cuaio_creds_release(saved);
}
