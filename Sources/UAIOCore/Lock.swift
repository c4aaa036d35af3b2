// The engine's lock and its conditions: futex words in memory of their own, so their addresses
// never move (Swift may move values; a futex word must not). The engine has one lock: its
// critical sections are a few list operations long, and one lock keeps cancellation, ordering
// and the pool's queues consistent without a lock order to get wrong. lock.c tells why it
// is not a pthread mutex.
import CUAIO
import Glibc

final class Lock: @unchecked Sendable {
    private let word: UnsafeMutablePointer<UInt32>

    init() {
        word = .allocate(capacity: 1)
        word.initialize(to: 0)
    }

    /// How long a contended lock spins before it sleeps, process-wide (Engine.init).
    static func setSpin(ns: UInt64) { cuaio_lock_set_spin(ns) }

    @inline(__always) func lock() { cuaio_lock(word) }
    @inline(__always) func unlock() { cuaio_unlock(word) }
    /// Takes the lock if it is free; never waits (usable where blocking could deadlock).
    @inline(__always) func tryLock() -> Bool { cuaio_trylock(word) != 0 }
    /// Takes the lock unless `deadlineNs` (CLOCK_MONOTONIC) passes first; whether it did.
    func lock(untilNs deadlineNs: UInt64) -> Bool {
        var ts = timespec(tv_sec: Int(deadlineNs / 1_000_000_000), tv_nsec: Int(deadlineNs % 1_000_000_000))
        return cuaio_lock_until(word, &ts) != 0
    }

    @inline(__always) func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }

    /// A condition bound to this lock, timed on CLOCK_MONOTONIC.
    final class Condition: @unchecked Sendable {
        private let sequence: UnsafeMutablePointer<UInt32>
        private let lock: UnsafeMutablePointer<UInt32>

        fileprivate init(_ lock: UnsafeMutablePointer<UInt32>) {
            self.lock = lock
            sequence = .allocate(capacity: 1)
            sequence.initialize(to: 0)
        }

        /// Wakes one waiter (the lock held).
        func signal() { cuaio_cond_signal(sequence) }

        /// Waits (the lock held) until signalled or `deadlineNs` (CLOCK_MONOTONIC) passes.
        /// Returns false on time-out; may return true spuriously.
        func wait(untilNs deadlineNs: UInt64) -> Bool {
            var ts = timespec(tv_sec: Int(deadlineNs / 1_000_000_000), tv_nsec: Int(deadlineNs % 1_000_000_000))
            return cuaio_cond_wait(lock, sequence, &ts) != ETIMEDOUT
        }
    }

    func makeCondition() -> Condition { Condition(word) }
}
