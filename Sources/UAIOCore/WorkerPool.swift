// The worker pool: a user-space io-wq.
//
// Two classes, as in io-wq: `bounded` work (regular files, block devices) always ends by
// itself; `unbounded` work (pipes, sockets, FIFOs, ttys) may wait for ever. Each class has its
// own queue, its own workers and its own limit, so blocked stream reads can never take the
// workers that file I/O needs, nor the reverse.
//
// When to start a worker. io-wq starts one when a running worker goes to sleep in the kernel
// and work is pending. User space cannot see a thread fall asleep, so a worker says so itself
// before it does anything that may sleep: unbounded work always; O_DIRECT, block devices and
// syncs always; a buffered read only when preadv2(RWF_NOWAIT) found the data missing from the
// page cache. Work that does not sleep (page-cache hits) is CPU work: more workers than CPUs
// for it only add context switches, so a class keeps at most `runnableCap` workers that are
// not sleeping, and starts more only while workers sleep. Idle workers exit after
// UAIO_WORKER_IDLE_MS.
//
// Every worker runs with all signals blocked (the application's handlers never run on our
// threads) on a small stack. All state here is guarded by the engine lock.
//
// Cancellation. A request a worker is blocked on (a read on an empty pipe, a write to a full
// socket) is interrupted, as io-wq interrupts its workers: aio_cancel marks it (CancelState)
// and sends the cancel signal to that worker thread with tgkill, under the engine lock, so the
// worker is still on that request when the signal lands. Our handler does nothing and has no
// SA_RESTART: the worker's read or write returns EINTR (or its partial count, if data moved),
// the worker sees the mark, hands the request to the canceller and moves on; the canceller
// ends it ECANCELED, notifies, and aio_cancel answers AIO_CANCELED. A signal that lands just
// before the worker enters its system call is spent on nothing (pitfalls.md), so the canceller
// sends it again every millisecond until the worker acknowledges or completes; an EINTR with
// no mark (a late repeat) resumes the call, so no request ends with our EINTR. A canceller
// that waits `cancelPatienceNs` in vain (the call sleeps uninterruptibly) answers
// AIO_NOTCANCELED and leaves the mark: the request then ends with its real result, or
// ECANCELED if it is interrupted later. Only unbounded (stream) work is interrupted: file and
// block-device I/O cannot be, and stays AIO_NOTCANCELED.
//
// The signal (UAIO_CANCEL_SIGNAL, default SIGRTMAX-2) is installed when the pool first runs
// stream work, and only if the application has no disposition of its own for it. If it has
// (or UAIO_CANCEL_SIGNAL=none, or it takes the signal later: checkedCancelMechanismLocked),
// workers instead poll(2) the descriptor together with their own eventfd, which the canceller
// writes; the read or write follows once the descriptor is
// ready. Its limit: another reader that empties the pipe between the two leaves the worker
// blocked where only data, EOF or exit end it.
import CUAIO
import Glibc

/// One class's queue and worker accounting.
final class WorkQueue {
    let workClass: WorkClass
    @exclusivity(unchecked) var limit: Int
    /// Per aio_reqprio level (0 runs first), index-linked through the slots. Plain memory, not
    /// arrays: no bounds checks or uniqueness checks on the pool's serial path.
    private let heads: UnsafeMutablePointer<UInt32>
    private let tails: UnsafeMutablePointer<UInt32>
    @exclusivity(unchecked) private var nonEmpty: UInt32 = 0
    @exclusivity(unchecked) private(set) var queued = 0 {
        // relaxed: a hint for the inline read path (Engine.readInline), read without the lock.
        didSet { cuaio_store_u32_relaxed(backlog, UInt32(truncatingIfNeeded: queued)) }
    }
    private let backlog: UnsafeMutablePointer<UInt32>
    /// Requests queued and not started, read without the lock (a hint, exact only under it).
    var queuedHint: UInt32 { cuaio_load_u32_relaxed(backlog) }
    /// Workers alive, waiting for work, claimed by a signal but not yet awake, and sleeping in
    /// the kernel on a request.
    @exclusivity(unchecked) var total = 0, idle = 0, claimed = 0, blocked = 0
    /// Workers whose system call ended, on their way back to the lock (seq_cst; raised without
    /// the lock before their results are published, lowered under it): their requests may look
    /// done to the program already, and they take the next one, so nobody starts a worker for it.
    let returning: UnsafeMutablePointer<UInt32>
    let condition: Lock.Condition

    init(_ workClass: WorkClass, limit: Int, lock: Lock) {
        self.workClass = workClass
        self.limit = limit
        condition = lock.makeCondition()
        backlog = .allocate(capacity: 1)
        backlog.initialize(to: 0)
        returning = .allocate(capacity: 1)
        returning.initialize(to: 0)
        let levels = Int(Engine.maxRequestPriority) + 1
        heads = .allocate(capacity: levels)
        heads.initialize(repeating: nilIndex, count: levels)
        tails = .allocate(capacity: levels)
        tails.initialize(repeating: nilIndex, count: levels)
    }

    /// (`requests`: the request table's slots, a pointer: passing the table would retain it.)
    func push(_ r: UInt32, priority: CInt, _ requests: UnsafeMutablePointer<RequestSlot>) {
        let p = Int(priority)
        let s = requests + Int(r)
        s.pointee.queueNext = nilIndex
        s.pointee.queuePrev = tails[p]
        if tails[p] != nilIndex { (requests + Int(tails[p])).pointee.queueNext = r } else { heads[p] = r }
        tails[p] = r
        nonEmpty |= 1 << UInt32(p)
        queued += 1
    }

    /// The request `pop` would return, left in the queue.
    var head: UInt32? { nonEmpty == 0 ? nil : heads[nonEmpty.trailingZeroBitCount] }

    func pop(_ requests: UnsafeMutablePointer<RequestSlot>) -> UInt32? {
        guard let r = head else { return nil }
        remove(r, requests)
        return r
    }

    func remove(_ r: UInt32, _ requests: UnsafeMutablePointer<RequestSlot>) {
        let s = requests + Int(r)
        let p = Int(s.pointee.reqprio)
        let prev = s.pointee.queuePrev, next = s.pointee.queueNext
        if prev != nilIndex { (requests + Int(prev)).pointee.queueNext = next } else { heads[p] = next }
        if next != nilIndex { (requests + Int(next)).pointee.queuePrev = prev } else { tails[p] = prev }
        if heads[p] == nilIndex { nonEmpty &= ~(1 << UInt32(p)) }
        queued -= 1
    }
}

final class WorkerPool: IOBackend, @unchecked Sendable {
    let kind = BackendKind.pool
    /// Strong on purpose: an engine lives as long as its process, and a worker that outlives
    /// every other reference (a test's engine) must still find it.
    let engine: Engine
    /// The two classes' queues: `let`s, not an array, so that using one retains nothing.
    let bounded: WorkQueue, unbounded: WorkQueue
    @inline(__always) func queue(_ c: WorkClass) -> WorkQueue { c == .bounded ? bounded : unbounded }
    /// At most this many workers of a class run CPU work at once (one CPU is the submitter's).
    let runnableCap: Int
    var idleNs: UInt64
    static let stackSize = 128 * 1024
    /// How long aio_cancel waits for a blocked worker to give a request up.
    static let cancelPatienceNs: UInt64 = 1_000_000_000

    /// Requests queued or running here (written under the engine lock; read without it,
    /// relaxed, as a hint by Engine+Wait: a wait spins only while the pool has work, whose
    /// worker would otherwise pay for waking it).
    private let active: UnsafeMutablePointer<UInt32> = {
        let p = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()
    var activeHint: UInt32 { cuaio_load_u32_relaxed(active) }
    private func addActive(_ d: Int32) {
        cuaio_store_u32_relaxed(active, UInt32(bitPattern: Int32(bitPattern: cuaio_load_u32_relaxed(active)) &+ d))
    }

    /// How a cancel reaches a worker blocked on a stream (the header).
    public enum CancelMechanism: Equatable, Sendable {
        /// Not needed yet: no stream work has run.
        case undecided
        /// Our handler is installed on this signal; workers get it by tgkill.
        case signal(CInt)
        /// poll(2) with a per-worker eventfd: the signal is the application's (its number), or
        /// UAIO_CANCEL_SIGNAL=none (0).
        case poll(ownedSignal: CInt)
    }
    /// Engine lock.
    public private(set) var cancelMechanism = CancelMechanism.undecided

    init(engine: Engine) {
        self.engine = engine
        let c = engine.configuration
        bounded = WorkQueue(.bounded, limit: c.maxBoundedWorkers.value, lock: engine.lock)
        unbounded = WorkQueue(.unbounded, limit: c.maxUnboundedWorkers.value, lock: engine.lock)
        runnableCap = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) - 1)
        idleNs = UInt64(c.workerIdleMs.value) * 1_000_000
    }

    // MARK: IOBackend

    func enqueueLocked(_ r: UInt32, _ deferred: inout Deferred) {
        // Each `let` named, not `queue(_:)`: a queue chosen by an expression is retained.
        if engine.requests[r].pointee.workClass == .bounded {
            enqueueLocked(r, on: bounded, &deferred)
        } else {
            enqueueLocked(r, on: unbounded, &deferred)
        }
    }

    private func enqueueLocked(_ r: UInt32, on q: WorkQueue, _ deferred: inout Deferred) {
        q.push(r, priority: engine.requests[r].pointee.reqprio, engine.requests.base)
        addActive(1)
        if q.idle > q.claimed {
            q.claimed += 1
            q.condition.signal()
        } else {
            startWorkerIfUseful(q, &deferred)
        }
    }

    func removeLocked(_ r: UInt32) -> Bool {
        let s = engine.requests[r]
        guard s.pointee.state == .queued else { return false }
        queue(s.pointee.workClass).remove(r, engine.requests.base)
        addActive(-1)
        return true
    }

    func afterUnlock(_ deferred: inout Deferred) {
        // (No array literal here: it would allocate on every submission.)
        for _ in 0..<deferred.spawn.bounded { startWorker(bounded) }
        for _ in 0..<deferred.spawn.unbounded { startWorker(unbounded) }
        deferred.spawn = (0, 0)
    }

    // MARK: workers

    /// Reserves a new worker (lock held) when work waits that no awake worker will take soon:
    /// unbounded work always; bounded work while fewer than `runnableCap` workers are awake.
    private func startWorkerIfUseful(_ q: WorkQueue, _ deferred: inout Deferred) {
        let waiting = q.queued - q.claimed - Int(cuaio_load_u32_seqcst(q.returning))
        guard waiting > 0, q.total < q.limit else { return }
        let awake = q.total - q.blocked
        guard q.workClass == .unbounded || awake < min(runnableCap, waiting) else { return }
        q.total += 1
        engine.stats?.publishWorkers(q)
        if q.workClass == .bounded { deferred.spawn.bounded += 1 } else { deferred.spawn.unbounded += 1 }
    }

    private func startWorker(_ q: WorkQueue) {
        let context = Unmanaged.passRetained(WorkerContext(pool: self, queue: q)).toOpaque()
        let e = cuaio_spawn_thread(workerMain, context, Self.stackSize)
        guard e != 0 else { return }
        Unmanaged<WorkerContext>.fromOpaque(context).release()
        // No thread: give the reservation back. If the class has no worker at all, fail its
        // queue rather than leave requests that nobody will ever run.
        var deferred = Deferred()
        engine.lock.withLock {
            q.total -= 1
            engine.stats?.publishWorkers(q)
            if q.total == 0 {
                while let r = q.pop(engine.requests.base) {
                    addActive(-1)
                    deferred.deliveries.append(engine.finishLocked(r, .failure(.again), backend: .pool, &deferred))
                }
            }
        }
        engine.afterUnlock(&deferred)
    }

    /// A worker's life: take a request (and, while the queue is deep, a batch of page-cache
    /// writes with it), run it without the lock, finish it and take the next under one lock
    /// hold, deliver the finished ones after unlocking.
    func run(_ q: WorkQueue) {
        let tid = cuaio_gettid()
        var deferred = Deferred()
        var wakeFD: CInt = -1  // the poll mechanism's eventfd, made on first need
        var signalUnblocked = false
        // The batch beside the first request: allocated once per worker, not per request.
        let batch = UnsafeMutablePointer<UInt32>.allocate(capacity: Self.batchMax - 1)
        let batchResults = UnsafeMutablePointer<Result<Int, Errno>>.allocate(capacity: Self.batchMax - 1)
        defer {
            if wakeFD >= 0 { close(wakeFD) }
            batch.deallocate()
            batchResults.deallocate()
        }
        engine.lock.lock()
        while true {
            if let r = q.pop(engine.requests.base) {
                let s = engine.requests[r]
                s.pointee.state = .running
                s.pointee.workerTid = tid
                if q.workClass == .unbounded {
                    switch checkedCancelMechanismLocked() {
                    case .signal(let sig):
                        if !signalUnblocked { cuaio_unblock_signal(sig) }
                        signalUnblocked = true
                    case .poll, .undecided:
                        if wakeFD < 0 { wakeFD = cuaio_eventfd() }  // none (EMFILE): not cancellable
                        s.pointee.workerWakeFD = wakeFD
                    }
                }
                let job = s.pointee
                // Vectored file I/O has no RWF_NOWAIT probe here: it counts as sleeping.
                var sleeping = q.workClass == .unbounded || job.mayBlock || job.opcode.isVectored
                if sleeping { noteSleeping(q, &deferred) }
                engine.stats?.publishState(r, s, live: engine.requests.live)
                let batched = Self.batches(s) ? takeBatchLocked(q, tid, into: batch) : 0
                engine.lock.unlock()
                // afterUnlock first: it releases the ring's SQ lock, which deliver's doorbell takes.
                engine.afterUnlock(&deferred)
                let result = q.workClass == .unbounded ? performInterruptibly(job, r) : perform(job, r, q, &sleeping)
                for i in 0..<batched {
                    var asleep = false  // (a buffered write: perform never learns otherwise)
                    (batchResults + i).initialize(to: perform(engine.requests[batch[i]].pointee, batch[i], q, &asleep))
                }
                // The results go out under the lock, as one batch, when it is free; before it
                // when it is taken (Engine.publishEarly): its holder may be a thread that a
                // signal handler interrupted to wait for one of them. (Always before it, a
                // program that saw them one by one resubmitted one by one, each submission
                // contending with this worker for the lock: QD32 writes, 0.8x the IOPS.)
                let early = !engine.lock.tryLock()
                if early {
                    _ = cuaio_add_u32_seqcst(q.returning, 1)
                    if let result { engine.publishEarly(r, job, result, backend: .pool) }
                    for i in 0..<batched {
                        engine.publishEarly(batch[i], engine.requests[batch[i]].pointee, batchResults[i], backend: .pool)
                    }
                    engine.lock.lock()
                    _ = cuaio_sub_u32_seqcst(q.returning, 1)
                }
                addActive(-1 - Int32(batched))
                if sleeping {
                    q.blocked -= 1
                    engine.stats?.publishWorkers(q)
                }
                // nil: handed to its canceller, which finishes it.
                if let result {
                    deferred.deliveries.append(engine.finishLocked(r, result, backend: .pool, published: early, &deferred))
                }
                for i in 0..<batched {
                    let result = (batchResults + i).move()
                    deferred.deliveries.append(engine.finishLocked(batch[i], result, backend: .pool, published: early, &deferred))
                }
                continue
            }
            if !deferred.isEmpty {
                engine.lock.unlock()
                engine.afterUnlock(&deferred)
                engine.lock.lock()
                continue
            }
            if !waitForWork(q) { break }
        }
        q.total -= 1
        engine.stats?.publishWorkers(q)
        engine.lock.unlock()
    }

    // MARK: batches
    //
    // At QD32 page-cache writes, the submitter and the worker each took the engine lock once
    // per request, so the lock's cache line (and the queue's) crossed between the two CPUs
    // twice per request: 88% of the submitting path's samples sat on the lock's two atomic
    // instructions. A worker that finds the queue deep now takes up to three more writes with
    // the one it popped, runs them back to back and finishes all four under one hold. Only
    // buffered positioned writes: CPU work that ends by itself, so no request waits behind a
    // disk read, and none a worker would report asleep. A batched write is `running` from the
    // start, so aio_cancel answers AIO_NOTCANCELED for it, as for any started file I/O; and it
    // is reported up to three writes later (about 5 us) than it could be, while the submitter
    // has, by the queue's depth, plenty else to reap. Measured: 628k against 544k writes/s and
    // 3.19 against 3.65 us of CPU per write (7 alternated runs, fio QD32).

    /// The most requests a worker runs per lock hold.
    static let batchMax = 4
    /// A batch is taken only while at least this many requests are queued: enough that other
    /// awake workers have their share, and that the submitter has completions to reap meanwhile.
    static let batchDepth = 8

    /// Requests run in a batch beside the one popped (engine lock; for the tests).
    private(set) var batchedCount = 0

    /// Whether request `s` may run in a batch (lock held).
    private static func batches(_ s: UnsafeMutablePointer<RequestSlot>) -> Bool {
        s.pointee.opcode == .write && s.pointee.positioned && !s.pointee.mayBlock && s.pointee.workClass == .bounded
    }

    /// Pops up to `batchMax - 1` more batchable requests from the head of `q` into `batch`,
    /// marked running (lock held). Returns how many.
    private func takeBatchLocked(_ q: WorkQueue, _ tid: pid_t, into batch: UnsafeMutablePointer<UInt32>) -> Int {
        var n = 0
        while n < Self.batchMax - 1 && q.queued >= Self.batchDepth, let r = q.head, Self.batches(engine.requests[r]) {
            q.remove(r, engine.requests.base)
            let s = engine.requests[r]
            s.pointee.state = .running
            s.pointee.workerTid = tid
            engine.stats?.publishState(r, s, live: engine.requests.live)
            batch[n] = r
            n += 1
        }
        batchedCount += n
        return n
    }

    /// Sleeps until claimed by `enqueueLocked` or the idle time passes (lock held).
    /// False when the worker should exit.
    private func waitForWork(_ q: WorkQueue) -> Bool {
        q.idle += 1
        engine.stats?.publishWorkers(q)
        defer { engine.stats?.publishWorkers(q) }
        let deadline = cuaio_now_ns() + idleNs
        while true {
            let signalled = q.condition.wait(untilNs: deadline)
            if q.claimed > 0 {
                q.claimed -= 1
                q.idle -= 1
                return true
            }
            if !signalled {
                q.idle -= 1
                return q.queued > 0
            }
        }
    }

    /// The worker is about to sleep in the kernel: start another if work would wait.
    private func noteSleeping(_ q: WorkQueue, _ deferred: inout Deferred) {
        q.blocked += 1
        engine.stats?.publishWorkers(q)
        startWorkerIfUseful(q, &deferred)
    }

    // MARK: cancellation

    /// Decides the mechanism on first need (lock held; sigaction once per engine).
    private func decideCancelMechanismLocked() -> CancelMechanism {
        guard case .undecided = cancelMechanism else { return cancelMechanism }
        let sig = engine.configuration.cancelSignal.value
        cancelMechanism = sig != 0 && cuaio_cancel_signal_install(sig) == 0 ? .signal(sig) : .poll(ownedSignal: sig)
        return cancelMechanism
    }

    /// The mechanism for the stream request about to run: the signal only while it is still
    /// ours. An application that later ignores it, or gives it a handler with SA_RESTART,
    /// would leave a blocked read that no cancel interrupts: poll(2) from then on, for good
    /// (compat/tests/cancel_signal_taken.c). One sigaction per stream request in the pool.
    private func checkedCancelMechanismLocked() -> CancelMechanism {
        if case .signal(let sig) = decideCancelMechanismLocked(), cuaio_cancel_signal_intact(sig) == 0 {
            cancelMechanism = .poll(ownedSignal: sig)
        }
        return cancelMechanism
    }

    /// A stream request's read or write, which a cancel may interrupt. nil when the request
    /// was handed to its canceller.
    private func performInterruptibly(_ job: RequestSlot, _ r: UInt32) -> Result<Int, Errno>? {
        guard !job.opcode.isSync else {
            var sleeping = true
            return perform(job, r, unbounded, &sleeping)  // fsync on a stream
        }
        // poll(2) and the read or write after it resolve the number twice: a duplicate holds the
        // open file, as the kernel does for the length of one system call, should the
        // application close the number meanwhile (and reuse it for another file).
        var fd = job.fd
        if job.workerWakeFD >= 0 {
            switch system_dup(job.fd) {
            case .success(let d): fd = d
            case .failure(let e): return .failure(e)
            }
        }
        defer { if fd != job.fd { close(fd) } }
        while true {
            if job.workerWakeFD >= 0 {
                let events = Int16(job.opcode.isRead ? POLLIN : POLLOUT)
                let ready = cuaio_poll_two(fd, events, job.workerWakeFD)
                if ready & 2 != 0 {
                    system_eventfdDrain(job.workerWakeFD)
                    switch interruption(r) {
                    case .resume: break
                    case .handedOver: return nil
                    case .canceled: return .failure(.canceled)
                    }
                }
                if ready & 1 == 0 { continue }
            }
            let result: Result<Int, Errno> =
                switch job.opcode {
                case .read: system_read(fd, job.buffer, job.nbytes, interruptible: true)
                case .readv: system_readv(fd, job.iovecs, job.nbytes, offset: nil, interruptible: true)
                case .writev: system_writev(fd, job.iovecs, job.nbytes, offset: nil, interruptible: true)
                default: system_write(fd, job.buffer, job.nbytes, interruptible: true)
                }
            guard case .failure(.interrupted) = result else { return result }
            switch interruption(r) {
            case .resume: continue
            case .handedOver: return nil
            case .canceled: return .failure(.canceled)
            }
        }
    }

    private enum Interruption {
        /// Not cancelled: a repeat meant for an earlier request. The call starts again.
        case resume
        /// Its canceller waits: it ends the request.
        case handedOver
        /// Its canceller gave up waiting: the worker ends it.
        case canceled
    }

    /// The worker was interrupted (EINTR, or its eventfd) while running `r`.
    private func interruption(_ r: UInt32) -> Interruption {
        engine.lock.withLock {
            let s = engine.requests[r]
            switch s.pointee.cancel {
            case .none, .acknowledged:
                return .resume
            case .requested:
                s.pointee.cancel = .acknowledged
                // relaxed: only the futex's value check reads the word without the lock; the
                // canceller reads the state itself under the lock.
                let ack = cancelAck(s)
                cuaio_store_u32_relaxed(ack, 1)
                cuaio_futex_wake(ack, 1)
                return .handedOver
            case .abandoned:
                return .canceled
            }
        }
    }

    private func cancelAck(_ s: UnsafeMutablePointer<RequestSlot>) -> UnsafeMutablePointer<UInt32> {
        (UnsafeMutableRawPointer(s) + MemoryLayout<RequestSlot>.offset(of: \.cancelAck)!)
            .assumingMemoryBound(to: UInt32.self)
    }

    /// Marks running request `r` cancelled and interrupts its worker (lock held). False when
    /// it cannot be interrupted: file I/O, or another canceller already at it.
    func interruptLocked(_ r: UInt32) -> Bool {
        let s = engine.requests[r]
        guard s.pointee.state == .running, s.pointee.workClass == .unbounded, s.pointee.cancel == .none else {
            return false
        }
        s.pointee.cancel = .requested
        engine.publishLocked(r)
        kickLocked(s)
        return true
    }

    private func kickLocked(_ s: UnsafeMutablePointer<RequestSlot>) {
        if s.pointee.workerWakeFD >= 0 {
            system_eventfdSignal(s.pointee.workerWakeFD)
        } else if case .signal(let sig) = cancelMechanism {
            _ = cuaio_signal_thread(s.pointee.workerTid, sig)
        }
    }

    enum CancelOutcome { case canceled, completed, stillRunning }

    /// Waits until the worker of `r` (interrupted by `interruptLocked`) gives it up, and ends it
    /// ECANCELED; or until it completes by itself; or `cancelPatienceNs`.
    func awaitCancel(_ r: UInt32, generation: UInt32) -> CancelOutcome {
        let s = engine.requests[r]
        let deadline = cuaio_now_ns() + Self.cancelPatienceNs
        while true {
            var t = timespec()
            let next = min(cuaio_now_ns() + 1_000_000, deadline)
            t.tv_sec = Int(next / 1_000_000_000)
            t.tv_nsec = Int(next % 1_000_000_000)
            _ = cuaio_futex_wait(cancelAck(s), 0, &t)
            var deferred = Deferred()
            var delivery: Delivery? = nil
            let outcome: CancelOutcome? = engine.lock.withLock {
                guard s.pointee.generation == generation, s.pointee.state == .running else { return .completed }
                switch s.pointee.cancel {
                case .acknowledged:
                    delivery = engine.finishLocked(r, .failure(.canceled), backend: .pool, &deferred)
                    return .canceled
                case .requested where cuaio_now_ns() >= deadline:
                    s.pointee.cancel = .abandoned
                    return .stillRunning
                default:
                    kickLocked(s)  // the last one may have landed before the worker's system call
                    return nil
                }
            }
            guard let outcome else { continue }
            engine.afterUnlock(&deferred)
            if let delivery { engine.deliver(delivery) }
            return outcome
        }
    }

    /// Runs one request's system call. `sleeping` tells (and may learn) whether it sleeps.
    /// A regular file that cannot seek (a procfs, sysfs or tracefs stream such as /proc/kmsg)
    /// refuses pread with ESPIPE: it is read as a stream then, as glibc does (and io_uring).
    private func perform(_ job: RequestSlot, _ r: UInt32, _ q: WorkQueue, _ sleeping: inout Bool) -> Result<Int, Errno> {
        let result = performOnce(job, r, q, &sleeping)
        guard job.positioned, case .failure(.illegalSeek) = result, !job.opcode.isExtended, !job.opcode.isSync
        else { return result }
        var stream = job
        stream.positioned = false
        return performOnce(stream, r, q, &sleeping)
    }

    private func performOnce(_ job: RequestSlot, _ r: UInt32, _ q: WorkQueue, _ sleeping: inout Bool)
        -> Result<Int, Errno>
    {
        switch job.opcode {
        case .read:
            guard job.positioned else { return system_read(job.fd, job.buffer, job.nbytes) }
            var done = 0
            if !sleeping && !job.inMemory {
                // The page cache first: no sleep, so no reason to wake another worker.
                switch system_preadNoWait(job.fd, job.buffer, job.nbytes, job.offset) {
                case .done(.success(let n)) where n == job.nbytes || n == 0: return .success(n)
                case .done(.success(let n)): done = n  // partly cached: read the rest below
                case .done(.failure(let e)): return .failure(e)
                case .wouldBlock, .unsupported: break
                }
                var deferred = Deferred()
                engine.lock.withLock { noteSleeping(q, &deferred) }
                engine.afterUnlock(&deferred)
                sleeping = true
            }
            return system_pread(job.fd, job.buffer.map { $0 + done }, job.nbytes - done, job.offset + Int64(done))
                .map { $0 + done }
        case .write:
            guard job.positioned else { return system_write(job.fd, job.buffer, job.nbytes) }
            return system_pwrite(job.fd, job.buffer, job.nbytes, job.offset)
        case .fsync:
            return system_fsync(job.fd).map { Int($0) }
        case .fdatasync:
            return system_fdatasync(job.fd).map { Int($0) }
        case .readv:
            return system_readv(job.fd, job.iovecs, job.nbytes, offset: job.positioned ? job.offset : nil)
        case .writev:
            return system_writev(job.fd, job.iovecs, job.nbytes, offset: job.positioned ? job.offset : nil)
        default:
            return performExtended(job, r)
        }
    }

    /// A uaio_ops.h operation, as the submitter if it checks identity (Engine+Operations).
    private func performExtended(_ job: RequestSlot, _ r: UInt32) -> Result<Int, Errno> {
        var saved = cuaio_creds()
        if job.opcode.needsCredentials {
            // Only the SQ-full corner and a ring whose fd the program closed
            // (URingBackend.reissueOnPool) send such a request here without the identity: run
            // nothing rather than run it as someone else.
            guard job.hasCredentials else { return .failure(.again) }
            let e = cuaio_creds_enter(engine.credentials + Int(r), &saved)
            if e != 0 { return .failure(Errno(-e)) }
        }
        defer { if job.opcode.needsCredentials { cuaio_creds_leave(&saved) } }
        return system_extended(job.cb)
    }
}

private final class WorkerContext {
    let pool: WorkerPool
    let queue: WorkQueue
    init(pool: WorkerPool, queue: WorkQueue) {
        self.pool = pool
        self.queue = queue
    }
}

private func workerMain(_ arg: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let context = Unmanaged<WorkerContext>.fromOpaque(arg!).takeRetainedValue()
    context.pool.run(context.queue)
    return nil
}
