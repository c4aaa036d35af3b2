// lio_listio, aio_suspend and aio_init on the engine. Waiting goes through the shared
// completion ring only, so it is async-signal-safe and never spins.
import CUAIO
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
        var failed = false
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
                cb.markFailed(.invalid, pid: pid)
                failed = true
                continue
            }
            if let e = submit(cb, opcode, group: group, &deferred) {
                cb.markFailed(e, pid: pid)
                failed = true
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
        }
        return failed ? (wait ? .io : .again) : nil
    }

    /// aio_suspend: nil as soon as one of `list` is not in progress, .again when `timeoutNs`
    /// passes first, .interrupted on a signal. Async-signal-safe.
    public static func suspend(_ list: UnsafePointer<AIOCB?>, count: Int, timeoutNs: UInt64?) -> Errno? {
        let engine = existing()
        let pid = engine?.pid
        let anyDone = {
            (0..<count).contains { i in list[i].map { !$0.isInProgress(pid: pid) } ?? false }
        }
        // Nothing of ours to wait for: an empty list, or requests of no live engine.
        if anyDone() || !(0..<count).contains(where: { list[$0] != nil }) { return nil }
        guard let engine else { return nil }
        let deadline = timeoutNs.map { cuaio_now_ns() &+ $0 }
        switch engine.waitForCompletions(deadlineNs: deadline, until: anyDone) {
        case nil: return nil
        case .timedOut?: return .again
        case let e?: return e
        }
    }

    /// Waits until `done()`: in io_uring_enter, reaping the ring's completions itself, when the
    /// ring lets this thread (URingBackend.waitInKernel); on the completion ring's futex
    /// otherwise, or for what is left of the wait once the ring handed back. Async-signal-safe.
    func waitForCompletions(deadlineNs: UInt64?, until done: () -> Bool) -> Errno? {
        if let uring, let outcome = uring.waitInKernel(deadlineNs: deadlineNs, until: done) { return outcome }
        return ring.wait(deadlineNs: deadlineNs, until: done)
    }

    /// aio_init after the engine exists: the worker limit and idle time still apply where the
    /// environment did not set them (aio_num only sizes an engine not yet built).
    public func applyAioInit(threads: Int, idleSeconds: Int) {
        lock.withLock {
            if threads > 0 && configuration.maxBoundedWorkers.source != .environment {
                pool.queues[WorkClass.bounded.rawValue].limit = min(threads, Configuration.workerCeiling)
            }
            if idleSeconds > 0 && configuration.workerIdleMs.source != .environment {
                pool.idleNs = UInt64(idleSeconds) * 1_000_000_000
            }
        }
    }
}
