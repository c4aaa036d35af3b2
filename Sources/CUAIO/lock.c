// The engine's lock and its condition: a futex mutex (Drepper, "Futexes Are Tricky", mutex 3)
// whose contended path spins for a time, not a count, before it sleeps.
//
// Why not glibc's PTHREAD_MUTEX_ADAPTIVE_NP: it spins at most twice its recent average plus
// ten PAUSEs (under a microsecond here) before it sleeps in the kernel. The submitter and a
// pool worker each take the lock once per request and hold it for about as long, so
// contention is routine; at QD32 writes, 0.2% of acquisitions slept (6k futex waits in 3 s)
// and each costs two context switches and a wake-up call (16k, since a lock once contended
// keeps calling futex_wake on unlock), with the thread it slept on running alone meanwhile.
#define _GNU_SOURCE
#include "cuaio.h"

#include <errno.h>
#include <stddef.h>

/// How long a contended lock spins before sleeping; 0 on a single CPU, where the holder cannot
/// run while we spin. Set by each engine as it is built (relaxed: a tuning value, which no
/// other memory depends on).
static uint64_t lock_spin_ns = 0;

void cuaio_lock_set_spin(uint64_t ns) { __atomic_store_n(&lock_spin_ns, ns, __ATOMIC_RELAXED); }

void cuaio_lock_slow(uint32_t *word) {
    uint64_t spin = __atomic_load_n(&lock_spin_ns, __ATOMIC_RELAXED);
    if (spin > 0) {
        uint64_t end = 0;
        for (unsigned i = 0;; i++) {
            // Read before the CAS: spinning on a shared read does not take the line from the holder.
            uint32_t z = 0;
            if (__atomic_load_n(word, __ATOMIC_RELAXED) == 0 &&
                __atomic_compare_exchange_n(word, &z, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
                return;
            cuaio_cpu_relax();
            if ((i & 15) == 0) {  // the clock every 16 rounds: a vDSO call costs about 20 PAUSEs
                uint64_t now = cuaio_now_ns();
                if (end == 0) end = now + spin;
                else if (now >= end) break;
            }
        }
    }
    // 2: locked, and maybe a sleeper, so the unlock must wake one. acquire: the holder's writes.
    while (__atomic_exchange_n(word, 2, __ATOMIC_ACQUIRE) != 0) cuaio_futex_wait(word, 2, NULL);
}

int cuaio_lock_until(uint32_t *word, const struct timespec *deadline) {
    uint32_t z = 0;
    if (__atomic_compare_exchange_n(word, &z, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return 1;
    // As cuaio_lock_slow's sleep; a waiter that gives up leaves the word at 2, which costs the
    // holder one futex_wake for nobody.
    while (__atomic_exchange_n(word, 2, __ATOMIC_ACQUIRE) != 0)
        if (cuaio_futex_wait(word, 2, deadline) == ETIMEDOUT) return 0;
    return 1;
}

int cuaio_cond_wait(uint32_t *lock, uint32_t *sequence, const struct timespec *deadline) {
    // Read under the lock: a signal (also under it) after this changes the value, so the futex
    // wait returns at once (EAGAIN) instead of sleeping through it.
    uint32_t seen = __atomic_load_n(sequence, __ATOMIC_RELAXED);
    cuaio_unlock(lock);
    int e = cuaio_futex_wait(sequence, seen, deadline);
    cuaio_lock(lock);
    return e == ETIMEDOUT ? ETIMEDOUT : 0;
}

void cuaio_cond_signal(uint32_t *sequence) {
    // relaxed: the lock orders it against the waiter's read; the futex compares atomically.
    __atomic_fetch_add(sequence, 1, __ATOMIC_RELAXED);
    cuaio_futex_wake(sequence, 1);
}
