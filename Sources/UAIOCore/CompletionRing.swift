// The one shared completion ring. Every completion, whichever backend produced it, passes
// through `publish`, which
//   1. appends a record to the log (the CLI and batch reaping read it by ticket), and
//   2. bumps the 32-bit `sequence` futex word and wakes the sleepers if there are any.
// Everybody who waits for completions (aio_suspend, lio_listio's LIO_WAIT, later batch reaping)
// waits through `wait(until:deadlineNs:)`: it sleeps on `sequence`, never spins, and is
// async-signal-safe (atomics and the futex system call only; no lock, no allocation).
//
// No lost wake-up: a waiter registers in `waiters`, then reads `sequence`, then checks its
// condition, then sleeps only while `sequence` still has the value it read. A publisher makes
// its result visible, then bumps `sequence`, then reads `waiters`. Both pairs are sequentially
// consistent, so either the publisher sees the waiter (and wakes it) or the waiter's read of
// `sequence` sees the bump (and its check sees the result, which was stored before the bump).
import CUAIO
import Glibc

/// One completion as the log keeps it.
public struct CompletionRecord: Sendable, Equatable {
    public var ticket: UInt64 = 0
    public var request: UInt32 = 0
    public var generation: UInt32 = 0
    public var opcode: UInt8 = 0
    public var backend: UInt8 = 0
    public var error: Int32 = 0
    public var result: Int64 = 0
    public var latencyNs: UInt64 = 0
    public init() {}
}

final class CompletionRing: @unchecked Sendable {
    /// [0] sequence (the futex word), [1] waiters.
    private let words: UnsafeMutablePointer<UInt32>
    private let log: UnsafeMutablePointer<CompletionRecord>
    private let logMask: UInt64
    /// The next log ticket; 64 bits so that it never wraps.
    private let tickets: UnsafeMutablePointer<UInt64>

    init(logEntries: Int = 1024) {
        precondition(logEntries > 0 && logEntries & (logEntries - 1) == 0)
        words = .allocate(capacity: 2)
        words.initialize(repeating: 0, count: 2)
        log = .allocate(capacity: logEntries)
        log.initialize(repeating: CompletionRecord(), count: logEntries)
        logMask = UInt64(logEntries - 1)
        tickets = .allocate(capacity: 1)
        tickets.initialize(to: 0)
    }

    /// The number of completions published so far (wraps at 2^32).
    var sequence: UInt32 { cuaio_load_u32_acquire(words) }
    /// The same, sequentially consistent (pairs with `publish`'s increment; see URingBackend).
    var sequenceSeqCst: UInt32 { cuaio_load_u32_seqcst(words) }

    /// Publishes a completion whose result the caller has already made visible.
    func publish(_ record: CompletionRecord) {
        // relaxed: the ticket only orders log writers among themselves.
        let t = cuaio_add_u64_relaxed(tickets, 1)
        var r = record
        r.ticket = t + 1
        log[Int(t & logMask)] = r
        // seq_cst pairs with the waiter's seq_cst increment of `waiters` (the header comment).
        _ = cuaio_add_u32_seqcst(words, 1)
        if cuaio_load_u32_seqcst(words + 1) != 0 { cuaio_futex_wake(words, Int32.max) }
    }

    /// Sleeps until `done()` is true, `deadlineNs` (CLOCK_MONOTONIC, nil: never) passes
    /// (.timedOut), or a signal arrives (.interrupted). Async-signal-safe.
    func wait(deadlineNs: UInt64?, until done: () -> Bool) -> Errno? {
        _ = cuaio_add_u32_seqcst(words + 1, 1)
        defer { _ = cuaio_sub_u32_seqcst(words + 1, 1) }
        while true {
            let seen = cuaio_load_u32_seqcst(words)
            if done() { return nil }
            var r: CInt
            if let deadlineNs {
                var ts = timespec(tv_sec: Int(deadlineNs / 1_000_000_000), tv_nsec: Int(deadlineNs % 1_000_000_000))
                r = cuaio_futex_wait(words, seen, &ts)
            } else {
                r = cuaio_futex_wait(words, seen, nil)
            }
            switch r {
            case ETIMEDOUT: return done() ? nil : .timedOut
            case EINTR: return done() ? nil : .interrupted
            default: continue  // woken, or the sequence had already moved: check again
            }
        }
    }

    /// The most recent completions, oldest first (for the CLI).
    func recent(_ limit: Int) -> [CompletionRecord] {
        let end = cuaio_load_u64_relaxed(tickets)
        let n = min(UInt64(limit), end, logMask + 1)
        return (end - n..<end).compactMap { t in
            let r = log[Int(t & logMask)]
            return r.ticket == t + 1 ? r : nil
        }
    }
}
