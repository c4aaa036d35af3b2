/* UringAIO extensions to POSIX AIO. The POSIX calls themselves keep glibc's <aio.h>
 * declarations and struct aiocb: include <aio.h> as usual, link with -luaio (or preload
 * libuaio.so), and include this header only for what POSIX does not have. */
#ifndef UAIO_H
#define UAIO_H

#include <aio.h>
#include <stdint.h>
#include <sys/uio.h>

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

/* Requests this process has submitted through libuaio since it started (or forked). */
uint64_t uaio_requests_submitted(void);
/* Requests submitted and not yet complete. */
int uaio_requests_in_flight(void);
/* Where this process sends an operation now: "uring" or "pool"; NULL for an unknown name.
 * Operations: "read", "write", "fsync", "fdatasync", "readv", "writev". "uring" means every request of that
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
