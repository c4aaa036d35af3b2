// liburing.h defines _XOPEN_SOURCE, which changes fd_set and clashes with SwiftGlibc
// (pitfalls.md): include every libc header it needs first, so its own includes are no-ops.
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <liburing.h>
