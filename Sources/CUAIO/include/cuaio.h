// CUAIO: the few C helpers Swift cannot express or import.
//
// Swift's Glibc module is built without _GNU_SOURCE, so futex, gettid, the
// rt_sig*queueinfo system calls, SI_ASYNCIO siginfo and pthread_attr_setsigmask_np
// are missing; they live in cuaio.c, compiled with _GNU_SOURCE. This header stays free
// of feature macros so that it never disagrees with SwiftGlibc's view of libc types.
//
// The inline atomics act on memory Swift only holds as raw pointers: futex words and
// the private fields of a user's aiocb. Each names its ordering; callers say why.
#ifndef CUAIO_H
#define CUAIO_H

#include <aio.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

// MARK: atomics on raw memory

static inline uint32_t cuaio_load_u32_acquire(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline uint32_t cuaio_load_u32_relaxed(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void cuaio_store_u32_relaxed(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline uint32_t cuaio_load_u32_seqcst(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline int cuaio_cas_u32_seqcst(uint32_t *p, uint32_t expected, uint32_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline void cuaio_store_u32_seqcst(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline uint32_t cuaio_add_u32_seqcst(uint32_t *p, uint32_t v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline uint32_t cuaio_sub_u32_seqcst(uint32_t *p, uint32_t v) { return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST); }
static inline uint32_t cuaio_and_u32_seqcst(uint32_t *p, uint32_t v) { return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST); }
static inline uint64_t cuaio_add_u64_relaxed(uint64_t *p, uint64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline uint64_t cuaio_load_u64_relaxed(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void cuaio_store_u64_relaxed(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline uint64_t cuaio_load_u64_seqcst(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void cuaio_store_u64_seqcst(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline int cuaio_cas_u64_seqcst(uint64_t *p, uint64_t expected, uint64_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline uint64_t cuaio_or_u64_seqcst(uint64_t *p, uint64_t v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
static inline uint64_t cuaio_and_u64_seqcst(uint64_t *p, uint64_t v) { return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST); }
static inline uint64_t cuaio_xchg_u64_seqcst(uint64_t *p, uint64_t v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
/// This thread's pthread_t as a number (its descriptor's address: aligned, so the low bits are
/// free for a tag). One TLS read, async-signal-safe.
static inline uint64_t cuaio_thread_self(void) { return (uint64_t)pthread_self(); }

/// The CPU's spin-wait hint (PAUSE, YIELD): lets the sibling hyperthread run, saves power.
static inline void cuaio_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// O_DIRECT without _GNU_SOURCE (its value differs between architectures).
static inline int cuaio_o_direct(void) { return __O_DIRECT; }

// MARK: the private fields of struct aiocb (glibc's layout; we use them as glibc does)
//
// __error_code: EINPROGRESS while the request runs, then its errno (0 on success).
//   The completer stores __return_value first, then __error_code with release; readers
//   load __error_code with acquire, so a value other than EINPROGRESS makes
//   __return_value visible (aio_error/aio_return are async-signal-safe: no lock).
// __glibc_reserved: our tag, see UAIOCore/AIOCB.swift.

static inline int cuaio_cb_error_load(const struct aiocb *cb) {
    return __atomic_load_n(&cb->__error_code, __ATOMIC_ACQUIRE);
}
static inline void cuaio_cb_error_store(struct aiocb *cb, int err) {
    __atomic_store_n(&cb->__error_code, err, __ATOMIC_RELEASE);
}
static inline ssize_t cuaio_cb_return_load(const struct aiocb *cb) { return cb->__return_value; }
static inline void cuaio_cb_return_store(struct aiocb *cb, ssize_t r) { cb->__return_value = r; }

// The tag lives in __glibc_reserved[0..15]: magic+state word, slot, generation, pid.
static inline uint32_t *cuaio_cb_tag(struct aiocb *cb) { return (uint32_t *)(void *)cb->__glibc_reserved; }
static inline uint32_t cuaio_cb_tag_load(struct aiocb *cb, int i) {
    return __atomic_load_n(cuaio_cb_tag(cb) + i, __ATOMIC_ACQUIRE);
}
static inline void cuaio_cb_tag_store(struct aiocb *cb, int i, uint32_t v) {
    __atomic_store_n(cuaio_cb_tag(cb) + i, v, __ATOMIC_RELEASE);
}
/// Tag word 1 of a completed aiocb whose completion went to the reap queue (word 2: its
/// ticket's low 32 bits): Engine+Reap.swift, reap.c.
#define CUAIO_TAG_REAP_QUEUED 0xFFFFFFFEu
static inline int cuaio_cb_tag_cas(struct aiocb *cb, int i, uint32_t expected, uint32_t desired) {
    return __atomic_compare_exchange_n(cuaio_cb_tag(cb) + i, &expected, desired, 0, __ATOMIC_ACQ_REL,
                                       __ATOMIC_ACQUIRE);
}

// MARK: struct sigevent's union members (macros in glibc, unreachable from Swift)

static inline void (*cuaio_sigev_function(const struct sigevent *s))(union sigval) {
    return s->sigev_notify_function;
}
static inline pthread_attr_t *cuaio_sigev_attributes(const struct sigevent *s) {
    return s->sigev_notify_attributes;
}
static inline pid_t cuaio_sigev_thread_id(const struct sigevent *s) { return s->_sigev_un._tid; }

// MARK: system calls (cuaio.c)

/// futex(FUTEX_WAIT_BITSET|PRIVATE, CLOCK_MONOTONIC) on `word` while it equals `expected`.
/// `deadline` is absolute CLOCK_MONOTONIC, NULL for none. Returns 0 or an errno
/// (EAGAIN: the word had changed; ETIMEDOUT; EINTR).
int cuaio_futex_wait(uint32_t *word, uint32_t expected, const struct timespec *deadline);
/// Wakes up to `count` waiters on `word`.
void cuaio_futex_wake(uint32_t *word, int count);

// MARK: the engine's lock (lock.c)
//
// A futex word: 0 free, 1 held, 2 held and maybe a sleeper. The uncontended paths are inline.

void cuaio_lock_slow(uint32_t *word);
/// How long a contended cuaio_lock spins before it sleeps (0: it sleeps at once).
void cuaio_lock_set_spin(uint64_t ns);
/// acquire: what the previous holder wrote under the lock is visible to the new one.
static inline void cuaio_lock(uint32_t *word) {
    uint32_t z = 0;
    if (!__atomic_compare_exchange_n(word, &z, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) cuaio_lock_slow(word);
}
/// 1 when taken; never waits.
static inline int cuaio_trylock(uint32_t *word) {
    uint32_t z = 0;
    return __atomic_compare_exchange_n(word, &z, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}
/// 1 when taken by `deadline` (absolute CLOCK_MONOTONIC), 0 if it passed first. Sleeps at once.
int cuaio_lock_until(uint32_t *word, const struct timespec *deadline);
/// release: publishes what was written under the lock. Wakes one sleeper if there may be one.
static inline void cuaio_unlock(uint32_t *word) {
    if (__atomic_exchange_n(word, 0, __ATOMIC_RELEASE) == 2) cuaio_futex_wake(word, 1);
}
/// Releases `lock`, sleeps until cuaio_cond_signal(`sequence`) or `deadline` (absolute
/// CLOCK_MONOTONIC, NULL for none), takes `lock` again. ETIMEDOUT, or 0 (signalled, or spurious).
int cuaio_cond_wait(uint32_t *lock, uint32_t *sequence, const struct timespec *deadline);
/// Wakes one cuaio_cond_wait on `sequence`; call it with the lock held.
void cuaio_cond_signal(uint32_t *sequence);

/// A full (seq_cst) fence: orders a plain store before a later load (Dekker pairings).
static inline void cuaio_fence_seqcst(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
/// A release fence: the stores before it are visible before the stores after it.
static inline void cuaio_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), -1 with errno on failure.
int cuaio_eventfd(void);

pid_t cuaio_gettid(void);
/// membarrier(2) for this process: registers its private expedited command (0, or an errno:
/// seccomp, a kernel before 4.14), then kicks: an IPI to every CPU that runs one of its
/// threads, which returns that thread to user mode through the kernel's exit path, where it
/// runs its pending task_work (URingBackend's header).
int cuaio_membarrier_register(void);
void cuaio_membarrier_kick(void);
/// 1 if `fd` is on a memory file system (tmpfs, ramfs), 0 if not, -errno on error. Their reads
/// are memory copies that never wait for a device, but they do not support RWF_NOWAIT.
int cuaio_fd_in_memory(int fd);
/// preadv2(RWF_NOWAIT) of one buffer: the data if the page cache has it, EAGAIN if the read
/// would block. Returns the count or -errno.
ssize_t cuaio_pread_nowait(int fd, void *buf, size_t n, off_t offset);
/// pread/pwrite as raw system calls, -errno on failure: without glibc's cancellation-point
/// wrapper (two atomic read-modify-writes per call, on the pool's serial path), and aio_read,
/// which does reads inline, must not be a cancellation point.
ssize_t cuaio_pread(int fd, void *buf, size_t n, off_t offset);
ssize_t cuaio_pwrite(int fd, const void *buf, size_t n, off_t offset);
/// rt_sigqueueinfo / rt_tgsigqueueinfo with si_code = SI_ASYNCIO, as glibc's AIO sends.
/// `tid` 0 queues to the process. Returns 0 or an errno.
int cuaio_queue_asyncio_signal(pid_t pid, pid_t tid, int signo, union sigval value);

/// Starts a detached thread with all signals blocked from its first instruction.
/// Returns 0 or an errno.
int cuaio_spawn_thread(void *(*entry)(void *), void *arg, size_t stack_size);
/// SIGEV_THREAD: runs fn(value) on a new detached thread made from `attr` (NULL: default),
/// with an empty signal mask as glibc gives it. Returns 0 or an errno.
int cuaio_spawn_notification(void (*fn)(union sigval), union sigval value, pthread_attr_t *attr);

/// The number of signals the kernel knows (_NSIG), and SIGRTMIN as glibc reports it.
int cuaio_nsig(void);
int cuaio_sigrtmin(void);
int cuaio_sigrtmax(void);
/// IOV_MAX: the most iovecs readv(2) takes (Linux UIO_MAXIOV).
static inline int cuaio_iov_max(void) { return 1024; }

/// The pool's cancel signal. Installs a handler that does nothing (without SA_RESTART, so a
/// blocked system call ends with EINTR) unless the application has a disposition of its own
/// for `sig`. Returns 0 when ours is (or already was) installed, 1 when the application owns
/// the signal (nothing changed), or an errno.
int cuaio_cancel_signal_install(int sig);
/// 1 while `sig` still has the handler cuaio_cancel_signal_install put there, without
/// SA_RESTART: the application may have taken it since (SIG_IGN, a handler of its own).
int cuaio_cancel_signal_intact(int sig);
/// Unblocks `sig` in the calling thread (workers start with every signal blocked).
void cuaio_unblock_signal(int sig);
/// Blocks every signal but the synchronous ones (a fault still reaches its handler), saving
/// the thread's mask in `old`; `cuaio_restore_signals` sets it back. A wait passes `old` to
/// the sleep, which unblocks atomically, as ppoll does (Engine.waitForCompletions).
void cuaio_block_signals(sigset_t *old);
void cuaio_restore_signals(const sigset_t *old);
/// tgkill(getpid(), tid, sig): 0 or an errno.
int cuaio_signal_thread(pid_t tid, int sig);
/// poll(2) on {fd, events} and {wake, POLLIN}, without a timeout. Returns a bit
/// set: 1 when `fd` is ready or in error (or poll itself failed: the read or write that
/// follows reports it, rather than the worker polling for ever), 2 when `wake` is readable;
/// 0 on EINTR.
int cuaio_poll_two(int fd, short events, int wake);
/// ppoll(2) for POLLIN on `fd` for at most `timeout_ns`: 1 when readable, -1 when `fd` is
/// not open (POLLNVAL), else 0. A negative `fd` just sleeps.
int cuaio_poll_in(int fd, uint64_t timeout_ns);
/// ppoll(2) for POLLIN on `fd` until `deadline_ns` (CLOCK_MONOTONIC; 0: none), with `mask`
/// as the thread's signal mask while it sleeps: 0 when readable, ETIMEDOUT, EINTR, EBADF when
/// `fd` is not open, or ppoll's errno.
int cuaio_poll_in_masked(int fd, uint64_t deadline_ns, const sigset_t *mask);

/// CLOCK_MONOTONIC in nanoseconds.
uint64_t cuaio_now_ns(void);

/// One line to stderr with write(2), so it never allocates or takes stdio locks.
void cuaio_write_stderr(const char *line);

/// Makes sure the fork handlers are registered (the library's constructor does it; this only if
/// that failed); idempotent per process image. fork() waits for an engine build in progress,
/// and the child starts with no engine and a fresh creation lock (cuaio.c).
void cuaio_ensure_atfork(void);

/// This thread's count of ring requests in `engine` (URingBackend+Exit.swift), set up on
/// first use so that its exit waits for them: NULL when the thread is exiting, when it has
/// requests in flight in four other engines (tests build several), or when no key could be made.
uint32_t *cuaio_thread_ring(void *engine);
/// What a thread's exit calls while its count is not 0: `hook(engine, count)`.
void cuaio_set_thread_exit_hook(void (*hook)(void *engine, uint32_t *count));

/// glibc's struct aioinit, which <aio.h> declares only under _GNU_SOURCE.
struct cuaio_aioinit {
    int aio_threads, aio_num, aio_locks, aio_usedba, aio_debug, aio_numusers, aio_idle_time, aio_reserved;
};

/// aio_init(3)'s values, kept until the engine is built (threads, num, idle seconds; 0 = unset).
void cuaio_aioinit_store(int threads, int num, int idle_seconds);
void cuaio_aioinit_load(int *threads, int *num, int *idle_seconds);
/// Returns 1 the first time it is called in this process image (forks included), then 0.
int cuaio_first_config_report(void);

/// The process-wide engine pointer, kept in C so that reading it never goes through a
/// Swift lazy global (swift_once is neither fork- nor async-signal-safe).
void *cuaio_engine_load(void);
/// Held while the engine is built (first use only); `store` publishes it (release).
void cuaio_engine_creation_lock(void);
void cuaio_engine_creation_unlock(void);
void cuaio_engine_store(void *engine);
/// The pthread_atfork child handler's work: no engine, a fresh creation lock.
void cuaio_engine_reset(void);

/// Static names for uaio_backend_for.
const char *cuaio_name_uring(void);
const char *cuaio_name_pool(void);
/// The library version, "MAJOR.MINOR.PATCH".
const char *cuaio_version(void);

// MARK: operations beyond read and write (ops.c; the control block is uaio_ops.h's uaiocb)

/// Runs the operation with its system call on this thread: the result or -errno.
long cuaio_op_perform(const void *uaiocb);
/// On the submitting thread if it cannot block: a close, an openat or a statx whose path the
/// kernel has cached (RESOLVE_CACHED). The result, -errno, or -EAGAIN: queue it.
long cuaio_op_inline(const void *uaiocb);
/// Prepares `sqe` (a struct io_uring_sqe) for it: 0, or -1 if io_uring has no opcode for it.
int cuaio_op_prep(void *sqe, const void *uaiocb);
/// 0 if its arguments do not fit the SQE (a length past 32 bits where the SQE has 32): the pool's.
int cuaio_op_ring_fits(const void *uaiocb);

#define CUAIO_INLINE_GROUPS 16
/// A thread's file-system identity: fsuid, fsgid, supplementary groups, and its capability
/// sets (capget's two 32-bit words each; `caps_known` 0 when capget failed).
struct cuaio_creds {
    uint32_t fsuid, fsgid;
    int ngroups;
    int switched;
    int caps_known, caps_switched;
    uint32_t effective[2], permitted[2], inheritable[2];
    gid_t *heap_groups;  /* malloc'ed past CUAIO_INLINE_GROUPS, else NULL: the list is inline */
    gid_t inline_groups[CUAIO_INLINE_GROUPS];
};
/// The calling thread's identity, into `c` (0 or -errno). Release it with cuaio_creds_release.
int cuaio_creds_take(struct cuaio_creds *c);
void cuaio_creds_release(struct cuaio_creds *c);
/// Takes on `want` on this thread (raw, per-thread system calls), remembering the thread's own
/// in `saved`: 0, or -errno (EPERM: not allowed to) with nothing changed. Always pair with leave.
int cuaio_creds_enter(const struct cuaio_creds *want, struct cuaio_creds *saved);
void cuaio_creds_leave(struct cuaio_creds *saved);

// MARK: the reap queue (reap.c): aio_waitcomplete, aio_waitn, uaio_eventfd

struct cuaio_reapq;
/// At least `capacity` entries (a power of two, 1024 or more); NULL without memory.
struct cuaio_reapq *cuaio_reapq_create(uint32_t capacity);
/// Unmaps a queue nothing uses (a failed engine build).
void cuaio_reapq_destroy(struct cuaio_reapq *q);
/// A completing request claims its entry (before its result is stored in the aiocb)...
uint64_t cuaio_reapq_reserve(struct cuaio_reapq *q, struct aiocb *cb);
/// ...and announces it once the result is visible.
void cuaio_reapq_commit(struct cuaio_reapq *q, uint64_t ticket);
/// aio_return is about to take the result of the request with this ticket: 1 if it may (the
/// request left the queue now, or aio_waitn handed it out, or it was dropped), 0 if
/// aio_waitcomplete took it (its result is not aio_return's).
int cuaio_reapq_reap(struct cuaio_reapq *q, uint32_t ticket32);
/// Takes up to `max` completed requests, oldest first; returns how many. `hand`: for
/// aio_waitn, whose caller takes the results with aio_return.
int cuaio_reapq_take(struct cuaio_reapq *q, struct aiocb **out, int max, int hand);
int64_t cuaio_reapq_ready(struct cuaio_reapq *q);
uint64_t cuaio_reapq_dropped(struct cuaio_reapq *q);
/// Adds `add` to, and returns, the count of takes whose result was gone (tests expect 0).
uint64_t cuaio_reapq_stale(struct cuaio_reapq *q, int add);
/// The eventfd readable while requests are ready (made on first call); -1 with errno.
int cuaio_reapq_eventfd(struct cuaio_reapq *q);
/// 1 if a loaded object imports aio_waitcomplete, aio_waitn or uaio_eventfd.
int cuaio_program_imports_reaping(void);

#endif
