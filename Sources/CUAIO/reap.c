// The reap queue behind aio_waitcomplete (FreeBSD), aio_waitn (illumos) and uaio_eventfd():
// completed requests in completion order, until one of those takes them or aio_return
// reaps them itself. A ring of `capacity` entries, each a cb pointer and a state word
// (ticket << 2 | state).
//
// Producers (whoever completes a request, inline readers included) take no lock: a ticket
// from `tail` (fetch_add), the entry claimed `writing` by CAS, the cb stored, and once the
// result is visible in the aiocb, `ready` by CAS. A consumer (under `lock`: consumers are not
// on the hot path) walks from `head` and takes a ready entry by CAS; aio_return takes its own
// entry by CAS too (async-signal-safe: no lock), knowing its ticket from the aiocb's tag. So
// each entry is taken once, by one of them. A producer that wraps onto an entry nobody took
// (capacity completions left unreaped) drops it: counted in `dropped`.
//
// Why a consumer never gets a wrong cb: it reads the cb between its load of `ready` and its
// CAS; a producer reusing the entry CASes the state word first, so that CAS fails. And it
// hands out a cb only if the aiocb's tag still names the entry's ticket: a program that
// submitted the aiocb again without aio_return (or cleared it) overwrote that result, and the
// new request comes out with its own (the old entry is counted in `stale`).
#define _GNU_SOURCE
#include "cuaio.h"

#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

// HANDED: aio_waitn took it and its result waits for aio_return. TAKEN: reaped for good.
// TAKEN is 0, so that a fresh mapping reads as "ticket 0, taken" everywhere, unwritten.
enum { TAKEN = 0, WRITING = 1, READY = 2, HANDED = 3 };

struct entry {
    _Atomic uint64_t state;
    struct aiocb *_Atomic cb;
};

struct cuaio_reapq {
    _Atomic uint64_t tail;      // next ticket
    uint64_t head;              // consumers (lock): the oldest ticket not yet passed
    _Atomic int64_t ready;      // entries ready
    _Atomic uint64_t dropped;
    _Atomic uint64_t stale;     // taken, yet its aiocb no longer held it: reused or reaped twice by the program
    _Atomic int eventfd;        // -1 until uaio_eventfd()
    pthread_mutex_t lock;
    uint64_t mask;
    struct entry entries[];
};

static inline uint64_t word(uint64_t ticket, int s) { return ticket << 2 | (uint64_t)s; }

struct cuaio_reapq *cuaio_reapq_create(uint32_t capacity) {
    uint32_t n = 1024;
    while (n < capacity) n <<= 1;
    size_t bytes = sizeof(struct cuaio_reapq) + (size_t)n * sizeof(struct entry);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    struct cuaio_reapq *q = p;
    q->mask = n - 1;
    atomic_store_explicit(&q->eventfd, -1, memory_order_relaxed);
    pthread_mutex_init(&q->lock, NULL);
    // Tickets start at n, and every entry as "ticket 0, taken" (the mapping's zeros: its pages
    // cost nothing until a producer reaches them): a consumer that reaches a ticket whose
    // producer has not claimed its entry yet sees an older ticket there and waits, never
    // mistaking the initial word for a request already taken.
    atomic_store_explicit(&q->tail, n, memory_order_relaxed);
    q->head = n;
    return q;
}

void cuaio_reapq_destroy(struct cuaio_reapq *q) {
    pthread_mutex_destroy(&q->lock);
    munmap(q, sizeof(struct cuaio_reapq) + (size_t)(q->mask + 1) * sizeof(struct entry));
}

// Readable while entries are ready: raised on 0 -> 1, lowered on 1 -> 0, and after lowering
// raised again if a producer got in between (so a readiness is never lost; a spurious one
// can be seen, as epoll users expect).
static void became_ready(struct cuaio_reapq *q) {
    // seq_cst: ordered with a consumer's drain-then-recheck below.
    if (atomic_fetch_add_explicit(&q->ready, 1, memory_order_seq_cst) != 0) return;
    int fd = atomic_load_explicit(&q->eventfd, memory_order_acquire);
    if (fd >= 0) { uint64_t one = 1; (void)!write(fd, &one, sizeof one); }
}

static void left_ready(struct cuaio_reapq *q) {
    if (atomic_fetch_sub_explicit(&q->ready, 1, memory_order_seq_cst) != 1) return;
    int fd = atomic_load_explicit(&q->eventfd, memory_order_acquire);
    if (fd < 0) return;
    uint64_t v;
    (void)!read(fd, &v, sizeof v);
    if (atomic_load_explicit(&q->ready, memory_order_seq_cst) > 0) { uint64_t one = 1; (void)!write(fd, &one, sizeof one); }
}

uint64_t cuaio_reapq_reserve(struct cuaio_reapq *q, struct aiocb *cb) {
    // relaxed: tickets only need to be unique; the entry's CAS orders the rest.
    uint64_t t = atomic_fetch_add_explicit(&q->tail, 1, memory_order_relaxed);
    struct entry *e = &q->entries[t & q->mask];
    uint64_t old = atomic_load_explicit(&e->state, memory_order_relaxed);
    // acq_rel: a consumer that read this entry's old cb must see its CAS fail after this.
    while (!atomic_compare_exchange_weak_explicit(&e->state, &old, word(t, WRITING), memory_order_acq_rel,
                                                  memory_order_relaxed)) {}
    if ((old & 3) == READY) {  // capacity completions nobody reaped: the oldest goes
        atomic_fetch_add_explicit(&q->dropped, 1, memory_order_relaxed);
        left_ready(q);
    }
    atomic_store_explicit(&e->cb, cb, memory_order_relaxed);
    return t;
}

void cuaio_reapq_commit(struct cuaio_reapq *q, uint64_t t) {
    struct entry *e = &q->entries[t & q->mask];
    uint64_t expected = word(t, WRITING);
    // release: the cb pointer (and the aiocb's result, stored before) with the READY word.
    // Fails when aio_return took it meanwhile: nothing to announce.
    if (atomic_compare_exchange_strong_explicit(&e->state, &expected, word(t, READY), memory_order_release,
                                                memory_order_relaxed))
        became_ready(q);
}

int cuaio_reapq_reap(struct cuaio_reapq *q, uint32_t ticket32) {
    struct entry *e = &q->entries[ticket32 & q->mask];
    uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(s >> 2) != ticket32) return 1;  // dropped and reused: the result is the caller's
        if ((s & 3) == TAKEN) return 0;  // aio_waitcomplete has it (or aio_return did already)
        if (atomic_compare_exchange_weak_explicit(&e->state, &s, word(s >> 2, TAKEN), memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    if ((s & 3) == READY) left_ready(q);
    return 1;
}

int cuaio_reapq_take(struct cuaio_reapq *q, struct aiocb **out, int max, int hand) {
    int n = 0;
    pthread_mutex_lock(&q->lock);
    uint64_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
    // `head` passes only entries that are done with; an entry whose producer has not finished
    // (preempted, or in a signal handler) holds it back, but not the ready entries after it.
    int advancing = 1;
    for (uint64_t i = q->head; n < max && i < tail; i++) {
        struct entry *e = &q->entries[i & q->mask];
        uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
        uint64_t t = s >> 2;
        if (t == i && (s & 3) == READY) {
            struct aiocb *cb = atomic_load_explicit(&e->cb, memory_order_relaxed);
            if (!atomic_compare_exchange_strong_explicit(&e->state, &s, word(t, hand ? HANDED : TAKEN),
                                                         memory_order_acq_rel, memory_order_acquire)) {
                i--;  // aio_return took it, or a producer reused it: look again
                continue;
            }
            left_ready(q);
            // The aiocb still holds this completion: not if the program submitted it again
            // without aio_return (its tag then names the new request; the old result is gone).
            if (cuaio_cb_tag_load(cb, 1) == CUAIO_TAG_REAP_QUEUED && cuaio_cb_tag_load(cb, 2) == (uint32_t)t)
                out[n++] = cb;
            else
                atomic_fetch_add_explicit(&q->stale, 1, memory_order_relaxed);
        } else if (t < i || (t == i && (s & 3) == WRITING)) {
            advancing = 0;  // not claimed yet, or its result not visible yet: later
            continue;
        }
        // Taken, handed out, or dropped and reused (t > i): done with.
        if (advancing) q->head = i + 1;
    }
    pthread_mutex_unlock(&q->lock);
    return n;
}

int64_t cuaio_reapq_ready(struct cuaio_reapq *q) { return atomic_load_explicit(&q->ready, memory_order_seq_cst); }
uint64_t cuaio_reapq_dropped(struct cuaio_reapq *q) { return atomic_load_explicit(&q->dropped, memory_order_relaxed); }
uint64_t cuaio_reapq_stale(struct cuaio_reapq *q, int add) {
    return atomic_fetch_add_explicit(&q->stale, (uint64_t)add, memory_order_relaxed) + (uint64_t)add;
}

int cuaio_reapq_eventfd(struct cuaio_reapq *q) {
    pthread_mutex_lock(&q->lock);
    int fd = atomic_load_explicit(&q->eventfd, memory_order_relaxed);
    if (fd < 0) {
        fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd >= 0) {
            atomic_store_explicit(&q->eventfd, fd, memory_order_seq_cst);
            if (atomic_load_explicit(&q->ready, memory_order_seq_cst) > 0) { uint64_t one = 1; (void)!write(fd, &one, sizeof one); }
        }
    }
    pthread_mutex_unlock(&q->lock);
    return fd;
}

// MARK: does the program use them?

static const char *const reaping_names[] = {"aio_waitcomplete", "aio_waitn", "uaio_eventfd"};

// The number of symbols in a GNU hash table: past the highest bucket's chain end.
static uint32_t gnu_hash_symbols(const uint32_t *h) {
    uint32_t nbuckets = h[0], symoffset = h[1], bloom = h[2];
    const uint32_t *buckets = h + 4 + bloom * (sizeof(ElfW(Addr)) / 4);
    const uint32_t *chain = buckets + nbuckets;
    uint32_t last = 0;
    for (uint32_t i = 0; i < nbuckets; i++) if (buckets[i] > last) last = buckets[i];
    if (last < symoffset) return symoffset;
    while (!(chain[last - symoffset] & 1)) last++;
    return last + 1;
}

static int imports_reaping(struct dl_phdr_info *info, size_t size, void *found) {
    for (int i = 0; i < info->dlpi_phnum; i++) {
        if (info->dlpi_phdr[i].p_type != PT_DYNAMIC) continue;
        const ElfW(Dyn) *d = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
        const ElfW(Sym) *symtab = NULL;
        const char *strtab = NULL;
        uint32_t count = 0;
        for (; d->d_tag != DT_NULL; d++) {
            // ld.so relocates these in place, except in read-only dynamic sections (the vDSO's).
            ElfW(Addr) a = d->d_un.d_ptr < info->dlpi_addr ? d->d_un.d_ptr + info->dlpi_addr : d->d_un.d_ptr;
            if (d->d_tag == DT_SYMTAB) symtab = (const ElfW(Sym) *)a;
            else if (d->d_tag == DT_STRTAB) strtab = (const char *)a;
            else if (d->d_tag == DT_HASH) count = ((const uint32_t *)a)[1];
            else if (d->d_tag == DT_GNU_HASH && count == 0) count = gnu_hash_symbols((const uint32_t *)a);
        }
        if (!symtab || !strtab) continue;
        for (uint32_t s = 1; s < count; s++) {
            if (symtab[s].st_shndx != SHN_UNDEF) continue;  // imports only, not our own definitions
            for (size_t k = 0; k < sizeof reaping_names / sizeof *reaping_names; k++)
                if (strcmp(strtab + symtab[s].st_name, reaping_names[k]) == 0) { *(int *)found = 1; return 1; }
        }
    }
    return 0;
}

int cuaio_program_imports_reaping(void) {
    int found = 0;
    dl_iterate_phdr(imports_reaping, &found);
    return found;
}
