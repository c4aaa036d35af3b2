// Batch reaping: FreeBSD's aio_waitcomplete (the next completed request and its result),
// illumos' aio_waitn (up to n completed requests) and uaio_eventfd (readable while completed
// requests wait to be reaped, for epoll loops), over the reap queue of reap.c. They wait on
// the shared completion ring, as aio_suspend does, so a completion from either backend or the
// inline path wakes them.
//
// Feeding the queue costs a few atomics per request, so it starts only when it has a reader:
// at the engine's creation if a loaded object imports one of the three (a program linked with
// -luaio), else at the first call (dlsym users): requests in flight then are fed too; one that
// completed inline just before is not. A request leaves the queue when one of them takes it or
// when aio_return reaps it first, so the two styles mix and a cb freed after aio_return is
// never handed out.
import CUAIO
import Glibc

extension AIOCBTag {
    /// In tag word 1 of a completed aiocb whose request went to the reap queue (word 2: its ticket).
    static let reapQueued = UInt32(CUAIO_TAG_REAP_QUEUED)
}

extension Engine {
    /// Stores a request's result in its aiocb, through the reap queue when it is fed: a request
    /// that completes once the first reader came is fed, whether it was in flight then or not.
    /// (relaxed: a result stored plainly as the reader comes completed before it, by this order.)
    /// And counts it, in the order its readers need: before the result (a release store), so
    /// that a program that saw the result sees it counted (inFlight); with the reap queue fed,
    /// after the queue has it, so that aio_waitcomplete's `outstanding` never finds nothing
    /// while a result is on its way (inFlight may then lag the result by a moment).
    func storeResult(_ cb: AIOCB, _ result: Result<Int, Errno>) {
        guard cuaio_load_u32_relaxed(reapOn) != 0 else {
            count(result)
            return cb.storeResult(result)
        }
        let ticket = cuaio_reapq_reserve(reapQueue, cb)
        cuaio_cb_tag_store(cb, 1, AIOCBTag.reapQueued)
        cuaio_cb_tag_store(cb, 2, UInt32(truncatingIfNeeded: ticket))
        cb.storeResult(result)
        cuaio_reapq_commit(reapQueue, ticket)
        count(result)
    }

    /// Feeds the reap queue from now on, with the requests in flight (once; lock taken).
    public func enableReaping() {
        guard cuaio_load_u32_relaxed(reapOn) == 0 else { return }
        lock.withLock {
            guard cuaio_load_u32_relaxed(reapOn) == 0 else { return }
            // seq_cst: a result stored after this call returned is fed (storeResult).
            cuaio_store_u32_seqcst(reapOn, 1)
            withRing { $0.raiseNeed() }  // for good: an epoll loop on uaio_eventfd reaps nothing
        }
    }

    /// aio_return's part, before it takes the result: the request leaves the queue, so that no
    /// reaper hands out the aiocb afterwards (it may be freed). False when aio_waitcomplete took
    /// it first: the result is not aio_return's. Lock-free (aio_return is async-signal-safe).
    func reapedByReturn(_ cb: AIOCB) -> Bool {
        guard cb.tagSlot == AIOCBTag.reapQueued else { return true }
        return cuaio_reapq_reap(reapQueue, cb.tagGeneration) == 1
    }

    /// Requests that may still come out of the queue: queued there or in flight (lock-free:
    /// accepted minus ended, from the engine's counters).
    private var outstanding: Bool {
        cuaio_reapq_ready(reapQueue) > 0 || submittedCount > completedCount &+ canceledCount
    }

    /// aio_waitcomplete: the next completed request and its result (taken, as aio_return
    /// would). .again when nothing is outstanding or the timeout passed, .interrupted.
    public func waitComplete(timeoutNs: UInt64?) -> Result<(AIOCB, Result<Int, Errno>), Errno> {
        enableReaping()
        let deadline = timeoutNs.map { cuaio_now_ns() &+ $0 }
        while true {
            var out: UnsafeMutablePointer<aiocb>? = nil
            if cuaio_reapq_take(reapQueue, &out, 1, 0) == 1, let cb = out {
                let e = cb.errorCode
                // Ours alone: aio_return refuses a request taken here (reapedByReturn).
                guard let v = cb.takeResult() else {
                    _ = cuaio_reapq_stale(reapQueue, 1)
                    continue
                }
                return .success((cb, e == 0 ? .success(v) : .failure(Errno(e))))
            }
            guard outstanding else { return .failure(.again) }
            switch waitForCompletions(deadlineNs: deadline, until: { cuaio_reapq_ready(reapQueue) > 0 || !outstanding }) {
            case nil: continue
            case .timedOut?: return .failure(.again)
            case let e?: return .failure(e)
            }
        }
    }

    /// aio_waitn: fills `list` with up to `count` completed requests, waiting until at least
    /// `atLeast` (or nothing more is outstanding). Their results stay for aio_return. Returns
    /// how many, with .timedOut or .interrupted if the wait ended first (`got` says how many
    /// were filled all the same), .again when nothing was outstanding at all.
    public func waitN(_ list: UnsafeMutablePointer<AIOCB?>, count: Int, atLeast: Int, timeoutNs: UInt64?)
        -> (got: Int, error: Errno?)
    {
        enableReaping()
        let deadline = timeoutNs.map { cuaio_now_ns() &+ $0 }
        var got = 0
        if !outstanding { return (0, .again) }
        while true {
            got += list.advanced(by: got).withMemoryRebound(to: UnsafeMutablePointer<aiocb>?.self, capacity: count - got) {
                Int(cuaio_reapq_take(reapQueue, $0, CInt(count - got), 1))
            }
            if got >= max(atLeast, 1) || got == count || (atLeast == 0) || !outstanding { return (got, nil) }
            switch waitForCompletions(deadlineNs: deadline, until: { cuaio_reapq_ready(reapQueue) > 0 || !outstanding }) {
            case nil: continue
            case let e?: return (got, e)
            }
        }
    }

    /// uaio_eventfd: readable while completed requests wait in the queue.
    public func reapEventFD() -> Result<CInt, Errno> {
        enableReaping()
        let fd = cuaio_reapq_eventfd(reapQueue)
        return fd >= 0 ? .success(fd) : .failure(.current)
    }
}
