// A pthread mutex and condition variables in memory of their own, so their addresses never
// move (Swift may move values; pthread objects must not be). The engine has one lock: its
// critical sections are a few list operations long, and one lock keeps cancellation, ordering
// and the pool's queues consistent without a lock order to get wrong.
import CUAIO
import Glibc

final class Lock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        var attr = pthread_mutexattr_t()
        pthread_mutexattr_init(&attr)
        // Adaptive: spin briefly before sleeping, since every holder is short.
        pthread_mutexattr_settype(&attr, CInt(PTHREAD_MUTEX_ADAPTIVE_NP))
        pthread_mutex_init(mutex, &attr)
        pthread_mutexattr_destroy(&attr)
    }

    @inline(__always) func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) func unlock() { pthread_mutex_unlock(mutex) }
    /// Takes the lock if it is free; never waits (usable where blocking could deadlock).
    @inline(__always) func tryLock() -> Bool { pthread_mutex_trylock(mutex) == 0 }

    @inline(__always) func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }

    /// A condition variable bound to this lock, timed on CLOCK_MONOTONIC.
    final class Condition: @unchecked Sendable {
        private let cond: UnsafeMutablePointer<pthread_cond_t>
        private let mutex: UnsafeMutablePointer<pthread_mutex_t>

        fileprivate init(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) {
            self.mutex = mutex
            cond = .allocate(capacity: 1)
            var attr = pthread_condattr_t()
            pthread_condattr_init(&attr)
            pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
            pthread_cond_init(cond, &attr)
            pthread_condattr_destroy(&attr)
        }

        func signal() { pthread_cond_signal(cond) }

        /// Waits (the lock held) until signalled or `deadlineNs` (CLOCK_MONOTONIC) passes.
        /// Returns false on time-out.
        func wait(untilNs deadlineNs: UInt64) -> Bool {
            var ts = timespec(tv_sec: Int(deadlineNs / 1_000_000_000), tv_nsec: Int(deadlineNs % 1_000_000_000))
            return pthread_cond_timedwait(cond, mutex, &ts) != ETIMEDOUT
        }
    }

    func makeCondition() -> Condition { Condition(mutex) }
}
