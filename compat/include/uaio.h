/* UringAIO extensions to POSIX AIO. The POSIX calls themselves keep glibc's <aio.h>
 * declarations and struct aiocb: include <aio.h> as usual, link with -luaio (or preload
 * libuaio.so), and include this header only for what POSIX does not have. */
#ifndef UAIO_H
#define UAIO_H

#include <aio.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The longest list lio_listio accepts (glibc defines no AIO_LISTIO_MAX). */
#define UAIO_LISTIO_MAX 65536

/* Requests this process has submitted through libuaio since it started (or forked). */
uint64_t uaio_requests_submitted(void);
/* Requests submitted and not yet complete. */
int uaio_requests_in_flight(void);
/* Where this process sends an operation now: "uring" or "pool"; NULL for an unknown name.
 * Operations: "read", "write", "fsync", "fdatasync". "uring" means every request of that
 * operation the ring can take, with one exception: buffered writes to regular files always go
 * to the pool (faster there: the kernel cannot do them without blocking). Reads whose data is
 * in the page cache complete on the caller's thread before either (UAIO_TRY_INLINE). */
const char *uaio_backend_for(const char *operation);
/* The library's version, "MAJOR.MINOR.PATCH". */
const char *uaio_version(void);

#ifdef __cplusplus
}
#endif
#endif
