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
// lio_listio fills its whole list under one hold and submits it with one io_uring_enter, unless
// another thread holds the engine lock when the list needs it again: the list then submits what
// it filled and lets the SQ lock go before it waits (Engine.lock(holding:): no thread holding the
// SQ lock waits for the engine lock).
// A full SQ sends the request to the pool instead of waiting.
//
// Completion, and waiting for it: URingBackend+Completion.swift.
//
// Cooperative task_work (UAIO_COOP_TASKRUN, on by default). The kernel posts most CQEs from
// task_work of the thread that submitted the request. Without IORING_SETUP_COOP_TASKRUN it
// interrupts that thread to run it: an IPI for every completion while the thread runs in user
// space (13% of fio's samples at QD32 on a fast device, and 0.41x fio io_uring's IOPS). With
// it the kernel still wakes the thread if it sleeps, but lets one that runs in user space carry
// on until it next enters the kernel. So its own aio_error and aio_suspend see its completions
// when they enter the kernel (TASKRUN_FLAG: IORING_SQ_TASKRUN tells them to; `hasCompletions`,
// `reapIfReady`). Nobody else can run that task_work: a thread waiting for another's request,
// while that one computes without system calls, would see it at that thread's next timer tick
// (1.6 and 1.9 ms measured, HZ=250), where it took microseconds. Hence kicks: whoever waits for
// ring requests of another thread (`submitters`: a thread in aio_suspend that holds the CQ, a
// thread polling aio_error, the reaper while a need is counted) makes every thread of the
// process that runs in user space enter the kernel, with membarrier(PRIVATE_EXPEDITED): its IPI
// returns each through the exit path that runs task_work (`kick`). A sleeping waiter looks at
// the kernel's hint (IORING_SQ_TASKRUN) after bounded sleeps (50 us, doubling to 1 ms while
// nothing arrives: `kickCap`) and kicks when it is set; blind, once a millisecond, since the
// hint is ring-wide and any thread's run clears it. Measured (KickTests): 20 to 110 us where
// the tick took 4 ms. A kick costs what the default costs for every completion, an IPI, but at
// most one per 20 us for all waiters. Without membarrier (seccomp, Linux before 4.14) the ring
// is not cooperative.
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
    let ring: UnsafeMutablePointer<io_uring>
    let sqLock = Lock()
    let cqLock = Lock()
    /// Indexed by Opcode.rawValue: served by the ring. Engine lock.
    @exclusivity(unchecked) var routed: [Bool]
    /// The routes as set up, never changed: the uaio_ops.h operations never move (their EINVAL,
    /// EACCES and EOPNOTSUPP are their own), so these may be read without the lock for them.
    private let initialRoutes: [Bool]
    /// cqLock: a drained batch of (user_data, res, published early), and completions to deliver, both reused so
    /// that reaping never allocates.
    @exclusivity(unchecked) var batch: [(UInt64, Int32, Bool)] = []
    @exclusivity(unchecked) var spareDeliveries: [Delivery] = []
    /// io_uring_enter calls that submitted (relaxed: a statistic, for the CLI and tests).
    let enters: UnsafeMutablePointer<UInt64> = zeroedWords()
    var submitCalls: UInt64 { cuaio_load_u64_relaxed(enters) }
    /// Completions reaped by threads polling aio_error (relaxed: a statistic, for tests).
    let polled: UnsafeMutablePointer<UInt64> = zeroedWords()
    var polledCompletions: UInt64 { cuaio_load_u64_relaxed(polled) }
    /// Times the reaper was woken by its eventfd (relaxed: a statistic, for tests).
    let wakeups: UnsafeMutablePointer<UInt64> = zeroedWords()
    var reaperWakeups: UInt64 { cuaio_load_u64_relaxed(wakeups) }
    /// Kicks sent (relaxed: a statistic, for tests), and when the last was (relaxed, by CAS:
    /// only a rate limit, `kick`).
    let kicks: UnsafeMutablePointer<UInt64> = zeroedWords(2)
    var kickCount: UInt64 { cuaio_load_u64_relaxed(kicks) }
    /// Whose ring requests are in flight: 0 for nobody, one thread's `cuaio_thread_self()`, or
    /// `Submitters.mixed`. Written under the engine lock, read without it (relaxed: a hint for
    /// when to kick, re-read before every bounded sleep; the header).
    let submitters: UnsafeMutablePointer<UInt64> = zeroedWords()
    /// The ring itself, for Engine.polledRing.
    var rawRing: UnsafeMutablePointer<io_uring> { ring }
    /// Whether the ring was set up with cooperative task_work (the header).
    var cooperative: Bool { ring.pointee.flags & UInt32(IORING_SETUP_COOP_TASKRUN) != 0 }
    /// The SQ's size as the kernel made it, and the ring's fd.
    var entries: Int { Int(ring.pointee.sq.ring_entries) }
    var fd: CInt { ring.pointee.ring_fd }
    /// The CQ-consumer role of the application's threads (the header): 0 when free, else the
    /// holder's `cuaio_thread_self()` tagged with its kind (`Role`). Naming the holder lets a
    /// signal handler that interrupted it, on its own thread, carry on in its place.
    let role: UnsafeMutablePointer<UInt64> = zeroedWords()
    /// Registered with the ring: the kernel signals it for every CQE while it is switched on
    /// (`syncEventFD`). The reaper sleeps on it, and replaces it if the program closes it
    /// (`replaceEventFD`): -1 when no other could be registered.
    var eventFD: CInt { CInt(bitPattern: cuaio_load_u32_relaxed(eventFDWord)) }
    /// Relaxed: an fd number, written by the reaper alone. A thread that signals the old one
    /// after a replacement writes to a closed fd, and the reaper drains the CQ after each.
    let eventFDWord: UnsafeMutablePointer<UInt32> = zeroedWords()
    /// Reasons for the eventfd to be on (URingBackend+Completion's header).
    let needs: UnsafeMutablePointer<UInt32> = zeroedWords()
    /// The reaper's longest sleep while the ring has requests in flight: the backstop for a
    /// completion nobody reaps (URingBackend+Completion's header). Tests raise it, so that a
    /// completion that relied on it does not arrive in time.
    let backstopMs: CInt
    static let defaultBackstopMs: CInt = 10
    /// user_data of the doorbell's NOPs.
    static let doorbellToken = UInt64.max
    /// Timed waits in the kernel need IORING_FEAT_EXT_ARG (5.11).
    @exclusivity(unchecked) var timedWaits = false
    /// 1 once the program closed the ring's fd (`takeBackUnsubmitted`). Relaxed: set once, and
    /// whoever still reaches the ring finds out by its own failed io_uring_enter.
    let gone: UnsafeMutablePointer<UInt32> = zeroedWords()
    /// Tests: the most SQEs one io_uring_enter may take, to make a short submission (which the
    /// kernel makes when it is short of memory) happen. SQ lock.
    @exclusivity(unchecked) var submitLimit: UInt32? = nil
    /// SQEs filled and not yet taken by the kernel (SQ lock).
    var unsubmitted: UInt32 { io_uring_sq_ready(ring) }
    /// Engine lock: a reaper runs (or is starting), and requests in the kernel's hands.
    @exclusivity(unchecked) var reaperStarted = false
    @exclusivity(unchecked) var inFlight = 0

    /// Sets up the ring, applies the worker limits to its io-wq, and probes its opcodes.
    /// `restrictTo` (tests) registers IORING_REGISTER_RESTRICTIONS allowing only those
    /// operations, so that the kernel itself refuses the others with EACCES, as a sandbox's
    /// restriction or BPF filter would: the fallback to the pool is tested for real.
    init(engine: Engine, restrictTo: Set<Opcode>? = nil, backstopMs: CInt = defaultBackstopMs) throws(Errno) {
        let c = engine.configuration
        self.engine = engine
        self.backstopMs = backstopMs
        ring = .allocate(capacity: 1)
        ring.initialize(to: io_uring())
        // SUBMIT_ALL (5.18): a request failing at submission does not strand the SQEs behind it
        // (liburing#309). COOP_TASKRUN (5.19), asked for: the header. Older kernels reject the
        // flags: set up without them.
        // Only with kicks (the header): without membarrier (seccomp, Linux before 4.14), not at all.
        let coop = UInt32(IORING_SETUP_COOP_TASKRUN) | UInt32(IORING_SETUP_TASKRUN_FLAG)
        let cooperate = c.coopTaskrun.value && cuaio_membarrier_register() == 0
        var flags = UInt32(IORING_SETUP_SUBMIT_ALL) | (restrictTo == nil ? 0 : UInt32(IORING_SETUP_R_DISABLED))
            | (cooperate ? coop : 0)
        var r = io_uring_queue_init(UInt32(c.ringEntries.value), ring, flags)
        for fallback in [coop, UInt32(IORING_SETUP_SUBMIT_ALL)] where r == -EINVAL && flags & fallback != 0 {
            flags &= ~fallback
            r = io_uring_queue_init(UInt32(c.ringEntries.value), ring, flags)
        }
        guard r >= 0 else {
            ring.deallocate()
            throw Errno(-r)
        }
        // The reaper's doorbell (5.2; toggling it, 5.8). A ring without it is not used.
        let eventFD = cuaio_eventfd()
        r = eventFD < 0 ? -errno : io_uring_register_eventfd(ring, eventFD)
        guard r >= 0 else {
            if eventFD >= 0 { close(eventFD) }
            io_uring_queue_exit(ring)
            ring.deallocate()
            throw Errno(-r)
        }
        cuaio_store_u32_relaxed(eventFDWord, UInt32(bitPattern: eventFD))
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
        syncEventFD()  // off: no need yet
        Self.installExitHook()
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

    /// Whether the CQ holds CQEs, or entering the kernel would post some: this thread's
    /// task_work (IORING_SQ_TASKRUN, set only with UAIO_COOP_TASKRUN), or CQEs the full CQ had
    /// no room for (IORING_SQ_CQ_OVERFLOW: the kernel keeps them until an io_uring_enter).
    /// What aio_error and a spinning wait look at before they reap (reapIfReady). Two loads.
    @inline(__always) static func hasCompletions(_ ring: UnsafeMutablePointer<io_uring>) -> Bool {
        io_uring_cq_ready(ring) > 0 || cuaio_load_u32_relaxed(ring.pointee.sq.kflags) & enterFlags != 0
    }
    static let enterFlags = UInt32(IORING_SQ_TASKRUN) | UInt32(IORING_SQ_CQ_OVERFLOW)

    /// Whether operation `op` goes to the ring now (engine lock held).
    func routesLocked(_ op: Opcode) -> Bool { routed[Int(op.rawValue)] }
    /// No lock needed: for the uaio_ops.h operations only (`initialRoutes`), until the ring is
    /// gone (`takeBackUnsubmitted`; a submission racing with that is re-issued itself).
    func routes(_ op: Opcode) -> Bool {
        op.isExtended && initialRoutes[Int(op.rawValue)] && cuaio_load_u32_relaxed(gone) == 0
    }

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
        // The request becomes this thread's in the kernel: counted, so that its exit waits
        // (URingBackend+Exit.swift). A thread already exiting, or without a count: the pool.
        guard let owner = cuaio_thread_ring(Unmanaged.passUnretained(engine).toOpaque()) else {
            s.pointee.backend = .pool
            engine.pool.enqueueLocked(r, &deferred)
            return
        }
        if !deferred.holdsSQ {
            // Lock order: engine, then SQ. The SQ lock outlives the engine lock's hold until
            // afterUnlock; whoever blocks on it meanwhile waits for one io_uring_enter. The
            // reaper not for longer than `reaperSQWaitNs`: the holder may be a thread that a
            // signal handler interrupted, and the handler may wait for a CQE that only the
            // reaper would reap (compat/tests/suspend_in_pass.c). What it readies then goes to
            // the pool.
            if deferred.reaping {
                guard sqLock.lock(untilNs: cuaio_now_ns() &+ Self.reaperSQWaitNs) else {
                    s.pointee.backend = .pool
                    engine.pool.enqueueLocked(r, &deferred)
                    return
                }
            } else {
                sqLock.lock()
            }
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
        // Streams and O_APPEND writes use the file position: offset -1. (A read's or write's
        // offset was checked at submission; a uaio_ops.h operation's is ops.c's to read, and
        // may be anything: the bit pattern, never a trap.)
        let offset = s.pointee.positioned ? UInt64(bitPattern: s.pointee.offset) : UInt64.max
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
        // A large read or write of a file would be done inside io_uring_enter when its pages are
        // cached: straight to io-wq instead, so that the submitter is not held
        // (Engine.inlineMaxBytes). A vectored one always: its size is the sum of iovecs in the
        // program's memory, which the library never reads (a bad pointer is the kernel's EFAULT,
        // not our crash). Never a stream's: it waits in the kernel's poll, which a cancel removes
        // at once, where a cancel of a read blocked in io-wq could miss it (1 in 20 hung).
        let sized = s.pointee.opcode.isVectored
            || ((s.pointee.opcode == .read || s.pointee.opcode == .write) && s.pointee.nbytes > Engine.inlineMaxBytes)
        if sized && s.pointee.workClass == .bounded {
            sqe.pointee.flags |= UInt8(1 << IOSQE_ASYNC_BIT)  // IOSQE_ASYNC
        }
        io_uring_sqe_set_data64(sqe, Self.token(r, s.pointee.generation))
        // In the kernel's hands from here: cancellation goes through IORING_OP_ASYNC_CANCEL.
        s.pointee.state = .running
        s.pointee.backend = .uring
        s.pointee.owner = owner
        cuaio_store_u32_relaxed(owner, cuaio_load_u32_relaxed(owner) + 1)  // (engine lock: the hint's writer)
        noteSubmitterLocked()
        inFlight += 1
        engine.stats?.publishRing(inFlight: inFlight)
        if Self.needsReaper(s) { raiseNeed() }  // before its SQE reaches the kernel
        deferred.submitRing = true
        if !reaperStarted {
            reaperStarted = true
            deferred.startReaper = true
        }
    }

    static let reaperSQWaitNs: UInt64 = 200_000

    func removeLocked(_ r: UInt32) -> Bool { false }

    func afterUnlock(_ deferred: inout Deferred) {
        var orphans: [UInt64] = []
        var noteGone = false
        if deferred.holdsSQ {
            deferred.holdsSQ = false
            if deferred.submitRing {
                deferred.submitRing = false
                // EBUSY/EAGAIN: the CQ is full (or the kernel short of memory); a short count:
                // the kernel took only some. Our SQEs stay in the SQ: let completions drain and
                // try again. What is still there after that is taken back for the pool: the
                // next thread to submit would otherwise carry it, as itself (credentials, and
                // the request's lifetime: URingBackend+Exit.swift).
                var gone = false
                for _ in 0..<100 {
                    _ = cuaio_add_u64_relaxed(enters, 1)
                    let r = submit()
                    if Self.isGone(r) {
                        gone = true
                        break
                    }
                    if r >= 0 && io_uring_sq_ready(ring) == 0 { break }
                    if r > 0 { continue }  // progress: the rest at once
                    guard r == 0 || r == -EBUSY || r == -EAGAIN || r == -EINTR else { break }
                    sqLock.unlock()
                    drain()
                    sched_yield()
                    sqLock.lock()
                }
                if gone || io_uring_sq_ready(ring) > 0 { orphans = takeBackUnsubmitted(gone: gone) }
                noteGone = gone
            }
            sqLock.unlock()
        }
        if !orphans.isEmpty { reissueOnPool(orphans, gone: noteGone) }
        // After the SQ lock is released: a failed start takes the engine lock.
        if deferred.startReaper {
            deferred.startReaper = false
            startReaper()
        }
    }

    /// io_uring_submit (SQ lock held), or for tests a short one: what io_uring_submit does,
    /// publishing the SQ's tail, but entering with at most `submitLimit` to take.
    private func submit() -> CInt {
        guard let limit = submitLimit else { return io_uring_submit(ring) }
        let tail = ring.pointee.sq.sqe_tail
        ring.pointee.sq.sqe_head = tail
        cuaio_store_u32_relaxed(ring.pointee.sq.ktail, tail)  // (as liburing: io_uring_enter orders it)
        let pending = tail &- cuaio_load_u32_acquire(ring.pointee.sq.khead)
        return io_uring_enter(UInt32(bitPattern: ring.pointee.ring_fd), min(pending, limit), 0, 0, nil)
    }

    // MARK: the ring's fd closed

    /// Whether io_uring_enter failed because the ring's fd is no longer the ring's: the program
    /// closed it (EBADF) or reopened its number as another file (EOPNOTSUPP).
    static func isGone(_ r: CInt) -> Bool { r == -EBADF || r == -EOPNOTSUPP }

    /// The program closed the ring's fd (a loop closing every fd it does not know): nothing can
    /// be submitted any more, but the ring stays mapped, so what the kernel already has still
    /// completes into the CQ, which the reaper reads from memory (at most `backstopMs` late: its
    /// eventfd cannot be registered again). The SQEs no io_uring_enter will ever take are taken
    /// out of the SQ here (SQ lock held), as tokens for `reissueOnPool`. The kernel reads the
    /// SQ only in io_uring_enter, which needs the fd, so rewinding the tail is safe.
    private func takeBackUnsubmitted(gone: Bool) -> [UInt64] {
        let sq = ring.pointee.sq
        let head = cuaio_load_u32_acquire(sq.khead)  // what the kernel consumed before the close
        var tokens: [UInt64] = []
        var i = head
        while i != sq.sqe_tail {
            tokens.append(sq.sqes[Int(sq.array[Int(i & sq.ring_mask)])].user_data)
            i &+= 1
        }
        ring.pointee.sq.sqe_head = head
        ring.pointee.sq.sqe_tail = head
        cuaio_store_u32_relaxed(sq.ktail, head)  // (the kernel reads it in io_uring_enter only)
        if gone { cuaio_store_u32_relaxed(self.gone, 1) }
        return tokens
    }

    /// Re-issues on the pool the requests whose SQEs never reached the kernel, as a refusal is
    /// (`completeLocked`); and when the ring is `gone`, sends every operation there from now on. One of the uaio_ops.h
    /// operations that check identity ends with EAGAIN there instead: no snapshot of its
    /// submitter's credentials was taken, and the pool runs nothing as someone else.
    private func reissueOnPool(_ tokens: [UInt64], gone: Bool) {
        if gone && engine.configuration.debug.value {
            cuaio_write_stderr("uaio: the program closed the ring's fd; every request goes to the worker pool\n")
        }
        var deferred = Deferred()
        engine.lock.withLock {
            if gone { for i in routed.indices { routed[i] = false } }
            for token in tokens { completeLocked(token, -EOPNOTSUPP, &deferred, reissue: true) }
        }
        engine.afterUnlock(&deferred)
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

/// Zeroed words for the atomics of cuaio.h. Never freed, like the ring: the process's engine,
/// and so its backend, lives as long as the process (a test's engines leak a few words).
private func zeroedWords<T: FixedWidthInteger>(_ count: Int = 1) -> UnsafeMutablePointer<T> {
    let p = UnsafeMutablePointer<T>.allocate(capacity: count)
    p.initialize(repeating: 0, count: count)
    return p
}
