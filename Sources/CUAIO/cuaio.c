// System calls and thread helpers that need _GNU_SOURCE (see cuaio.h).
#define _GNU_SOURCE
#include "cuaio.h"

#include <errno.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <unistd.h>

int cuaio_futex_wait(uint32_t *word, uint32_t expected, const struct timespec *deadline) {
    long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, deadline, NULL,
                     FUTEX_BITSET_MATCH_ANY);
    return r == 0 ? 0 : errno;
}

void cuaio_futex_wake(uint32_t *word, int count) {
    syscall(SYS_futex, word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, count, NULL, NULL, 0);
}

pid_t cuaio_gettid(void) { return (pid_t)syscall(SYS_gettid); }

int cuaio_membarrier_register(void) {
    return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 ? 0 : errno;
}

void cuaio_membarrier_kick(void) { syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0); }

int cuaio_fd_in_memory(int fd) {
    struct statfs st;
    if (fstatfs(fd, &st) != 0) return -errno;
    return st.f_type == TMPFS_MAGIC || st.f_type == RAMFS_MAGIC;
}

ssize_t cuaio_pread_nowait(int fd, void *buf, size_t n, off_t offset) {
    struct iovec iov = {buf, n};
    // preadv2's offset goes in two registers (low, high), as glibc passes it on 64-bit.
    long r = syscall(SYS_preadv2, fd, &iov, 1, (long)offset, (long)((unsigned long long)offset >> 32), RWF_NOWAIT);
    return r < 0 ? -errno : r;
}

ssize_t cuaio_pread(int fd, void *buf, size_t n, off_t offset) {
    long r = syscall(SYS_pread64, fd, buf, n, offset);
    return r < 0 ? -errno : r;
}

ssize_t cuaio_pwrite(int fd, const void *buf, size_t n, off_t offset) {
    long r = syscall(SYS_pwrite64, fd, buf, n, offset);
    return r < 0 ? -errno : r;
}

int cuaio_queue_asyncio_signal(pid_t pid, pid_t tid, int signo, union sigval value) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    info.si_signo = signo;
    info.si_code = SI_ASYNCIO;
    info.si_pid = getpid();
    info.si_uid = getuid();
    info.si_value = value;
    long r = tid ? syscall(SYS_rt_tgsigqueueinfo, pid, tid, signo, &info)
                 : syscall(SYS_rt_sigqueueinfo, pid, signo, &info);
    return r == 0 ? 0 : errno;
}

static void cancel_handler(int sig) {
    (void)sig;  // nothing to do: being delivered is what ends the worker's system call
}

int cuaio_cancel_signal_install(int sig) {
    struct sigaction old, ours;
    if (sigaction(sig, NULL, &old) != 0) return errno;
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == cancel_handler) return 0;
    if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL) return 1;  // the application's
    memset(&ours, 0, sizeof ours);
    ours.sa_handler = cancel_handler;
    sigfillset(&ours.sa_mask);
    ours.sa_flags = 0;  // no SA_RESTART: the interrupted read must return EINTR
    return sigaction(sig, &ours, NULL) == 0 ? 0 : errno;
}

int cuaio_cancel_signal_intact(int sig) {
    struct sigaction now;
    if (sigaction(sig, NULL, &now) != 0) return 0;
    return !(now.sa_flags & (SA_SIGINFO | SA_RESTART)) && now.sa_handler == cancel_handler;
}

void cuaio_unblock_signal(int sig) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

void cuaio_block_signals(sigset_t *old) {
    static const int synchronous[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS};
    sigset_t set;
    sigfillset(&set);
    for (size_t i = 0; i < sizeof synchronous / sizeof *synchronous; i++) sigdelset(&set, synchronous[i]);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

void cuaio_restore_signals(const sigset_t *old) { pthread_sigmask(SIG_SETMASK, old, NULL); }

int cuaio_signal_thread(pid_t tid, int sig) {
    return syscall(SYS_tgkill, getpid(), tid, sig) == 0 ? 0 : errno;
}

int cuaio_poll_in(int fd, uint64_t timeout_ns) {
    struct pollfd p = {fd, POLLIN, 0};
    struct timespec ts = {(time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u)};
    if (ppoll(&p, 1, &ts, NULL) <= 0) return 0;
    return p.revents & POLLNVAL ? -1 : 1; /* closed under us: "readable" for ever */
}

int cuaio_poll_in_masked(int fd, uint64_t deadline_ns, const sigset_t *mask) {
    struct pollfd p = {fd, POLLIN, 0};
    struct timespec ts, *timeout = NULL;
    if (deadline_ns) {
        uint64_t now = cuaio_now_ns(), left = deadline_ns > now ? deadline_ns - now : 0;
        ts.tv_sec = (time_t)(left / 1000000000u);
        ts.tv_nsec = (long)(left % 1000000000u);
        timeout = &ts;
    }
    int r = ppoll(&p, 1, timeout, mask);
    if (r > 0) return p.revents & POLLNVAL ? EBADF : 0; /* closed under us: never readable */
    return r == 0 ? ETIMEDOUT : errno;
}

int cuaio_poll_two(int fd, short events, int wake) {
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = wake, .events = POLLIN}};
    if (poll(p, 2, -1) < 0) return errno == EINTR ? 0 : 1; /* an error: let the read report it */
    return (p[0].revents ? 1 : 0) | (p[1].revents ? 2 : 0);
}

int cuaio_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

int cuaio_spawn_thread(void *(*entry)(void *), void *arg, size_t stack_size) {
    pthread_attr_t attr;
    sigset_t all;
    pthread_t thread;
    int r = pthread_attr_init(&attr);
    if (r) return r;
    sigfillset(&all);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (stack_size) pthread_attr_setstacksize(&attr, stack_size);
    pthread_attr_setsigmask_np(&attr, &all);
    r = pthread_create(&thread, &attr, entry, arg);
    pthread_attr_destroy(&attr);
    return r;
}

struct notification {
    void (*fn)(union sigval);
    union sigval value;
};

static void thread_ring_leaving(void);

static void *notification_main(void *p) {
    struct notification n = *(struct notification *)p;
    free(p);
    // The thread ends when the function returns: what it submits goes to the pool, not to the
    // ring, whose requests would have to be handed over at its exit (URingBackend+Exit.swift).
    thread_ring_leaving();
    // We are created from a worker whose signals are all blocked; glibc starts SIGEV_THREAD
    // functions with an empty mask. (The caller's attributes are shared: never modify them.)
    sigset_t empty;
    sigemptyset(&empty);
    pthread_sigmask(SIG_SETMASK, &empty, NULL);
    n.fn(n.value);
    return NULL;
}

int cuaio_spawn_notification(void (*fn)(union sigval), union sigval value, pthread_attr_t *user_attr) {
    struct notification *n = malloc(sizeof *n);
    if (!n) return ENOMEM;
    n->fn = fn;
    n->value = value;
    pthread_attr_t own;
    pthread_attr_t *attr = user_attr;
    if (!attr) {
        pthread_attr_init(&own);
        attr = &own;
    }
    // Nobody can join a notification thread: detach it whatever the caller's attributes say.
    int detach = PTHREAD_CREATE_DETACHED;
    pthread_attr_getdetachstate(attr, &detach);
    pthread_t thread;
    int r = pthread_create(&thread, attr, notification_main, n);
    if (attr == &own) pthread_attr_destroy(&own);
    if (r) {
        free(n);
        return r;
    }
    if (detach == PTHREAD_CREATE_JOINABLE) pthread_detach(thread);
    return 0;
}

int cuaio_nsig(void) { return _NSIG; }
int cuaio_sigrtmin(void) { return SIGRTMIN; }
int cuaio_sigrtmax(void) { return SIGRTMAX; }

uint64_t cuaio_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void cuaio_write_stderr(const char *line) {
    size_t n = strlen(line);
    while (n) {
        ssize_t w = write(2, line, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        line += w;
        n -= (size_t)w;
    }
}

static int atfork_registered;
static void *engine_ptr;
/* Serialises building the engine (first use only), so that two threads racing to their first
 * call never build two engines (each may open a ring and map its tables). fork() waits for a
 * build in progress (the prepare handler takes this lock): the build makes Swift type
 * metadata under the runtime's own locks, which a child forked meanwhile would inherit held
 * and hang on. `creator` is the thread inside, relaxed (only that thread compares it with
 * itself): a fork from a signal handler that interrupted the build must not wait for itself. */
static pthread_mutex_t engine_creation = PTHREAD_MUTEX_INITIALIZER;
static pthread_t creator;
static int creating, fork_took_lock;

static void fork_prepare(void) {
    if (__atomic_load_n(&creating, __ATOMIC_RELAXED) &&
        pthread_equal(__atomic_load_n(&creator, __ATOMIC_RELAXED), pthread_self()))
        return;
    pthread_mutex_lock(&engine_creation);
    fork_took_lock = 1;  // (read by this thread alone, in the parent handler or the child)
}

static void fork_parent(void) {
    if (!fork_took_lock) return;
    fork_took_lock = 0;
    pthread_mutex_unlock(&engine_creation);
}

/* A thread's ring requests (URingBackend+Exit.swift): per engine (a process has one; tests
 * build several), how many are in the kernel's hands (written under that engine's lock by the
 * threads that submit and reap them; read by this thread alone without it, relaxed, as a hint).
 * An entry whose count is 0 is free: no request points at it. Initial-exec: the first access
 * of a dynamic TLS block may allocate. The key's destructor runs when the thread exits, and
 * hands what is left over to each engine (`exit_hook`), which waits for it. */
#define THREAD_RING_ENGINES 4
struct thread_ring {
    int registered, exiting;
    struct {
        void *engine;
        uint32_t in_flight;
    } of[THREAD_RING_ENGINES];
};
static __thread struct thread_ring thread_ring __attribute__((tls_model("initial-exec")));
static pthread_key_t thread_ring_key;
static pthread_once_t thread_ring_once = PTHREAD_ONCE_INIT;
static int thread_ring_key_ok;
static void (*exit_hook)(void *, uint32_t *);

static void thread_ring_end(void *record) {
    struct thread_ring *t = record;
    t->exiting = 1;
    void (*hook)(void *, uint32_t *) = __atomic_load_n(&exit_hook, __ATOMIC_ACQUIRE);
    for (int i = 0; hook && i < THREAD_RING_ENGINES; i++)
        if (t->of[i].engine && __atomic_load_n(&t->of[i].in_flight, __ATOMIC_RELAXED) > 0)
            hook(t->of[i].engine, &t->of[i].in_flight);
}

static void thread_ring_leaving(void) { thread_ring.exiting = 1; }

static void thread_ring_key_create(void) { thread_ring_key_ok = pthread_key_create(&thread_ring_key, thread_ring_end) == 0; }

void cuaio_set_thread_exit_hook(void (*hook)(void *, uint32_t *)) { __atomic_store_n(&exit_hook, hook, __ATOMIC_RELEASE); }

uint32_t *cuaio_thread_ring(void *engine) {
    struct thread_ring *t = &thread_ring;
    if (t->exiting) return NULL;
    int mine = -1;
    for (int i = 0; i < THREAD_RING_ENGINES && mine < 0; i++)
        if (t->of[i].engine == engine) mine = i;
    for (int i = 0; i < THREAD_RING_ENGINES && mine < 0; i++)
        if (__atomic_load_n(&t->of[i].in_flight, __ATOMIC_RELAXED) == 0) mine = i;
    if (mine < 0) return NULL;
    if (!t->registered) {
        pthread_once(&thread_ring_once, thread_ring_key_create);
        if (!thread_ring_key_ok || pthread_setspecific(thread_ring_key, t) != 0) return NULL;
        t->registered = 1;
    }
    t->of[mine].engine = engine;
    return &t->of[mine].in_flight;
}

static void fork_child(void) {
    fork_took_lock = 0;
    __atomic_store_n(&creating, 0, __ATOMIC_RELAXED);
    /* The parent's ring requests are not this child's. */
    memset(thread_ring.of, 0, sizeof thread_ring.of);
    /* The creation lock the prepare handler took (or a parent thread held) is fresh here, and
     * the parent's engine is not this child's (left unreleased: its locks may have been held
     * by threads that do not exist here). */
    cuaio_engine_reset();
}

/* The fork handlers are registered when the library is loaded, not at first use: registered
 * by the first caller, a second caller could take the creation lock before they existed, and a
 * fork then left the child that lock held (a hang in its first AIO call). Registering starts
 * no thread and installs no signal handler; glibc drops the handlers at dlclose. */
__attribute__((constructor)) static void register_fork_handlers(void) {
    atfork_registered = pthread_atfork(fork_prepare, fork_parent, fork_child) == 0;
}

void cuaio_ensure_atfork(void) {
    // Should the constructor's registration have failed (ENOMEM): once here, before the build.
    if (!__atomic_load_n(&atfork_registered, __ATOMIC_ACQUIRE) &&
        __atomic_exchange_n(&atfork_registered, 1, __ATOMIC_ACQ_REL) == 0)
        pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void *cuaio_engine_load(void) { return __atomic_load_n(&engine_ptr, __ATOMIC_ACQUIRE); }
void cuaio_engine_creation_lock(void) {
    pthread_mutex_lock(&engine_creation);
    __atomic_store_n(&creator, pthread_self(), __ATOMIC_RELAXED);
    __atomic_store_n(&creating, 1, __ATOMIC_RELAXED);
}
void cuaio_engine_creation_unlock(void) {
    __atomic_store_n(&creating, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&engine_creation);
}
void cuaio_engine_store(void *engine) { __atomic_store_n(&engine_ptr, engine, __ATOMIC_RELEASE); }
void cuaio_engine_reset(void) {
    /* In a forked child: the parent's engine is not ours, and the mutex may have been held by a
     * parent thread that does not exist here. */
    __atomic_store_n(&engine_ptr, NULL, __ATOMIC_RELEASE);
    pthread_mutex_init(&engine_creation, NULL);
}

static int aioinit_values[3];

void cuaio_aioinit_store(int threads, int num, int idle_seconds) {
    __atomic_store_n(&aioinit_values[0], threads, __ATOMIC_RELAXED);
    __atomic_store_n(&aioinit_values[1], num, __ATOMIC_RELAXED);
    __atomic_store_n(&aioinit_values[2], idle_seconds, __ATOMIC_RELAXED);
}

void cuaio_aioinit_load(int *threads, int *num, int *idle_seconds) {
    *threads = __atomic_load_n(&aioinit_values[0], __ATOMIC_RELAXED);
    *num = __atomic_load_n(&aioinit_values[1], __ATOMIC_RELAXED);
    *idle_seconds = __atomic_load_n(&aioinit_values[2], __ATOMIC_RELAXED);
}

static int config_reported;

int cuaio_first_config_report(void) { return __atomic_exchange_n(&config_reported, 1, __ATOMIC_ACQ_REL) == 0; }

const char *cuaio_version(void) { return "0.1.0"; }
const char *cuaio_name_uring(void) { return "uring"; }
const char *cuaio_name_pool(void) { return "pool"; }
