// The io_uring backend: requests whose operation the kernel's probe supports go to one ring
// per process, submitted from the caller's own thread, so the kernel sees the caller's
// credentials (never SQPOLL: an SQPOLL ring runs requests with the ring creator's identity).
//
// Submission: SQEs are filled under the engine lock (every enqueue happens there), and the
// thread that fills them takes the SQ lock and keeps it until `afterUnlock` has entered the
// kernel with them, after the engine lock is released. So every SQE is submitted by the thread
// that filled it, never by another: the kernel sees that thread's credentials, and its io-wq
// (io_uring keeps one per submitting task) does the work. The caller's thread submits what it
// asked for; a request held back by an ordering rule (an fsync behind writes, the next request
// of a stream or O_APPEND lane) is submitted by whichever thread completed its predecessor
// (for fd I/O, credentials were checked at open, so only io-wq accounting can differ).
// lio_listio fills its whole list under one hold and submits it with one io_uring_enter.
// A full SQ sends the request to the pool instead of waiting.
//
// Completion: the CQ has one consumer at a time (`cqLock`). A reaper thread, started with
// the first submission (and again after it exited, idle for UAIO_WORKER_IDLE_MS with nothing
// in flight), sleeps on an eventfd registered with the ring and turns CQEs into completions
// through `Engine.finishLocked` + `deliver`, exactly as pool workers do: both backends publish
// into the one completion ring, and waiters never know which backend served them. It sleeps
// on the eventfd, not in io_uring_enter, so that a thread waiting in the kernel (below) can
// switch it off: a second sleeper on the CQ is woken by every CQE, and at QD1 on O_DIRECT
// that wake-up, and the hand-over after it, cost 15% of the IOPS (measured).
//
// Waiting without the extra hop. When a CQE arrives for a thread asleep in aio_suspend, the
// kernel first wakes that thread (it runs the completion's task_work), and would then wake the
// reaper, which publishes and wakes it again. So one waiting thread at a time takes the CQ
// over (`waitInKernel`): it sleeps in io_uring_enter and reaps CQEs itself. The protocol:
//  - the role is one word (`role`), claimed by CAS; while it is held, nobody else consumes
//    CQEs: the holder sets IORING_CQ_EVENTFD_DISABLED so the reaper sleeps on, and other
//    drains return at once. On release it re-enables the eventfd and, if CQEs are waiting,
//    signals it itself. (The kernel reads the flag after publishing a CQE without a full
//    barrier, so in theory both sides can miss each other; the reaper's sleep is bounded
//    while requests are in flight, so such a CQE is late by at most `safetyMs`, never lost.);
//  - the role holder processes only what is safe where it may be (a signal handler: aio_suspend
//    is async-signal-safe): trylocks only, and only CQEs whose completion starts no thread
//    (no SIGEV_THREAD, no list notification), readies no held request and needs no fallback.
//    Anything else, or a lock it cannot take, makes it hand the CQ back (release the role, wake
//    the reaper) and wait on the completion ring's futex instead;
//  - every other publisher rings a doorbell after publishing if the holder is asleep: a NOP
//    CQE, which only the role holder consumes. The holder sets the role's `asleep` bit before
//    each io_uring_enter and clears it after; the publisher that clears it rings, the others
//    do not, so a sleep costs one doorbell. (Ringing whenever the role was held cost pool
//    writes 0.36 io_uring_enter per I/O for 0.05 context switches: a waiter holds the role
//    while it reaps and checks, not only while it sleeps.) Dekker pairing: the holder's
//    seq_cst RMW of the bit precedes its check of its condition (a read of the ring's sequence);
//    a publisher's seq_cst increment of the sequence precedes its seq_cst read of the role.
//    Either the holder sees the completion, or the publisher sees the bit and the NOP wakes it;
//  - the role names its holder's thread, so that a signal handler which interrupted a wait on
//    its own thread (the wait holds no lock while in the kernel) waits or reaps in its place,
//    where it would otherwise wait for a reaper that leaves the CQ to the interrupted wait.
//
// Polling without the extra hop. A program that polls aio_error never sleeps in the library,
// and its completions came through the reaper's wake-up on the other CPU. So aio_error on a
// request in progress looks at the CQ (two loads) and, if it holds CQEs, takes the role as a
// poller for one pass under `cqLock`, by the same rules as the waiter. The eventfd stays on
// meanwhile, and the reaper waits for `cqLock` instead of leaving the CQ alone.
//
// Ordering needs nothing here: the engine's file table holds a request back until its
// ordering rules allow it to start, and only then hands it to a backend.
//
// Fallback: a CQE with EACCES or EOPNOTSUPP (an io_uring restriction or BPF filter, a file
// system without support) means the ring cannot do that operation here: the request is
// re-issued on the pool and the operation is routed to the pool from then on. EINVAL is
// re-issued once too (it may be the ring's own refusal), without a lasting verdict, since
// plain I/O can also fail with EINVAL (an unaligned O_DIRECT buffer).
import CUAIO
import CURing
import Glibc

final class URingBackend: IOBackend, @unchecked Sendable {
    let kind = BackendKind.uring
    let engine: Engine
    private let ring: UnsafeMutablePointer<io_uring>
    private let sqLock = Lock()
    private let cqLock = Lock()
    /// Indexed by Opcode.rawValue: served by the ring. Engine lock.
    @exclusivity(unchecked) private var routed: [Bool]
    /// The routes as set up, never changed: the uaio_ops.h operations never move (their EINVAL,
    /// EACCES and EOPNOTSUPP are their own), so these may be read without the lock for them.
    private let initialRoutes: [Bool]
    /// cqLock: a drained batch of (user_data, res), and completions to deliver, both reused so
    /// that reaping never allocates.
    @exclusivity(unchecked) private var batch: [(UInt64, Int32)] = []
    @exclusivity(unchecked) private var spareDeliveries: [Delivery] = []
    /// io_uring_enter calls that submitted (relaxed: a statistic, for the CLI and tests).
    private let enters: UnsafeMutablePointer<UInt64> = {
        let p = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()
    var submitCalls: UInt64 { cuaio_load_u64_relaxed(enters) }
    /// Completions reaped by threads polling aio_error (relaxed: a statistic, for tests).
    private let polled: UnsafeMutablePointer<UInt64> = {
        let p = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()
    var polledCompletions: UInt64 { cuaio_load_u64_relaxed(polled) }
    /// The ring itself, for Engine.polledRing.
    var rawRing: UnsafeMutablePointer<io_uring> { ring }
    /// The SQ's size as the kernel made it, and the ring's fd.
    var entries: Int { Int(ring.pointee.sq.ring_entries) }
    var fd: CInt { ring.pointee.ring_fd }
    /// The CQ-consumer role of the application's threads (the header): 0 when free, else the
    /// holder's `cuaio_thread_self()` tagged with its kind (`Role`). Naming the holder lets a
    /// signal handler that interrupted it, on its own thread, carry on in its place.
    private let role: UnsafeMutablePointer<UInt64> = {
        let p = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()
    /// Registered with the ring: the kernel signals it for every CQE unless the role holder
    /// has switched that off. The reaper sleeps on it.
    private let eventFD: CInt
    /// The reaper's longest sleep while the ring has requests in flight (see the header).
    static let safetyMs: CInt = 10
    /// user_data of the doorbell's NOPs.
    static let doorbellToken = UInt64.max
    /// Timed waits in the kernel need IORING_FEAT_EXT_ARG (5.11).
    @exclusivity(unchecked) private var timedWaits = false
    /// Engine lock: a reaper runs (or is starting), and requests in the kernel's hands.
    @exclusivity(unchecked) private var reaperStarted = false
    @exclusivity(unchecked) private var inFlight = 0

    /// Sets up the ring, applies the worker limits to its io-wq, and probes its opcodes.
    /// `restrictTo` (tests) registers IORING_REGISTER_RESTRICTIONS allowing only those
    /// operations, so that the kernel itself refuses the others with EACCES, as a sandbox's
    /// restriction or BPF filter would: the fallback to the pool is tested for real.
    init(engine: Engine, restrictTo: Set<Opcode>? = nil) throws(Errno) {
        let c = engine.configuration
        self.engine = engine
        ring = .allocate(capacity: 1)
        ring.initialize(to: io_uring())
        // SUBMIT_ALL (5.18): a request failing at submission does not strand the SQEs behind it
        // (liburing#309). Older kernels reject the flag: set up without it.
        var flags = UInt32(IORING_SETUP_SUBMIT_ALL) | (restrictTo == nil ? 0 : UInt32(IORING_SETUP_R_DISABLED))
        var r = io_uring_queue_init(UInt32(c.ringEntries.value), ring, flags)
        if r == -EINVAL {
            flags &= ~UInt32(IORING_SETUP_SUBMIT_ALL)
            r = io_uring_queue_init(UInt32(c.ringEntries.value), ring, flags)
        }
        guard r >= 0 else {
            ring.deallocate()
            throw Errno(-r)
        }
        // The reaper's doorbell (5.2; toggling it, 5.8). A ring without it is not used.
        eventFD = cuaio_eventfd()
        r = eventFD < 0 ? -errno : io_uring_register_eventfd(ring, eventFD)
        guard r >= 0 else {
            if eventFD >= 0 { close(eventFD) }
            io_uring_queue_exit(ring)
            ring.deallocate()
            throw Errno(-r)
        }
        if let allowed = restrictTo { Self.restrict(ring, to: allowed) }
        // A forked child builds its own engine and ring; it must not even map the parent's
        // (shared memory: a child writing to it would corrupt the parent's queues).
        _ = io_uring_ring_dontfork(ring)
        // One worker budget: io_uring's io-wq gets the pool's limits, so a flood of buffered
        // writes cannot spawn hundreds of iou-wrk threads. (Kernels before 5.15 lack this.)
        var limits: [UInt32] = [UInt32(c.maxBoundedWorkers.value), UInt32(c.maxUnboundedWorkers.value)]
        _ = io_uring_register_iowq_max_workers(ring, &limits)
        timedWaits = ring.pointee.features & UInt32(IORING_FEAT_EXT_ARG) != 0
        batch.reserveCapacity(Self.batchSize)
        spareDeliveries.reserveCapacity(Self.batchSize)
        let table = Routing.table(c, setupError: nil, supported: Routing.supported(ring))
        routed = Opcode.allCases.map { op in table.contains { $0.opcode == op && $0.backend == .uring } }
        initialRoutes = routed
    }

    private static func restrict(_ ring: UnsafeMutablePointer<io_uring>, to allowed: Set<Opcode>) {
        var rules: [io_uring_restriction] = []
        var ops = Set(allowed.compactMap(Routing.ringOpcode))
        ops.insert(UInt32(IORING_OP_NOP.rawValue))
        for op in ops {
            var rule = io_uring_restriction()
            rule.opcode = UInt16(IORING_RESTRICTION_SQE_OP)
            rule.sqe_op = UInt8(op)
            rules.append(rule)
        }
        for op in [IORING_REGISTER_PROBE, IORING_REGISTER_IOWQ_MAX_WORKERS, IORING_REGISTER_SYNC_CANCEL] {
            var rule = io_uring_restriction()
            rule.opcode = UInt16(IORING_RESTRICTION_REGISTER_OP)
            rule.register_op = UInt8(op)
            rules.append(rule)
        }
        // The raw register call: Debian's liburing 2.3 declares io_uring_register_restrictions
        // and io_uring_enable_rings but does not export them.
        let fd = UInt32(ring.pointee.ring_fd)
        precondition(io_uring_register(fd, UInt32(IORING_REGISTER_RESTRICTIONS), &rules, UInt32(rules.count)) >= 0)
        precondition(io_uring_register(fd, UInt32(IORING_REGISTER_ENABLE_RINGS), nil, 0) >= 0)
    }

    /// Whether operation `op` goes to the ring now (engine lock held).
    func routesLocked(_ op: Opcode) -> Bool { routed[Int(op.rawValue)] }
    /// No lock needed: for the uaio_ops.h operations only (`initialRoutes`).
    func routes(_ op: Opcode) -> Bool { op.isExtended && initialRoutes[Int(op.rawValue)] }

    /// Whether request `r` goes to the ring (engine lock held). Buffered writes to regular
    /// files stay in the pool: the kernel cannot do them without blocking (ext4 has no NOWAIT
    /// buffered write), so the ring punts each to io-wq, which runs one at a time per inode;
    /// measured, that was 0.70x glibc where the pool is level with it (README, Performance).
    /// Files on tmpfs/ramfs stay in the pool too: io_uring hands their I/O to io-wq (no
    /// RWF_NOWAIT there), where a pool worker just copies memory.
    func takesLocked(_ s: UnsafeMutablePointer<RequestSlot>) -> Bool {
        guard routed[Int(s.pointee.opcode.rawValue)] else { return false }
        if s.pointee.opcode.isExtended { return cuaio_op_ring_fits(s.pointee.cb) != 0 }
        guard s.pointee.nbytes <= Int(UInt32.max), !s.pointee.inMemory else { return false }
        return !(s.pointee.opcode.isWrite && s.pointee.workClass == .bounded && !s.pointee.mayBlock)
    }

    // MARK: IOBackend

    func enqueueLocked(_ r: UInt32, _ deferred: inout Deferred) {
        let s = engine.requests[r]
        if !deferred.holdsSQ {
            // Lock order: engine, then SQ. The SQ lock outlives the engine lock's hold until
            // afterUnlock; whoever blocks on it meanwhile waits for one io_uring_enter.
            sqLock.lock()
            deferred.holdsSQ = true
        }
        var sqe = io_uring_get_sqe(ring)
        if sqe == nil {  // full: what is in it goes to the kernel now (we hold the SQ lock)
            _ = cuaio_add_u64_relaxed(enters, 1)
            _ = io_uring_submit(ring)
            sqe = io_uring_get_sqe(ring)
        }
        guard let sqe else {
            s.pointee.backend = .pool
            engine.pool.enqueueLocked(r, &deferred)
            return
        }
        // Streams and O_APPEND writes use the file position: offset -1.
        let offset = s.pointee.positioned ? UInt64(s.pointee.offset) : UInt64.max
        switch s.pointee.opcode {
        case .read:
            io_uring_prep_read(sqe, s.pointee.fd, s.pointee.buffer, UInt32(s.pointee.nbytes), offset)
        case .write:
            io_uring_prep_write(sqe, s.pointee.fd, s.pointee.buffer, UInt32(s.pointee.nbytes), offset)
        case .fsync:
            io_uring_prep_fsync(sqe, s.pointee.fd, 0)
        case .fdatasync:
            io_uring_prep_fsync(sqe, s.pointee.fd, UInt32(IORING_FSYNC_DATASYNC))
        case .readv:
            io_uring_prep_readv(sqe, s.pointee.fd, s.pointee.iovecs, UInt32(s.pointee.nbytes), offset)
        case .writev:
            io_uring_prep_writev(sqe, s.pointee.fd, s.pointee.iovecs, UInt32(s.pointee.nbytes), offset)
        default:
            _ = cuaio_op_prep(sqe, s.pointee.cb)  // takesLocked let only those with an opcode here
        }
        io_uring_sqe_set_data64(sqe, Self.token(r, s.pointee.generation))
        // In the kernel's hands from here: cancellation goes through IORING_OP_ASYNC_CANCEL.
        s.pointee.state = .running
        s.pointee.backend = .uring
        inFlight += 1
        engine.stats?.publishRing(inFlight: inFlight)
        deferred.submitRing = true
        if !reaperStarted {
            reaperStarted = true
            deferred.startReaper = true
        }
    }

    func removeLocked(_ r: UInt32) -> Bool { false }

    func afterUnlock(_ deferred: inout Deferred) {
        if deferred.holdsSQ {
            deferred.holdsSQ = false
            if deferred.submitRing {
                deferred.submitRing = false
                // EBUSY/EAGAIN: the CQ is full (or the kernel short of memory). Our SQEs stay in
                // the SQ; let completions drain and try again. If it still fails, the next
                // submission carries them.
                for _ in 0..<100 {
                    _ = cuaio_add_u64_relaxed(enters, 1)
                    let r = io_uring_submit(ring)
                    if r != -EBUSY && r != -EAGAIN { break }
                    sqLock.unlock()
                    drain()
                    sched_yield()
                    sqLock.lock()
                }
            }
            sqLock.unlock()
        }
        // After the SQ lock is released: a failed start takes the engine lock.
        if deferred.startReaper {
            deferred.startReaper = false
            let context = Unmanaged.passRetained(self).toOpaque()
            if cuaio_spawn_thread(reaperMain, context, 128 * 1024) != 0 {
                Unmanaged<URingBackend>.fromOpaque(context).release()
                engine.lock.withLock { reaperStarted = false }
            }
        }
    }

    // MARK: completion

    /// user_data: the slot in the low 32 bits, its generation in the high 32.
    static func token(_ r: UInt32, _ generation: UInt32) -> UInt64 { UInt64(r) | UInt64(generation) << 32 }

    static let batchSize = 64

    /// Reaps every CQE the ring holds; returns how many. Blocks on `cqLock` only.
    @discardableResult
    func drain() -> Int {
        var total = 0
        cqLock.lock()
        defer { cqLock.unlock() }
        while true {
            // A waiter in the kernel consumes the CQ alone (the header): its doorbells are its
            // own. A poller holds `cqLock` for its pass: this waited for it above.
            if roleKind == Role.waiting { return total }
            var cqe: UnsafeMutablePointer<io_uring_cqe>? = nil
            batch.removeAll(keepingCapacity: true)
            while batch.count < Self.batchSize, io_uring_peek_cqe(ring, &cqe) == 0, let c = cqe {
                batch.append((c.pointee.user_data, c.pointee.res))
                io_uring_cqe_seen(ring, c)
            }
            if batch.isEmpty { return total }
            total += batch.count
            var deferred = Deferred()
            swap(&deferred.deliveries, &spareDeliveries)
            engine.lock.withLock {
                for (token, res) in batch { completeLocked(token, res, &deferred) }
            }
            engine.afterUnlock(&deferred)  // leaves the (emptied) array's capacity in place
            swap(&deferred.deliveries, &spareDeliveries)
        }
    }

    /// Whether the ring refused the request rather than ran it (re-issued on the pool): EACCES
    /// or EOPNOTSUPP, which read, write and fsync cannot return by themselves, and one EINVAL.
    /// The uaio_ops.h operations can return all three themselves: never for them.
    static func refused(_ op: Opcode, _ res: Int32, reissued: Bool) -> Bool {
        !op.isExtended && (res == -EACCES || res == -EOPNOTSUPP || (res == -EINVAL && !reissued))
    }

    private func completeLocked(_ token: UInt64, _ res: Int32, _ deferred: inout Deferred) {
        let r = UInt32(truncatingIfNeeded: token)
        guard r < engine.requests.capacity else { return }
        let s = engine.requests[r]
        guard s.pointee.state == .running, s.pointee.backend == .uring,
              s.pointee.generation == UInt32(truncatingIfNeeded: token >> 32)
        else { return }
        inFlight -= 1
        engine.stats?.publishRing(inFlight: inFlight)
        if Self.refused(s.pointee.opcode, res, reissued: s.pointee.reissued) {
            if res != -EINVAL { routed[Int(s.pointee.opcode.rawValue)] = false }
            s.pointee.reissued = true
            s.pointee.backend = .pool
            s.pointee.state = .queued
            engine.pool.enqueueLocked(r, &deferred)
            return
        }
        let result: Result<Int, Errno> = res >= 0 ? .success(Int(res)) : .failure(Errno(-res))
        deferred.deliveries.append(engine.finishLocked(r, result, backend: .uring, &deferred))
    }

    /// The reaper: drain, then sleep on the eventfd until a CQE arrives; exit when idle with
    /// nothing in flight. It never submits (see the header).
    fileprivate func reap() {
        let idleMs = CInt(clamping: engine.configuration.workerIdleMs.value)
        var idleSince = cuaio_now_ns()
        while true {
            if drain() > 0 {
                idleSince = cuaio_now_ns()
                continue
            }
            // Until the kernel, or a role holder leaving CQEs behind, signals the eventfd; at
            // most `safetyMs` while requests are in flight (the header).
            let busy = engine.lock.withLock { inFlight > 0 }
            if system_pollIn(eventFD, timeoutMs: busy ? min(idleMs, Self.safetyMs) : idleMs) {
                system_eventfdDrain(eventFD)  // resets it, so that the next poll sleeps
                idleSince = cuaio_now_ns()
            } else if cuaio_now_ns() - idleSince >= UInt64(idleMs) * 1_000_000 {
                let exit = engine.lock.withLock {
                    if inFlight == 0 { reaperStarted = false }
                    return inFlight == 0
                }
                if exit { return }
            }
        }
    }

    // MARK: waiting in the kernel

    private enum Role {
        /// Asleep in io_uring_enter, with the eventfd off: publishers ring the doorbell, and
        /// the reaper leaves the CQ alone.
        static let waiting: UInt64 = 1
        /// One pass over the CQ from aio_error, under `cqLock`: the reaper waits for the lock.
        static let polling: UInt64 = 2
        /// With `waiting`: in io_uring_enter, or about to be, and no doorbell rung yet.
        static let asleep: UInt64 = 4
        static func kind(_ word: UInt64) -> UInt64 { word & 3 }
        /// The holder and its kind, without `asleep`.
        static func holder(_ word: UInt64) -> UInt64 { word & ~asleep }
    }

    private var roleKind: UInt64 { Role.kind(cuaio_load_u64_seqcst(role)) }

    /// Called by every publisher except the role holder, after publishing (Engine.deliver).
    /// Rings only for a holder that is asleep, and only the publisher that clears the bit.
    func ringDoorbellIfWaiting() {
        var word = cuaio_load_u64_seqcst(role)  // seq_cst: the Dekker read (the header)
        while true {
            guard Role.kind(word) == Role.waiting, word & Role.asleep != 0 else { return }
            if cuaio_cas_u64_seqcst(role, word, word & ~Role.asleep) != 0 { break }
            word = cuaio_load_u64_seqcst(role)  // it woke, or another cleared it, or a new holder
        }
        engine.ring.noteWake()
        sqLock.withLock {
            var sqe = io_uring_get_sqe(ring)
            if sqe == nil {  // SQ full: make room
                _ = io_uring_submit(ring)
                sqe = io_uring_get_sqe(ring)
            }
            if let sqe {
                io_uring_prep_nop(sqe)
                io_uring_sqe_set_data64(sqe, Self.doorbellToken)
            }
            _ = cuaio_add_u64_relaxed(enters, 1)
            _ = io_uring_submit(ring)
        }
    }

    /// Waits until `done()` in io_uring_enter, reaping CQEs itself. nil when it did not take
    /// the role or handed it back: the caller waits on the futex (for what is left). Otherwise
    /// the outcome: nil (done), .timedOut, .interrupted.
    func waitInKernel(deadlineNs: UInt64?, until done: () -> Bool) -> Errno?? {
        guard timedWaits else { return nil }
        let mine = cuaio_thread_self() | Role.waiting
        // A signal handler that interrupted this thread's own wait (in io_uring_enter, holding
        // no lock) waits in its place; the role stays the interrupted wait's to release.
        let nested = Role.holder(cuaio_load_u64_seqcst(role)) == mine
        guard nested || claimRole(mine) else { return nil }
        if !nested { _ = io_uring_cq_eventfd_toggle(ring, false) }  // the reaper sleeps on
        defer { if !nested { releaseRole(mine) } }
        while true {
            // Gone if a nested wait handed the CQ back meanwhile.
            guard Role.holder(cuaio_load_u64_seqcst(role)) == mine else { return nil }
            _ = engine.ring.sequenceSeqCst  // the Dekker read (header)
            if done() { return .some(nil) }
            guard reapAsWaiter() else {
                releaseRole(mine)
                return nil
            }
            // Already set: this is a signal handler waiting in place of this thread's wait,
            // which set it; set it again after, for that wait.
            guard let wasAsleep = markAsleep(mine) else { return nil }
            defer { if wasAsleep { _ = markAsleep(mine) } else { markAwake(mine) } }
            if done() { return .some(nil) }  // (its reads come after the bit's seq_cst RMW)
            var cqe: UnsafeMutablePointer<io_uring_cqe>? = nil
            let r: CInt
            if let deadlineNs {
                let now = cuaio_now_ns()
                if now >= deadlineNs { return .some(.timedOut) }
                let left = Int64(deadlineNs - now)
                var ts = __kernel_timespec(tv_sec: left / 1_000_000_000, tv_nsec: left % 1_000_000_000)
                r = io_uring_wait_cqe_timeout(ring, &cqe, &ts)
            } else {
                r = io_uring_wait_cqe_timeout(ring, &cqe, nil)
            }
            if r == -EINTR && !done() { return .some(.interrupted) }
        }
    }

    /// A thread polling aio_error reaps the CQ itself when it holds CQEs (aio_error looks first,
    /// through Engine.polledRing), as a waiter would: the completion is there without the reaper's wake-up on
    /// the other CPU and the hand-over after it. What it may not process (see reapAsWaiter)
    /// stays for the reaper: no waiter holds the role, so the eventfd is on and the kernel
    /// signalled it for those CQEs (a waiter that had it off signalled on leaving), and the
    /// reaper never skips the CQ for a poller. Async-signal-safe, as aio_error is.
    func reapIfReady() {
        guard io_uring_cq_ready(ring) > 0 else { return }
        let me = cuaio_thread_self()
        if cuaio_cas_u64_seqcst(role, 0, me | Role.polling) != 0 {
            _ = reapAsWaiter(counting: polled)
            cuaio_store_u64_seqcst(role, 0)
        } else if Role.holder(cuaio_load_u64_seqcst(role)) == me | Role.waiting {
            // A signal handler interrupted this thread's own wait: reap in its place.
            if !reapAsWaiter(counting: polled) { releaseRole(me | Role.waiting) }
        }
    }

    /// Takes the role. A poller holds it for one pass over the CQ only, so a waiter retries a
    /// bounded number of times, and not at all if the poller is its own thread (it is then
    /// a signal handler that interrupted that pass).
    private func claimRole(_ mine: UInt64) -> Bool {
        let poller = (mine & ~3) | Role.polling
        for _ in 0..<64 {
            if cuaio_cas_u64_seqcst(role, 0, mine) != 0 { return true }
            let holder = cuaio_load_u64_seqcst(role)
            if Role.kind(holder) != Role.polling || holder == poller { return false }
            sched_yield()
        }
        return false
    }

    /// Sets the `asleep` bit of the role `mine` holds. Whether it was set already; nil if the
    /// role is not `mine`.
    private func markAsleep(_ mine: UInt64) -> Bool? {
        while true {
            let word = cuaio_load_u64_seqcst(role)
            guard Role.holder(word) == mine else { return nil }
            if word & Role.asleep != 0 { return true }
            if cuaio_cas_u64_seqcst(role, word, word | Role.asleep) != 0 { return false }
        }
    }

    /// Clears the bit unless a publisher did (by CAS: the role may be another thread's by now).
    private func markAwake(_ mine: UInt64) {
        _ = cuaio_cas_u64_seqcst(role, mine | Role.asleep, mine)
    }

    /// Releases a waiter's role if it still holds it (a nested wait may have released it). A
    /// publisher may clear `asleep` meanwhile; the store of 0 wins either way.
    private func releaseRole(_ mine: UInt64) {
        guard Role.holder(cuaio_load_u64_seqcst(role)) == mine else { return }
        _ = io_uring_cq_eventfd_toggle(ring, true)
        cuaio_fence_seqcst()  // the flag's store before the read of the CQ below (the header)
        cuaio_store_u64_seqcst(role, 0)
        if io_uring_cq_ready(ring) > 0 { system_eventfdSignal(eventFD) }  // left for the reaper
    }

    /// The role holder's reaping: safe CQEs only, trylocks only. False: hand the CQ back.
    private func reapAsWaiter(counting: UnsafeMutablePointer<UInt64>? = nil) -> Bool {
        guard cqLock.tryLock() else { return false }
        defer { cqLock.unlock() }
        guard engine.lock.tryLock() else { return false }
        var handBack = false
        var cqe: UnsafeMutablePointer<io_uring_cqe>? = nil
        while spareDeliveries.count < Self.batchSize, io_uring_peek_cqe(ring, &cqe) == 0, let c = cqe {
            let token = c.pointee.user_data, res = c.pointee.res
            let r = UInt32(truncatingIfNeeded: token)
            if token != Self.doorbellToken && r < engine.requests.capacity {
                let s = engine.requests[r]
                let live = s.pointee.state == .running && s.pointee.backend == .uring
                    && s.pointee.generation == UInt32(truncatingIfNeeded: token >> 32)
                if live {
                    var startsThread = false
                    if case .thread = s.pointee.notification { startsThread = true }
                    if startsThread || s.pointee.group != nilIndex || engine.files.completionReadies(s, requests: engine.requests)
                        || Self.refused(s.pointee.opcode, res, reissued: false)
                    {
                        handBack = true
                        break
                    }
                    inFlight -= 1
                    engine.stats?.publishRing(inFlight: inFlight)
                    var deferred = Deferred()  // stays empty: nothing readied, no list
                    let result: Result<Int, Errno> = res >= 0 ? .success(Int(res)) : .failure(Errno(-res))
                    spareDeliveries.append(engine.finishLocked(r, result, backend: .uring, &deferred))
                }
            }
            io_uring_cqe_seen(ring, c)
        }
        engine.lock.unlock()
        if let counting { _ = cuaio_add_u64_relaxed(counting, UInt64(spareDeliveries.count)) }
        for d in spareDeliveries { engine.deliver(d, doorbell: false) }
        spareDeliveries.removeAll(keepingCapacity: true)
        return !handBack
    }

    // MARK: cancellation

    /// Cancels request `r` (with its token) in the kernel, outside the engine lock. Returns
    /// true if the kernel cancelled it (its CQE, -ECANCELED, completes it), false if it is
    /// already running where the kernel cannot stop it, or already completed.
    func cancel(token: UInt64) -> Bool {
        var reg = io_uring_sync_cancel_reg()
        reg.addr = token
        reg.timeout = __kernel_timespec(tv_sec: -1, tv_nsec: -1)
        var r = io_uring_register_sync_cancel(ring, &reg)
        if r == -ENOENT {
            // Not in the kernel: completed, or filled and not yet submitted (the request is
            // .running from its SQE's fill on). The filler holds the SQ lock until it has
            // entered the kernel: once we had the lock, it is there, or done.
            sqLock.withLock {}
            r = io_uring_register_sync_cancel(ring, &reg)
        }
        return r >= 0
    }
}

private func reaperMain(_ arg: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    Unmanaged<URingBackend>.fromOpaque(arg!).takeRetainedValue().reap()
    return nil
}
