// lio_listio, aio_suspend and aio_init on the engine. Waiting goes through the shared
// completion ring only (or the io_uring CQ, which feeds it), so it is async-signal-safe.
//
// Spinning before sleeping. A wait that sleeps costs a ppoll or io_uring_enter sleep here and
// a wake-up call on the completing side; on a virtual machine, waking an idle CPU is an IPI to
// a halted vCPU, which costs more than the I/O it reports. A pool worker pays that call on the
// serial path of every request behind it, so a wait spins while the pool has work, before it
// sleeps: it checks its condition (and the CQ, as aio_error does) for up to UAIO_SPIN_US (50 us
// by default). Measured, 4 KiB page-cache writes at QD32: 1.34x the IOPS at the same CPU per
// I/O. Ring requests the kernel completes without such a cost: spinning for O_DIRECT reads at
// QD8 cost 17% more CPU per I/O for the same IOPS, so ring-only waits sleep at once.
//
// Only when waits have lately been short: a moving average of at most half the limit. A wait
// that slept counts until the publisher's wake-up call, not until the sleeper ran again: that
// latency averaged 88 us here against 6.5 us for the spins that succeeded, and counting it
// kept spinning off for good. Once off, one wait in 64 spins half the limit as a probe, and a
// probe that succeeds resets the average (a run of slow waits had otherwise kept it off: 157k
// context switches in 3 s instead of 5k). Waits on a disk (100 us and more) keep the average
// high and cost one half-length probe in 64. A single CPU never spins: the thread it waits for
// could not run meanwhile.
import CUAIO
import CURing
import Glibc

extension Engine {
    /// LIO_READV = LIO_READ | 4, LIO_WRITEV = LIO_WRITE | 4 (uaio.h; FreeBSD's LIO_VECTORED).
    static let lioVectored: CInt = 4

    /// lio_listio: submits every entry of `list` (NULL and LIO_NOP entries are skipped); with
    /// `wait` waits for all of them, otherwise notifies `listNotification` once all have
    /// completed. Returns nil, or .again (LIO_NOWAIT) / .io (LIO_WAIT) when some entries could
    /// not be queued (each entry's aio_error tells its own story), or .interrupted if a signal
    /// cut LIO_WAIT's wait short.
    public func listIO(_ list: UnsafePointer<AIOCB?>, count: Int, wait: Bool, listNotification: Notification)
        -> Errno?
    {
        let group = listNotification == .none ? nilIndex : openGroup(listNotification)
        guard let group else { return .again }
        var failed = false, outOfResources = false
        var deferred = Deferred()
        for i in 0..<count {
            guard let cb = list[i] else { continue }
            let opcode: Opcode
            switch cb.pointee.aio_lio_opcode {
            case CInt(LIO_NOP): continue
            case CInt(LIO_READ): opcode = .read
            case CInt(LIO_WRITE): opcode = .write
            case CInt(LIO_READ) | Self.lioVectored: opcode = .readv
            case CInt(LIO_WRITE) | Self.lioVectored: opcode = .writev
            case CInt(LIO_UAIO):
                guard let op = Self.extendedOpcode(cb) else { fallthrough }
                opcode = op
            default:
                // An aiocb in flight is never touched: the live request keeps it.
                if !cb.isInProgress(pid: pid) { cb.markFailed(.invalid, pid: pid) }
                failed = true
                continue
            }
            if let e = submit(cb, opcode, group: group, &deferred) {
                if !cb.isInProgress(pid: pid) { cb.markFailed(e, pid: pid) }  // (as above)
                failed = true
                if case .again = e { outOfResources = true }
            }
        }
        // Once for the whole list: one io_uring_enter for every entry the ring took.
        afterUnlock(&deferred)
        if group != nilIndex { closeGroup(group) }
        if wait {
            // Entries that failed are not in progress, so they count as done.
            let err = waitForCompletions(deadlineNs: nil) {
                (0..<count).allSatisfy { list[$0].map { !$0.isInProgress(pid: pid) } ?? true }
            }
            if let err { return err }
            // EIO when any entry failed, at submission or while running (POSIX, glibc).
            if failed || (0..<count).contains(where: { i in
                list[i].map { $0.pointee.aio_lio_opcode != CInt(LIO_NOP) && $0.errorCode != 0 } ?? false
            }) {
                return .io
            }
            return nil
        }
        // LIO_NOWAIT: an entry's own error is in its aiocb; the call fails only for resources.
        return outOfResources ? .again : nil
    }

    /// aio_suspend: nil as soon as one of `list` is not in progress, .again when `timeoutNs`
    /// passes first, .interrupted on a signal. Async-signal-safe.
    public static func suspend(_ list: UnsafePointer<AIOCB?>, count: Int, timeoutNs: UInt64?) -> Errno? {
        // Borrowed, not retained (withExisting): one wait per few requests at depth.
        let outcome: Errno?? = withExisting { engine in
            let pid = engine.pid
            let anyDone = {
                (0..<count).contains { i in list[i].map { !$0.isInProgress(pid: pid) } ?? false }
            }
            // Nothing to wait for: an empty list, or none in progress.
            if anyDone() || !(0..<count).contains(where: { list[$0] != nil }) { return nil }
            let deadline = timeoutNs.map { cuaio_now_ns() &+ $0 }
            switch engine.waitForCompletions(deadlineNs: deadline, until: anyDone) {
            case nil: return nil
            case .timedOut?: return .again
            case let e?: return e
            }
        }
        return outcome ?? nil  // no engine: no request of this process is in progress
    }

    /// Waits until `done()`: in io_uring_enter, reaping the ring's completions itself, when the
    /// ring lets this thread (URingBackend.waitInKernel); on the completion ring otherwise, or
    /// for what is left of the wait once the ring handed back. Async-signal-safe.
    ///
    /// Signals are blocked for the whole wait, and each sleep unblocks them atomically, as
    /// pselect does: a signal caught anywhere in the wait, in a spin, between two sleeps or on
    /// the way from one sleep to the other, ends it with EINTR at the next sleep, instead of
    /// running its handler unseen while the wait goes on (CompletionRing's header).
    func waitForCompletions(deadlineNs: UInt64?, until done: () -> Bool) -> Errno? {
        var callerMask = sigset_t()
        cuaio_block_signals(&callerMask)
        defer { cuaio_restore_signals(&callerMask) }  // after the role is released (a handler may wait)
        let start = cuaio_now_ns()
        if spinLimitNs > 0 && withPool({ $0.activeHint }) > 0 {
            // Waits short lately: spin the whole limit. Else one wait in `probeEvery` spins half
            // of it, to see whether they have become short again (header).
            let short = cuaio_load_u64_relaxed(recentWaitNs) <= spinLimitNs / 2
            let probe = !short && cuaio_add_u64_relaxed(waitProbes, 1) % Self.probeEvery == 0
            if (short || probe) && spin(until: min(start &+ (short ? spinLimitNs : spinLimitNs / 2), deadlineNs ?? .max), done) {
                noteWait(since: start, until: cuaio_now_ns(), probe: probe)
                return nil
            }
        }
        let outcome: Errno?
        let inKernel: Errno?? =
            withRing { $0.waitInKernel(deadlineNs: deadlineNs, callerMask: &callerMask, until: done) } ?? nil
        if let o = inKernel {
            outcome = o
        } else {
            outcome = waitOnCompletionRing(deadlineNs: deadlineNs, callerMask: &callerMask, until: done)
        }
        if outcome == nil && spinLimitNs > 0 {
            let woken = ring.lastWakeNs  // (a sleep in io_uring_enter that a CQE ended has none)
            noteWait(since: start, until: woken > start ? woken : cuaio_now_ns(), probe: false)
        }
        return outcome
    }

    static let probeEvery: UInt64 = 64

    /// Waits on the completion ring. Nobody else may reap the CQ meanwhile, so the ring's
    /// reaper is woken for every CQE until this returns (URingBackend+Completion).
    private func waitOnCompletionRing(deadlineNs: UInt64?, callerMask: UnsafeMutablePointer<sigset_t>,
                                      until done: () -> Bool) -> Errno?
    {
        withRing { $0.raiseNeed() }
        defer { withRing { $0.dropNeed() } }
        return ring.wait(deadlineNs: deadlineNs, callerMask: callerMask, until: done)
    }

    /// Checks `done()` until `end`; reaps the CQ meanwhile, as aio_error does. Whether done.
    /// The condition is checked again only when the completion ring's sequence moved (every
    /// completion is published there, after its result): one cache line to watch, not the
    /// aiocbs, whose lines the worker would otherwise have to take back for every result.
    private func spin(until end: UInt64, _ done: () -> Bool) -> Bool {
        var seen = ring.sequence
        if done() { return true }
        while true {
            let now = ring.sequence  // acquire: the results published before it are visible
            if now != seen {
                seen = now
                if done() { return true }
            }
            if let cq = polledRing, URingBackend.hasCompletions(cq) { withRing { $0.reapIfReady(signalsBlocked: true) } }
            if cuaio_now_ns() >= end { return false }
            cuaio_cpu_relax()
        }
    }

    /// Folds a completed wait's length into `recentWaitNs` (weight 1/8), capped at twice the
    /// spin limit: one long wait (a preempted worker) must not stop spinning for the next dozen.
    /// A probe that succeeded replaces it: the best evidence there is that waits are short now.
    private func noteWait(since start: UInt64, until end: UInt64, probe: Bool) {
        let sample = Int64(bitPattern: min(end &- start, 2 * spinLimitNs))
        let old = Int64(bitPattern: cuaio_load_u64_relaxed(recentWaitNs))
        let new = probe ? sample : max(0, old + (sample - old) / 8)
        cuaio_store_u64_relaxed(recentWaitNs, UInt64(bitPattern: new))
    }

    /// aio_init after the engine exists: the worker limit and idle time still apply where the
    /// environment did not set them (aio_num only sizes an engine not yet built).
    public func applyAioInit(threads: Int, idleSeconds: Int) {
        lock.withLock {
            if threads > 0 && configuration.maxBoundedWorkers.source != .environment {
                pool.bounded.limit = min(threads, Configuration.workerCeiling)
            }
            if idleSeconds > 0 && configuration.workerIdleMs.source != .environment {
                pool.idleNs = UInt64(idleSeconds) * 1_000_000_000
            }
        }
    }
}
