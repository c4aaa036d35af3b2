// The one shared completion ring. Every completion, whichever backend produced it, passes
// through `publish`, which
//   1. appends a record to the log (the CLI and batch reaping read it by ticket), and
//   2. bumps the 32-bit `sequence` word and wakes the sleepers if there are any.
// Everybody who waits for completions (aio_suspend, lio_listio's LIO_WAIT, later batch reaping)
// waits through `wait(until:deadlineNs:)`: it sleeps, never spins, and is async-signal-safe
// (atomics and system calls only; no lock, no allocation).
//
// No lost wake-up: the word is the sequence times two plus a `sleeping` bit. A waiter checks
// its condition, sets the bit in the word it read (CAS), checks again, and sleeps only if no
// publish came in between. A publisher makes its result visible, then adds 2; if the bit was
// set it clears it and wakes everybody. Any publish after the waiter's CAS changes the word
// (the sleep does not start, or is woken by whoever clears the bit), and one before it is
// seen by the second check. The bit, unlike a count of waiters, makes one publisher pay the
// wake-up: the next ones find it clear until the woken waiter sleeps again. (A pool worker
// finishing random buffered writes made four futex calls for each sleep of the waiting thread
// with a count, waking it again while it was still on its way out of the kernel.)
//
// Where a waiter sleeps: on an eventfd, in ppoll with its caller's signal mask. A publish
// wakes every sleeper, also one that waits for other requests, and a futex cannot unblock
// signals as it sleeps: a signal caught in the stretch between two sleeps ran its handler
// unseen, and aio_suspend slept on instead of failing with EINTR (compat/tests/suspend_eintr:
// most signals, with another thread's completions streaming). So a waiter blocks signals, and
// each sleep unblocks them atomically, as pselect does. The eventfds are `sleeperSlots` slots,
// each made on first use and kept; a waiter that finds none free (or cannot make one) sleeps
// on the word as a futex, as before, where a signal can still be missed.
//
// The slots are two bitmaps: `taken` (a waiter owns the slot) and `armed` (its waiter may
// sleep). A publisher that finds the sleeping bit takes every armed bit at once (exchange) and
// writes those slots' eventfds: one atomic however many threads sleep, where a scan of one
// word per slot grew with their number.
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
    /// The futex word: completions published times 2, plus 1 while a waiter may sleep on it.
    private let word: UnsafeMutablePointer<UInt32>
    private let log: UnsafeMutablePointer<CompletionRecord>
    private let logMask: UInt64
    /// The next log ticket; 64 bits so that it never wraps.
    private let tickets: UnsafeMutablePointer<UInt64>
    /// When a publisher last woke a sleeping waiter (CLOCK_MONOTONIC ns; relaxed: a hint for
    /// Engine+Wait, which wants the wait's length without the sleeper's wake-up latency).
    private let wakeNs: UnsafeMutablePointer<UInt64>
    /// Bit i: sleeper slot i is owned by a waiter (seq_cst, like everything the wake-up
    /// protocol touches; see `wait(in:)`).
    private let taken: UnsafeMutablePointer<UInt64>
    /// Bit i: slot i's waiter may sleep; a publisher that clears it writes to the slot's eventfd.
    private let armed: UnsafeMutablePointer<UInt64>
    /// Each slot's eventfd, -1 until its first waiter makes it. (32-bit words, relaxed: the
    /// seq_cst bitmaps order them; a publisher that took an armed bit may read the fd as a
    /// failed waiter forgets it: one the program closed under us, see `wait(in:)`.)
    private let slotFDs: UnsafeMutablePointer<UInt32>
    /// Waiters asleep on the futex (no slot): a publisher wakes the futex only for them.
    private let futexSleepers: UnsafeMutablePointer<UInt32>
    /// One bitmap word; each slot's eventfd is made only when that many threads sleep at once.
    static let sleeperSlots = 64

    init(logEntries: Int = 1024) {
        precondition(logEntries > 0 && logEntries & (logEntries - 1) == 0)
        word = .allocate(capacity: 1)
        word.initialize(to: 0)
        log = .allocate(capacity: logEntries)
        log.initialize(repeating: CompletionRecord(), count: logEntries)
        logMask = UInt64(logEntries - 1)
        tickets = .allocate(capacity: 1)
        tickets.initialize(to: 0)
        wakeNs = .allocate(capacity: 1)
        wakeNs.initialize(to: 0)
        taken = .allocate(capacity: 1)
        taken.initialize(to: 0)
        armed = .allocate(capacity: 1)
        armed.initialize(to: 0)
        slotFDs = .allocate(capacity: Self.sleeperSlots)
        slotFDs.initialize(repeating: Self.noFD, count: Self.sleeperSlots)
        futexSleepers = .allocate(capacity: 1)
        futexSleepers.initialize(to: 0)
    }

    var lastWakeNs: UInt64 { cuaio_load_u64_relaxed(wakeNs) }
    /// Called just before waking a sleeper, here and by URingBackend's doorbell.
    func noteWake() { cuaio_store_u64_relaxed(wakeNs, cuaio_now_ns()) }

    /// The number of completions published so far (wraps at 2^31).
    var sequence: UInt32 { cuaio_load_u32_acquire(word) >> 1 }
    /// The same, sequentially consistent (pairs with `publish`'s increment; see URingBackend).
    var sequenceSeqCst: UInt32 { cuaio_load_u32_seqcst(word) >> 1 }

    /// Publishes a completion whose result the caller has already made visible.
    func publish(_ record: CompletionRecord) {
        // relaxed: the ticket only orders log writers among themselves.
        let t = cuaio_add_u64_relaxed(tickets, 1)
        var r = record
        r.ticket = t + 1
        log[Int(t & logMask)] = r
        // seq_cst: the waiter's CAS and URingBackend's role claim pair with it (their headers);
        // so do the loads below with a waiter's arming and its count on the futex.
        if cuaio_add_u32_seqcst(word, 2) & 1 != 0 {
            _ = cuaio_and_u32_seqcst(word, ~1)
            noteWake()
            var sleepers = cuaio_xchg_u64_seqcst(armed, 0)
            while sleepers != 0 {
                system_eventfdSignal(slotFD(sleepers.trailingZeroBitCount))
                sleepers &= sleepers - 1
            }
            if cuaio_load_u32_seqcst(futexSleepers) > 0 { cuaio_futex_wake(word, Int32.max) }
        }
    }

    /// Sleeps until `done()` is true, `deadlineNs` (CLOCK_MONOTONIC, nil: never) passes
    /// (.timedOut), or a signal arrives (.interrupted). `callerMask`: the caller has blocked
    /// signals (cuaio_block_signals), and this is the mask it saved, for the sleeps; nil: the
    /// wait blocks them itself. Async-signal-safe.
    func wait(deadlineNs: UInt64?, callerMask: UnsafeMutablePointer<sigset_t>? = nil, until done: () -> Bool)
        -> Errno?
    {
        if done() { return nil }
        guard let callerMask else {
            var mask = sigset_t()
            cuaio_block_signals(&mask)
            defer { cuaio_restore_signals(&mask) }
            return wait(deadlineNs: deadlineNs, callerMask: &mask, until: done)
        }
        if let slot = claimSlot(), let outcome = wait(in: slot, deadlineNs: deadlineNs, callerMask, until: done) {
            return outcome
        }
        cuaio_restore_signals(callerMask)  // a futex sleep cannot unblock them itself
        return waitOnFutex(deadlineNs: deadlineNs, until: done)
    }

    /// The wait on a slot's eventfd (the header); nil if ppoll fails: the caller waits on the
    /// futex. If the program closed the eventfd under us, the slot's next waiter makes another.
    private func wait(in slot: Int, deadlineNs: UInt64?, _ callerMask: UnsafeMutablePointer<sigset_t>,
                      until done: () -> Bool) -> Errno??
    {
        let bit = UInt64(1) << UInt64(slot), fd = slotFD(slot)
        defer {
            // A publisher that took the armed bit may still write: the slot's next waiter
            // then wakes once for nothing, and drains.
            _ = cuaio_and_u64_seqcst(armed, ~bit)
            _ = cuaio_and_u64_seqcst(taken, ~bit)
        }
        var drain = false
        while true {
            if drain { system_eventfdDrain(fd) }  // before arming: a write after it is for this sleep
            _ = cuaio_or_u64_seqcst(armed, bit)
            let seen = cuaio_load_u32_seqcst(word)
            if seen & 1 == 0 && cuaio_cas_u32_seqcst(word, seen, seen | 1) == 0 { continue }  // a publish
            if done() { return .some(nil) }
            let r = cuaio_poll_in_masked(fd, deadlineNs ?? 0, callerMask)
            // A publisher that took the armed bit has written, or is about to.
            drain = cuaio_and_u64_seqcst(armed, ~bit) & bit == 0 || r == 0
            switch r {
            case 0: continue  // woken: check again
            case ETIMEDOUT: return done() ? .some(nil) : .timedOut
            case EINTR: return done() ? .some(nil) : .interrupted
            default:
                if r == EBADF { cuaio_store_u32_relaxed(slotFDs + slot, Self.noFD) }
                return nil
            }
        }
    }

    private static let noFD = UInt32(bitPattern: -1)
    private func slotFD(_ i: Int) -> CInt { CInt(bitPattern: cuaio_load_u32_relaxed(slotFDs + i)) }

    /// A free slot, taken, with its eventfd made; nil if none is free or none can be made.
    private func claimSlot() -> Int? {
        var owned = cuaio_load_u64_seqcst(taken)
        while owned != .max {
            let i = (~owned).trailingZeroBitCount, bit = UInt64(1) << UInt64(i)
            guard cuaio_cas_u64_seqcst(taken, owned, owned | bit) != 0 else {
                owned = cuaio_load_u64_seqcst(taken)
                continue
            }
            if slotFD(i) < 0 {  // before arming: publishers see it
                cuaio_store_u32_relaxed(slotFDs + i, UInt32(bitPattern: cuaio_eventfd()))
            }
            if slotFD(i) >= 0 { return i }
            _ = cuaio_and_u64_seqcst(taken, ~bit)
            return nil
        }
        return nil
    }

    /// The wait on the word itself, where signals cannot be blocked around the sleep.
    private func waitOnFutex(deadlineNs: UInt64?, until done: () -> Bool) -> Errno? {
        _ = cuaio_add_u32_seqcst(futexSleepers, 1)
        defer { _ = cuaio_sub_u32_seqcst(futexSleepers, 1) }
        while true {
            if done() { return nil }
            var seen = cuaio_load_u32_seqcst(word)
            if seen & 1 == 0 {
                guard cuaio_cas_u32_seqcst(word, seen, seen | 1) != 0 else { continue }  // a publish: check again
                seen |= 1
            }
            if done() { return nil }
            var r: CInt
            if let deadlineNs {
                var ts = timespec(tv_sec: Int(deadlineNs / 1_000_000_000), tv_nsec: Int(deadlineNs % 1_000_000_000))
                r = cuaio_futex_wait(word, seen, &ts)
            } else {
                r = cuaio_futex_wait(word, seen, nil)
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
