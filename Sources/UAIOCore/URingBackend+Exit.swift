// A request belongs to the process, not to the thread that submitted it. io_uring ties a
// request to its submitting task: when the task exits, the kernel cancels its poll-armed
// requests (a read on an empty pipe or socket ends ECANCELED when the data comes) and runs the
// rest of its task_work from a kernel worker without the process's memory map (an uncached
// buffered read, retried from task_work once its page is in, ends EFAULT). So a thread's ring
// requests are counted in its TLS (cuaio_thread_ring; `RequestSlot.owner` points at the
// count), and a thread that exits while some are in the kernel waits for them, in a pthread
// key destructor (`threadExits`):
//  - those that may wait for ever (streams: WorkClass.unbounded reads and writes) it cancels;
//    each that the cancel stopped before it moved data (ECANCELED, or EINTR from an io-wq
//    worker) is re-issued on the pool (completeLocked), where the process's own threads wait;
//  - the others (file I/O, fsync, uaio_ops.h operations) end by themselves, and their
//    task_work runs on the exiting thread while it waits in the library; file reads and
//    writes still in flight after `patienceNs` may never end (a regular file that is a
//    stream: /proc/kmsg, a tracefs trace_pipe, a hung FUSE daemon), so they are cancelled and
//    re-issued like streams (a disk request, which the kernel cannot stop, ends by itself).
// A request the program cancels meanwhile (`cancel` set) is not re-issued: it ends ECANCELED.
// A thread that exits with nothing on the ring pays one TLS load; one that exits with
// requests in flight, a cancel for each stream request and a wait for the rest.
//
// The count, `owner.pointee`: written under the engine lock, by the submitting thread (+1,
// enqueueLocked) and by whoever reaps the request or gives it up (-1, leaveLocked,
// threadExits); read under the lock by the exiting thread, and without it (relaxed) only as a
// hint that there is nothing to wait for: the thread's own increments are its own writes, so
// a stale read can only say "some" when there are none. The TLS block outlives every slot
// that points at it, since the thread does not finish exiting while its count is not 0. An
// exiting thread submits nothing more to the ring (cuaio_thread_ring is NULL: the pool).
// dlclose: the library stays mapped (-z nodelete), and so the destructor. fork: the child's
// copy of the forking thread's count is reset (cuaio.c).
import CUAIO
import Glibc

extension URingBackend {
    /// Registers the exit hook (once per process, for every engine: each thread's count names its own).
    static func installExitHook() { cuaio_set_thread_exit_hook(ringThreadExit) }

    /// How long an exiting thread waits for its file reads and writes before it hands them over.
    static let patienceNs: UInt64 = 100_000_000

    /// The exiting thread's ring requests, counted at `owner`: cancels its stream requests
    /// (re-issued on the pool if that stopped them), then waits until none is in the kernel,
    /// handing over its file reads and writes too once it waited `patienceNs`.
    func threadExits(_ owner: UnsafeMutablePointer<UInt32>) {
        handOver(owner, orGiveUp: true) { $0.workClass == .unbounded }
        // The cancelled ones' CQEs are in by now (the cancel is synchronous): reaped here, they
        // are re-issued at once, where a waiter would leave them to the reaper. Then wait, which
        // runs this thread's task_work, in sleeps from 20 us to 1 ms: a re-issue on the pool
        // publishes nothing that would end a wait.
        let start = cuaio_now_ns()
        var sleepNs: UInt64 = 20_000, patient = true
        while true {
            drain()
            if engine.lock.withLock({ owner.pointee }) == 0 { return }
            if patient && cuaio_now_ns() &- start >= Self.patienceNs {
                patient = false
                handOver(owner, orGiveUp: false) { !$0.opcode.isSync }
                continue
            }
            _ = engine.waitForCompletions(deadlineNs: cuaio_now_ns() + sleepNs) { cuaio_load_u32_relaxed(owner) == 0 }
            sleepNs = min(2 * sleepNs, 1_000_000)
        }
    }

    /// Cancels the exiting thread's reads and writes in the kernel that `which` selects, to
    /// re-issue on the pool those the cancel stopped before they moved data (completeLocked).
    /// One the kernel could not find to cancel is given up (`giveUp`: a stream, which the
    /// kernel holds in its poll unless the program closed the ring's fd), or still waited for
    /// (a buffered file read the kernel retries from a page's wake-up, not from io-wq).
    private func handOver(_ owner: UnsafeMutablePointer<UInt32>, orGiveUp giveUp: Bool,
                          _ which: (borrowing RequestSlot) -> Bool)
    {
        var tokens: [UInt64] = []  // (the exit path may allocate)
        engine.lock.withLock {
            guard owner.pointee > 0 else { return }
            let requests = engine.requests
            for r in 0..<requests.highWater {
                let s = requests[r]
                guard s.pointee.owner == owner, s.pointee.state == .running, !s.pointee.opcode.isExtended,
                      s.pointee.cancel == .none, !s.pointee.handOver, which(s.pointee)
                else { continue }
                s.pointee.handOver = true
                tokens.append(Self.token(r, s.pointee.generation))
            }
        }
        for token in tokens where !cancel(token: token) {
            // Done meanwhile, or the kernel could not cancel it. A stream then cannot be waited
            // for, and ends as the kernel ends it at the exit.
            engine.lock.withLock {
                let s = engine.requests[UInt32(truncatingIfNeeded: token)]
                guard s.pointee.owner == owner, s.pointee.generation == UInt32(truncatingIfNeeded: token >> 32) else { return }
                s.pointee.handOver = false
                guard giveUp else { return }
                s.pointee.owner = nil
                cuaio_store_u32_relaxed(owner, cuaio_load_u32_relaxed(owner) - 1)
            }
        }
    }
}

private func ringThreadExit(_ engine: UnsafeMutableRawPointer?, _ owner: UnsafeMutablePointer<UInt32>?) {
    guard let engine, let owner else { return }
    Unmanaged<Engine>.fromOpaque(engine).takeUnretainedValue().uring?.threadExits(owner)
}
