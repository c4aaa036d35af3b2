// The engine: one per process, built on first use (never at load time), and built anew in a
// forked child, which must not touch its parent's rings, threads or queues (POSIX: AIO is not
// inherited). It owns the request table, the files and their ordering rules, the completion
// ring and the backends.
//
// Locking: one engine lock (`lock`) guards the request table, the files, the lio groups and
// the pool's queues. Nothing that can block runs under it: fstat on an fd-cache miss, thread
// starts, notifications and io_uring_enter all happen after it is released. The only system
// calls under it never block, and must happen while a worker still holds its request: the
// cancel path's tgkill, eventfd write and futex wake (WorkerPool, "Cancellation").
// The ring backend adds two: its CQ lock (one consumer of completions at a time) and its SQ
// lock (held from filling SQEs to submitting them). The order is CQ, engine, SQ; nobody holding
// the SQ lock waits for another (lio_listio, which keeps it across its entries, takes the
// engine lock by trylock: `lock(holding:)`). aio_error, aio_return and aio_suspend take none of
// them (they are async-signal-safe).
import CUAIO
import CURing
import Glibc

/// A lio_listio list with a notification of its own, counted down by its requests.
struct ListGroup: Poolable {
    /// Requests not yet complete, plus one while lio_listio is still submitting.
    var remaining: UInt32 = 0
    var notification: Notification = .none
    var nextFree = nilIndex
    var generation: UInt32 = 0
}

public final class Engine: @unchecked Sendable {
    public let configuration: Configuration
    public let pid: pid_t
    let lock = Lock()
    let requests: SlotPool<RequestSlot>
    let groups: SlotPool<ListGroup>
    let files: FileTable
    /// Per request slot: the submitter's identity, for requests whose `hasCredentials` is set
    /// (Engine+Operations). Mapped untouched: pages appear when credentials are first kept.
    let credentials: UnsafeMutablePointer<cuaio_creds>
    /// Completed requests for aio_waitcomplete, aio_waitn and uaio_eventfd (Engine+Reap), fed
    /// once `reapOn` is 1: from the start when the program imports one of them, else from the
    /// first call.
    let reapQueue: OpaquePointer
    let reapOn: UnsafeMutablePointer<UInt32>
    let ring = CompletionRing()
    /// The stats region for `uaio`, when this engine publishes. A `let`: a class `var` read on
    /// the hot path would pay a dynamic exclusivity check each time.
    let stats: Stats?
    @exclusivity(unchecked) private(set) var pool: WorkerPool!  // set once, in init (as `uring`)
    /// The io_uring backend, when a ring could be set up (and UAIO_BACKEND is not `pool`).
    /// Set once, in init (it needs `self`). Unchecked: read on every submission, and a class
    /// `var` would otherwise pay a dynamic exclusivity check each time.
    @exclusivity(unchecked) private(set) var uring: URingBackend?
    /// `uring`'s io_uring, for aio_error's look at the CQ: a plain pointer, so that the look
    /// (two loads) retains nothing. Set once, with `uring`.
    @exclusivity(unchecked) private(set) var polledRing: UnsafeMutablePointer<io_uring>?
    /// `uring`'s `submitters` when its ring is cooperative: aio_error kicks for another
    /// thread's requests (URingBackend's header). Set once, with `uring`.
    @exclusivity(unchecked) private(set) var kickedBy: UnsafeMutablePointer<UInt64>?
    /// `pool` and `uring` for the hot paths, borrowed (`withPool`, `withRing`): loading a class
    /// `var` copies the reference, a retain and a release, atomic read-modify-writes on the
    /// object's first line, which the submitter and the workers would take from each other on
    /// every request. The `var`s above keep both alive for as long as the engine.
    @exclusivity(unchecked) private var poolRef: Unmanaged<WorkerPool>!
    @exclusivity(unchecked) private var uringRef: Unmanaged<URingBackend>?
    /// Why there is no ring, if there is none.
    public private(set) var ringSetupError: Errno?
    /// UAIO_TRY_INLINE: see `readInline`.
    let tryInline: Bool
    /// submitted, completed, canceled, failed at submission (relaxed counters).
    let counters: UnsafeMutablePointer<UInt64>
    /// Requests whose result is out (publishEarly) and whose slot is not yet free: a full
    /// table with some is full only until their publishers get the lock (`submit`).
    let retiring: UnsafeMutablePointer<UInt32>
    /// UAIO_SPIN_US in ns; 0 with a single CPU, where a spin only delays the thread it waits for.
    let spinLimitNs: UInt64
    /// How long waits have lasted lately, in ns (Engine+Wait): a moving average, relaxed (a hint;
    /// concurrent waiters may overwrite each other's updates).
    let recentWaitNs: UnsafeMutablePointer<UInt64>
    /// Waits that did not spin, counted to pick the probes among them (relaxed: a hint).
    let waitProbes: UnsafeMutablePointer<UInt64>

    /// The longest a contended engine lock spins (Lock, lock.c): measured at QD32 writes, 3, 10
    /// and 30 us did alike, against 0.82x the IOPS with glibc's adaptive mutex.
    static let lockSpinNs: UInt64 = 10_000
    /// AIO_PRIO_DELTA_MAX: aio_reqprio runs from 0 (first) to this (last).
    public static let maxRequestPriority: CInt = 20
    /// The longest list lio_listio takes (our AIO_LISTIO_MAX).
    public static let maxListLength = 1 << 16
    /// An inline read taking longer than this plus 0.5 ns per byte (2 GB/s) did not just copy
    /// from the page cache (ReadHint).
    static let inlineCopyBudgetNs: UInt64 = 5_000
    /// The largest read tried inline, and the largest the ring may do inside io_uring_enter: a
    /// copy of 256 KiB from the page cache takes some 20 to 60 us here, a 32 MiB one 10 ms, which
    /// an asynchronous call must not spend on its caller's thread. Larger reads go to a worker
    /// (io-wq with IOSQE_ASYNC, or the pool), where several run in parallel.
    public static let inlineMaxBytes = 256 << 10

    /// `restrictRingTo`, `ringBackstopMs`: tests only, see URingBackend.init.
    /// `publish`: map the stats region (the process-wide engine only; UAIO_STATS permitting).
    init?(configuration: Configuration, restrictRingTo: Set<Opcode>? = nil,
          ringBackstopMs: CInt = URingBackend.defaultBackstopMs, publish: Bool = false)
    {
        let n = configuration.maxRequests.value
        let requests = SlotPool<RequestSlot>(capacity: n, preferred: Stats.maxRecords)  // (the published ones)
        let groups = SlotPool<ListGroup>(capacity: n)
        let files = FileTable(capacity: n), creds = system_mmapAnonymous(n * MemoryLayout<cuaio_creds>.stride)
        let queue = cuaio_reapq_create(UInt32(clamping: 2 * n))
        guard let requests, let groups, let files, let creds, let queue else {
            // Nothing stays mapped: the next call tries again, and must not leak as much again.
            requests?.unmap()
            groups?.unmap()
            files?.unmap()
            if let creds { munmap(creds, n * MemoryLayout<cuaio_creds>.stride) }
            if let queue { cuaio_reapq_destroy(queue) }
            return nil
        }
        reapQueue = queue
        reapOn = .allocate(capacity: 1)
        reapOn.initialize(to: publish && cuaio_program_imports_reaping() == 1 ? 1 : 0)
        credentials = creds.bindMemory(to: cuaio_creds.self, capacity: n)
        self.configuration = configuration
        self.pid = getpid()
        self.requests = requests
        self.groups = groups
        self.files = files
        tryInline = configuration.tryInline.value
        counters = .allocate(capacity: 4)
        counters.initialize(repeating: 0, count: 4)
        retiring = .allocate(capacity: 1)
        retiring.initialize(to: 0)
        spinLimitNs = sysconf(Int32(_SC_NPROCESSORS_ONLN)) > 1 ? UInt64(configuration.spinUs.value) * 1000 : 0
        // A contended engine lock spins for at most 10 us (its holds are well under one), except
        // on a single CPU (lock.c). Not tied to UAIO_SPIN_US: with that at 0, a lock that slept
        // at once made writes at QD32 0.44x fio io_uring, against 0.79x with glibc's mutex.
        Lock.setSpin(ns: sysconf(Int32(_SC_NPROCESSORS_ONLN)) > 1 ? Self.lockSpinNs : 0)
        recentWaitNs = .allocate(capacity: 1)
        recentWaitNs.initialize(to: 0)
        waitProbes = .allocate(capacity: 1)
        waitProbes.initialize(to: 0)
        stats = publish && configuration.stats.value
            ? Stats(pid: pid, capacity: Int(requests.capacity), configuration: configuration) : nil
        pool = WorkerPool(engine: self)
        poolRef = Unmanaged.passUnretained(pool)
        if configuration.backend.value != .pool {
            do {
                uring = try URingBackend(engine: self, restrictTo: restrictRingTo, backstopMs: ringBackstopMs)
                polledRing = uring?.rawRing
                kickedBy = uring?.cooperative == true ? uring?.submitters : nil
                uringRef = uring.map { Unmanaged.passUnretained($0) }
                if cuaio_load_u32_relaxed(reapOn) != 0 { uring?.raiseNeed() }  // as enableReaping
            } catch {
                ringSetupError = error
                if configuration.debug.value {
                    cuaio_write_stderr("uaio: io_uring cannot be used here (\(error), errno \(error.rawValue)); "
                        + "every request goes to the worker pool\n")
                }
            }
        }
        if let uring { stats?.noteRing(entries: uring.entries, fd: uring.fd) }
        Self.instantiateRuntimeMetadata()
    }

    /// The Swift runtime builds some type metadata lazily, under a once-lock. If a worker were
    /// the first to need one while another thread forks, the child would inherit the lock held
    /// and hang on first use (pitfalls.md, fork). So the types the worker path uses are made
    /// here, on the submitting thread, before the first worker starts.
    private static func instantiateRuntimeMetadata() {
        var deferred = Deferred()
        deferred.deliveries.append(Delivery(record: CompletionRecord(), published: false, notification: .none, listNotification: .none))
        deferred.deliveries.removeAll()
        let results: [Result<Int, Errno>?] = [.success(0), .failure(.canceled), nil]
        _ = results.contains { $0 == nil }
        var batch = [(UInt64, Int32, Bool)]()
        batch.append((0, 0, false))
        batch.removeAll(keepingCapacity: true)
    }

    @inline(__always) func withPool<R>(_ body: (WorkerPool) -> R) -> R { poolRef._withUnsafeGuaranteedRef(body) }
    @inline(__always) func withRing<R>(_ body: (URingBackend) -> R) -> R? { uringRef?._withUnsafeGuaranteedRef(body) }

    // MARK: the per-process instance

    /// This process's engine, built on first use; nil only if its memory could not be mapped.
    public static func current() -> Engine? {
        if let p = cuaio_engine_load() { return Unmanaged<Engine>.fromOpaque(p).takeUnretainedValue() }
        // First use: build it once, even when threads race here (an engine may own a ring).
        // The fork handlers exist first (cuaio.c registers them at load; this, if that failed):
        // a fork() while another thread builds must give a child whose creation lock is fresh.
        cuaio_ensure_atfork()
        cuaio_engine_creation_lock()
        defer { cuaio_engine_creation_unlock() }
        if let engine = existing() { return engine }
        let configuration = Configuration.load()
        configuration.reportProblemsOnce()
        guard let engine = Engine(configuration: configuration, publish: true) else { return nil }
        cuaio_engine_store(Unmanaged.passRetained(engine).toOpaque())
        return engine
    }

    /// The engine if this process has built one (async-signal-safe: one atomic load).
    public static func existing() -> Engine? {
        guard let p = cuaio_engine_load() else { return nil }
        return Unmanaged<Engine>.fromOpaque(p).takeUnretainedValue()
    }

    /// `body` with the process's engine, if there is one, without retaining it: every request
    /// calls in here several times, and a retain and release are atomic read-modify-writes on
    /// a line other threads write too. The engine is never freed (a forked child drops its
    /// pointer to the parent's, without releasing it, and builds its own).
    @inline(__always)
    static func withExisting<R>(_ body: (Engine) -> R) -> R? {
        guard let p = cuaio_engine_load() else { return nil }
        return Unmanaged<Engine>.fromOpaque(p)._withUnsafeGuaranteedRef(body)
    }

    /// aio_read and the other submissions on the process's engine, built on first use (EAGAIN
    /// if it cannot be), without retaining it.
    public static func submitToCurrent(_ cb: AIOCB, _ opcode: Opcode) -> Errno? {
        if let outcome = withExisting({ $0.submit(cb, opcode) }) { return outcome }  // built: its answer
        guard let engine = current() else { return .again }
        return engine.submit(cb, opcode)
    }

    /// aio_error for a request in progress in some process: .invalid unless in this one. A
    /// program polling aio_error finds its ring completions without the reaper: looking costs
    /// two loads (a method, so that `self` is not retained either).
    func errorInProgress(_ cb: AIOCB) -> Result<CInt, Errno> {
        guard cb.tagPid == pid else { return .failure(.invalid) }
        guard let cq = polledRing, URingBackend.hasCompletions(cq) else {
            // Cooperative task_work: another thread's completions may wait for it to enter the
            // kernel, although the hint is clear (URingBackend.kick). One load when nothing is
            // in flight.
            if let word = kickedBy, cuaio_load_u64_relaxed(word) != 0 {
                withRing { if $0.othersInFlight { $0.kick(blind: true) } }
            }
            return .success(EINPROGRESS)
        }
        withRing { $0.reapIfReady() }
        return .success(cb.errorCode)
    }

    // MARK: counters

    public var submittedCount: UInt64 { cuaio_load_u64_relaxed(counters) }
    public var completedCount: UInt64 { cuaio_load_u64_relaxed(counters + 1) }
    public var canceledCount: UInt64 { cuaio_load_u64_relaxed(counters + 2) }
    public var rejectedCount: UInt64 { cuaio_load_u64_relaxed(counters + 3) }
    /// Requests submitted whose result is not yet visible (lock-free: the counters count a
    /// result as it is published, before its slot is freed). Exact when nothing moves; read
    /// meanwhile, it may miss one just submitted.
    public var inFlight: Int {
        let ended = completedCount &+ canceledCount  // first: a submission is counted after its inline end
        return Int(clamping: max(0, Int64(bitPattern: submittedCount &- ended)))
    }

    // MARK: submission

    /// Queues `cb` as `opcode`. Returns nil when queued, or the errno of a submission error.
    public func submit(_ cb: AIOCB, _ opcode: Opcode) -> Errno? {
        var deferred = Deferred()
        let e = submit(cb, opcode, group: nilIndex, &deferred)
        afterUnlock(&deferred)
        return e
    }

    func submit(_ cb: AIOCB, _ opcode: Opcode, group: UInt32, _ deferred: inout Deferred) -> Errno? {
        var e = validateAndQueue(cb, opcode, group: group, &deferred)
        if case .again? = e, deferred.fullWhileRetiring { e = submitWhenRetired(cb, opcode, group: group, &deferred) }
        if case .badFD? = e { e = deferBadFD(cb, opcode, &deferred) }
        _ = cuaio_add_u64_relaxed(counters + (e == nil ? 0 : 3), 1)
        if e != nil { stats?.rejected() }  // (accepted ones are counted where they take a slot)
        return e
    }

    /// The table was full, but some of its requests have ended: their results are out, and a
    /// program that reaped one may submit one (compat/tests/limits.c, 8 in flight of 8). Their
    /// slots are freed as soon as their publishers get the lock, which this thread has released:
    /// it lets them (and, in a list, submits what it filled, which releases the ring's SQ lock
    /// that a retirement may need), then tries again, while the table is full with some of
    /// them in it (read under the lock, where no retirement can pass unseen). EAGAIN only if
    /// the table is full of requests whose results nobody has seen.
    static let retirePatienceNs: UInt64 = 100_000_000

    @inline(never)
    private func submitWhenRetired(_ cb: AIOCB, _ opcode: Opcode, group: UInt32, _ deferred: inout Deferred) -> Errno? {
        let deadline = cuaio_now_ns() &+ Self.retirePatienceNs
        var tries = 0
        while true {
            afterUnlock(&deferred)
            tries += 1
            if tries < 64 { sched_yield() } else { usleep(50) }  // (a publisher asleep on the lock)
            deferred.fullWhileRetiring = false
            let e = validateAndQueue(cb, opcode, group: group, &deferred)
            guard case .again? = e, deferred.fullWhileRetiring, cuaio_now_ns() < deadline else { return e }
        }
    }

    /// EBADF (a closed fd, or one not open for the direction) of a read or write is reported
    /// as glibc reports it: the submission succeeds, and aio_error says EBADF, after which the
    /// notification comes. glibc's aio_fsync checks its fd itself and fails at once: so do we.
    /// Never for an aiocb still in flight: the live request keeps it. (Out of line: the
    /// submission's hot path only tests for it.)
    @inline(never)
    private func deferBadFD(_ cb: AIOCB, _ opcode: Opcode, _ deferred: inout Deferred) -> Errno? {
        guard !opcode.isExtended, !opcode.isSync, !cb.isInProgress(pid: pid),
              let notification = withUnsafePointer(to: &cb.pointee.aio_sigevent, { Notification($0) })
        else { return .badFD }
        deferred.deliveries.append(endInline(cb, opcode, .failure(.badFD), notification, latencyNs: 0))
        return nil
    }

    private func validateAndQueue(_ cb: AIOCB, _ opcode: Opcode, group: UInt32, _ deferred: inout Deferred) -> Errno? {
        let fd = cb.pointee.aio_fildes
        let reqprio = opcode.isSync ? 0 : cb.pointee.aio_reqprio
        guard reqprio >= 0 && reqprio <= Self.maxRequestPriority else { return .invalid }
        // aio_fsync ignores every field but aio_fildes and aio_sigevent (POSIX): no check, and
        // none of them is copied (below).
        guard opcode.isSync || cb.pointee.aio_nbytes >= 0 else { return .invalid }  // size_t above SSIZE_MAX
        // readv/writev: aio_nbytes counts iovecs (1 to IOV_MAX, as readv(2) takes).
        if opcode.isVectored && !(1...Int(cuaio_iov_max())).contains(cb.pointee.aio_nbytes) { return .invalid }
        guard let notification = withUnsafePointer(to: &cb.pointee.aio_sigevent, { Notification($0) }) else {
            return .invalid
        }
        if opcode.isExtended { return queueExtended(cb, opcode, reqprio: reqprio, notification, group: group, &deferred) }
        guard fd >= 0 else { return .badFD }
        // Inline only while no bounded work is queued: it must not overtake queued requests
        // of a higher priority (aio_reqprio orders what is pending together).
        var knownFlags: CInt? = nil  // the inline attempt's fcntl, reused on an fd-cache miss
        if opcode == .read && tryInline && withPool({ $0.bounded.queuedHint }) == 0
            && files.readHint(fd) != .direct && !cb.isInProgress(pid: pid)
        {
            switch readInline(cb, notification, &deferred) {
            case .completed: return nil
            case .declined(let flags): knownFlags = flags
            }
        }

        lock(holding: &deferred)
        defer { lock.unlock() }
        var entry: FDEntry
        let status: FileIdentity?, kind: FileKind
        if let hit = cachedFile(fd), hit.kind != .stream {
            (entry, status, kind) = (hit, nil, hit.kind)  // the hot path: nothing to copy or call
        } else {
            switch lookUpLocked(fd, knownFlags: knownFlags, &deferred) {
            case .success(let f): (entry, status, kind) = (f.entry, f.status, f.kind)
            case .failure(let e): return e
            }
        }

        let access = entry.flags & O_ACCMODE
        switch opcode {
        case .read, .readv: if access == O_WRONLY { return .badFD }
        case .write, .writev, .fsync, .fdatasync: if access == O_RDONLY { return .badFD }
        default: break  // (the uaio_ops.h operations took queueExtended)
        }
        if liveRequest(for: cb) != nil {
            return .invalid  // the aiocb is already in flight: reusing it would lose a completion
        }
        let append = entry.flags & O_APPEND != 0
        let stream = kind == .stream
        let offset = Int64(cb.pointee.aio_offset)
        if !stream && !(append && opcode.isWrite) && !opcode.isSync && offset < 0 { return .invalid }
        guard let r = requests.take() else {
            deferred.fullWhileRetiring = cuaio_load_u32_seqcst(retiring) != 0  // (decrements take the lock)
            return .again
        }
        if let st = status {
            guard let attached = files.attach(fd: fd, status: st, kind: kind, flags: entry.flags) else {
                requests.give(r)
                return .again
            }
            entry = attached
        }

        let s = requests[r]
        let generation = s.pointee.generation
        s.pointee.cb = cb
        s.pointee.opcode = opcode
        s.pointee.fd = fd
        s.pointee.reqprio = reqprio
        let sync = opcode.isSync
        s.pointee.buffer = sync ? nil : UnsafeMutableRawPointer(mutating: cb.pointee.aio_buf)
        s.pointee.nbytes = sync ? 0 : Int(cb.pointee.aio_nbytes)
        s.pointee.offset = sync ? 0 : offset
        s.pointee.notification = notification
        s.pointee.file = entry.file
        s.pointee.group = group
        s.pointee.workClass = stream ? .unbounded : .bounded
        s.pointee.positioned = !stream && !(append && opcode.isWrite)
        s.pointee.mayBlock = kind == .block || entry.flags & cuaio_o_direct() != 0 || opcode.isSync
        s.pointee.inMemory = kind == .memory
        s.pointee.lane =
            switch (stream, opcode) {
            case (true, let op) where op.isRead: .streamRead
            case (true, let op) where op.isWrite: .streamWrite
            case (false, let op) where op.isWrite && append: .append
            default: .none
            }
        s.pointee.submittedNs = cuaio_now_ns()
        if group != nilIndex { groups[group].pointee.remaining += 1 }
        // The aiocb says EINPROGRESS before any worker can see the request.
        cb.markInProgress(slot: r, generation: generation, pid: pid)
        if files.enter(r, s, requests: requests) {
            makeReadyLocked(r, &deferred)
        } else {
            s.pointee.state = .held
            withRing { $0.raiseNeed() }  // the completion that readies it must be reaped
            publishLocked(r)
        }
        return nil
    }

    private struct FileLookup {
        var entry: FDEntry
        /// Set on a miss: the file is attached once the request is sure to be queued.
        var status: FileIdentity?
        var kind: FileKind
    }

    /// What `fd` is, for a miss or a stream hit (a plain hit is decided inline by the caller:
    /// nothing to copy under the lock). Lock held on entry and on return; released around
    /// system calls. A hit in the fd cache costs nothing, except on a stream: an fstat checks that the fd was not
    /// closed and reused for another file while requests still wait on it (they may wait for
    /// ever, and a regular file taken for a stream would be read at the wrong offset). A miss
    /// costs an fstat and an F_GETFL (none if the inline attempt read it), plus an fstatfs for
    /// a regular file this fd has not shown before.
    private func lookUpLocked(_ fd: CInt, knownFlags: CInt?, _ deferred: inout Deferred) -> Result<FileLookup, Errno> {
        func same(_ e: FDEntry, _ id: FileIdentity) -> Bool { e.device == id.device && e.inode == id.inode }
        var status: FileIdentity? = nil
        if let hit = cachedFile(fd) {
            guard hit.kind == .stream else { return .success(FileLookup(entry: hit, status: nil, kind: hit.kind)) }
            lock.unlock()
            let st = system_fstat(fd)
            lock(holding: &deferred)
            let now: FileIdentity
            switch st {
            case .success(let v): now = v
            case .failure(let e): return .failure(e)
            }
            if let again = cachedFile(fd), same(again, now) {
                return .success(FileLookup(entry: again, status: nil, kind: again.kind))
            }
            status = now  // another file behind the same number now: a miss
        }
        let seen = files.lastSeen(fd)
        lock.unlock()
        let st: FileIdentity, fl: CInt
        switch (status.map { .success($0) } ?? system_fstat(fd), knownFlags.map { .success($0) } ?? system_getfl(fd)) {
        case (.success(let a), .success(let b)): (st, fl) = (a, b)
        case (.failure(let e), _), (_, .failure(let e)):
            lock(holding: &deferred)
            return .failure(e)
        }
        let kind = FileKind(mode: st.mode) {
            if let seen, seen.device == st.device, seen.inode == st.inode {
                return seen.kind == .memory  // no fstatfs for an inode seen before
            }
            return system_inMemory(fd)
        }
        lock(holding: &deferred)
        if let hit = cachedFile(fd), same(hit, st) {
            return .success(FileLookup(entry: hit, status: nil, kind: hit.kind))  // attached meanwhile
        }
        return .success(FileLookup(entry: FDEntry(flags: fl), status: st, kind: kind))
    }

    /// The fd cache's entry for `fd` (lock held), unless a request's result is out before its
    /// bookkeeping (`retiring`): the program may have closed that request's fd and opened
    /// another file under its number, which the entry, alive while its file has requests,
    /// would not see (a write with the old file's O_APPEND lands at the wrong offset). Relaxed:
    /// the program saw that result after the increment, and submits after it saw it.
    @inline(__always)
    private func cachedFile(_ fd: CInt) -> FDEntry? {
        cuaio_load_u32_relaxed(retiring) == 0 ? files.cached(fd) : nil
    }

    /// Takes the engine lock. A thread that holds the ring's SQ lock (lio_listio keeps it from
    /// its first ring entry to its one io_uring_enter) must not wait for it: the holder may be
    /// waiting for the SQ lock (the order is engine, then SQ). So it tries, and if the lock is
    /// taken, first submits what it filled and lets the SQ lock go (the list then takes more
    /// than one io_uring_enter).
    func lock(holding deferred: inout Deferred) {
        if deferred.holdsSQ {
            if lock.tryLock() { return }
            withRing { $0.afterUnlock(&deferred) }
        }
        lock.lock()
    }

    /// The live request submitted with `cb`, if any (lock held).
    func liveRequest(for cb: AIOCB) -> UInt32? {
        guard cb.isOurs, cb.tagPid == pid else { return nil }
        let r = cb.tagSlot
        guard r < requests.capacity, r != nilIndex else { return nil }
        let s = requests[r]
        guard s.pointee.state != .free, s.pointee.cb == cb, s.pointee.generation == cb.tagGeneration,
              cb.errorCode == EINPROGRESS
        else { return nil }
        return r
    }

    /// Hands a request whose ordering rules allow it to start to its backend (Routing).
    func makeReadyLocked(_ r: UInt32, _ deferred: inout Deferred) {
        let s = requests[r]
        if s.pointee.state == .held { withRing { $0.dropNeed() } }
        s.pointee.state = .queued
        let ringTook = !s.pointee.reissued && withRing({ uring in
            guard uring.takesLocked(s) else { return false }
            uring.enqueueLocked(r, &deferred)
            return true
        }) == true
        if !ringTook {
            s.pointee.backend = .pool
            withPool { $0.enqueueLocked(r, &deferred) }
        }
        publishLocked(r)
    }

    /// Writes request `r`'s record in the stats region (lock held).
    func publishLocked(_ r: UInt32) {
        stats?.publish(r, requests[r], live: requests.live)
    }

    /// Runs what was deferred under the lock: thread starts and deliveries.
    func afterUnlock(_ deferred: inout Deferred) {
        if deferred.isEmpty { return }
        // The ring first: it submits and releases the SQ lock, which must not be held while
        // anything below takes the engine lock (the lock order in the header).
        withRing { $0.afterUnlock(&deferred) }
        withPool { $0.afterUnlock(&deferred) }
        for d in deferred.deliveries { deliver(d) }
        deferred.deliveries.removeAll(keepingCapacity: true)
    }

    // MARK: completion

    /// Ends request `r` with `result`: stores it in the aiocb (the last touch of the aiocb),
    /// unless `publishEarly` did; takes the request off its file, readies what it held back,
    /// counts down its list and frees the slot. Lock held. The returned delivery must be passed
    /// to `deliver` after the lock is released.
    func finishLocked(_ r: UInt32, _ result: Result<Int, Errno>, backend: BackendKind,
                      published: Bool = false, _ deferred: inout Deferred) -> Delivery
    {
        let s = requests[r]
        if s.pointee.state == .held { withRing { $0.dropNeed() } }  // cancelled while held
        let record = published ? CompletionRecord() : completionRecord(r, s.pointee, result, backend: backend)
        if !published { storeResult(s.pointee.cb!, result) }

        if s.pointee.file != nilIndex {
            let (a, b) = files.leave(r, s, requests: requests)
            if a != nilIndex { makeReadyLocked(a, &deferred) }
            if b != nilIndex { makeReadyLocked(b, &deferred) }
        }
        if s.pointee.hasCredentials {
            cuaio_creds_release(credentials + Int(r))
            s.pointee.hasCredentials = false
        }

        var listNotification = Notification.none
        let g = s.pointee.group
        if g != nilIndex {
            groups[g].pointee.remaining -= 1
            if groups[g].pointee.remaining == 0 {
                listNotification = groups[g].pointee.notification
                groups.give(g)
            }
        }
        if let first = s.pointee.watchers { tell(first, result) }
        s.pointee.watchers = nil
        let delivery = Delivery(record: record, published: published, notification: s.pointee.notification,
                                listNotification: listNotification)
        s.pointee.state = .free
        s.pointee.cb = nil
        stats?.publishState(r, s, live: requests.live - 1)
        requests.give(r)
        if published { _ = cuaio_sub_u32_seqcst(retiring, 1) }
        return delivery
    }

    /// Tells the aio_cancel calls waiting on a request how it ended.
    private func tell(_ first: UnsafeMutablePointer<CancelWatch>, _ result: Result<Int, Errno>) {
        var canceled = false
        if case .failure(.canceled) = result { canceled = true }  // a pattern: see count(_:)
        var w: UnsafeMutablePointer<CancelWatch>? = first
        while let x = w {
            x.pointee.ended = true
            x.pointee.canceled = canceled
            w = x.pointee.next
        }
    }

    /// Counts a result as completed or cancelled (storeResult, in the order it says).
    @inline(__always)
    func count(_ result: Result<Int, Errno>) {
        // A pattern, not `==`: Result's == is generic and would instantiate type metadata on
        // this (worker) thread, which a concurrent fork() can leave locked in the child.
        if case .failure(.canceled) = result {
            _ = cuaio_add_u64_relaxed(counters + 2, 1)
        } else {
            _ = cuaio_add_u64_relaxed(counters + 1, 1)
        }
    }

    /// The completion ring's record of request `r` (whose slot is `job`) ending with `result`.
    @inline(__always)
    private func completionRecord(_ r: UInt32, _ job: borrowing RequestSlot, _ result: Result<Int, Errno>,
                                  backend: BackendKind) -> CompletionRecord
    {
        var record = CompletionRecord()
        record.request = r
        record.generation = job.generation
        record.opcode = job.opcode.rawValue
        record.backend = backend.rawValue
        switch result {
        case .success(let n): record.result = Int64(n)
        case .failure(let e): record.error = e.rawValue; record.result = -1
        }
        record.latencyNs = cuaio_now_ns() &- job.submittedNs
        return record
    }

    /// Publishes the final result of running request `r` (its slot, or the worker's copy of it,
    /// is `job`) before its bookkeeping, without the engine lock: in the aiocb, in the completion
    /// ring, and to a waiter asleep in the kernel. A backend that finds the lock taken does this
    /// before it waits for it, so a waiter sees the result even while the lock's holder cannot
    /// run: a signal handler's aio_suspend that interrupted the holder, on the holder's own
    /// thread (compat/tests/suspend_handler.c). Only the backend running the request calls it,
    /// with a result nothing re-issues; then finishLocked(published: true).
    /// Until then the slot is live with a result in its aiocb: liveRequest no longer finds it,
    /// and nothing may touch the aiocb (the program may free it once it saw the result).
    ///
    /// The words, in the order the publisher writes them, and who reads them:
    ///
    /// | word                        | written (ordering)                  | read by, and why                                        |
    /// |-----------------------------|-------------------------------------|---------------------------------------------------------|
    /// | WorkQueue.returning         | +1 by the worker first (seq_cst)    | startWorkerIfUseful: the worker takes the next request  |
    /// | slot `published`            | 1 (seq_cst)                         | cancel, under the lock: done, its aiocb not ours        |
    /// | Engine `retiring`           | +1 (seq_cst); -1 at the retirement  | a full table's submission (under the lock), the fd cache |
    /// | counters, aiocb result      | storeResult (relaxed; release)      | the program; inFlight, aio_waitcomplete's `outstanding` |
    /// | completion ring sequence    | ring.publish (seq_cst)              | waiters, then the doorbell for one asleep in the kernel |
    func publishEarly(_ r: UInt32, _ job: borrowing RequestSlot, _ result: Result<Int, Errno>, backend: BackendKind) {
        let record = completionRecord(r, job, result, backend: backend)
        cuaio_store_u32_seqcst(Self.publishedWord(requests[r]), 1)  // before the result: cancel's read
        _ = cuaio_add_u32_seqcst(retiring, 1)  // before the result: a submitter that saw it sees this
        storeResult(job.cb!, result)  // and counts it
        ring.publish(record)
        stats?.finished(record)
        withRing { $0.ringDoorbellIfWaiting() }
    }

    static func publishedWord(_ s: UnsafeMutablePointer<RequestSlot>) -> UnsafeMutablePointer<UInt32> {
        (UnsafeMutableRawPointer(s) + MemoryLayout<RequestSlot>.offset(of: \.published)!).assumingMemoryBound(to: UInt32.self)
    }

    /// Publishes a completion and notifies, in that order (the result is already visible).
    /// `doorbell`: wake a thread sleeping in io_uring_enter for completions (URingBackend);
    /// false only for that thread's own deliveries.
    func deliver(_ d: Delivery, doorbell: Bool = true) {
        if !d.published {
            ring.publish(d.record)
            stats?.finished(d.record)  // here, not under the engine lock: it keeps the lock's holds short
            if doorbell { withRing { $0.ringDoorbellIfWaiting() } }
        }
        d.notification.deliver(pid: pid)
        d.listNotification.deliver(pid: pid)
    }

    // MARK: cancellation

    /// aio_cancel: AIO_CANCELED, AIO_NOTCANCELED or AIO_ALLDONE for `cb`, or for every request
    /// on `fd` when `cb` is nil. Queued and held requests end with ECANCELED (and notify);
    /// running ones are interrupted where they can be (a pool worker blocked on a stream, a
    /// ring request in the kernel's poll) and end ECANCELED before this returns; file I/O that
    /// has started is left to finish (AIO_NOTCANCELED).
    public func cancel(fd: CInt, _ cb: AIOCB?) -> CInt {
        var deferred = Deferred()
        var canceled = 0, running = 0
        var inKernel: [(UInt64, UnsafeMutablePointer<CancelWatch>)] = []  // ring requests: token, watch
        var interrupted: [(UInt32, UInt32)] = []  // pool workers interrupted: (slot, generation)
        lock.withLock {
            func cancelOne(_ r: UInt32) {
                let s = requests[r]
                // Its result is out (publishEarly): done, and its aiocb no longer ours to read.
                if cuaio_load_u32_seqcst(Self.publishedWord(s)) != 0 { return }
                switch s.pointee.state {
                case .held:
                    canceled += 1
                case .queued:
                    guard pool.removeLocked(r) else { running += 1; return }
                    canceled += 1
                case .running:
                    if s.pointee.backend == .uring {
                        s.pointee.cancel = .requested  // so that a hand-over does not re-issue it
                        let w = UnsafeMutablePointer<CancelWatch>.allocate(capacity: 1)
                        w.initialize(to: CancelWatch(next: s.pointee.watchers))
                        s.pointee.watchers = w
                        inKernel.append((URingBackend.token(r, s.pointee.generation), w))
                    } else if pool.interruptLocked(r) {
                        interrupted.append((r, s.pointee.generation))
                    } else {
                        running += 1
                    }
                    return
                case .free:
                    return
                }
                deferred.deliveries.append(finishLocked(r, .failure(.canceled), backend: s.pointee.backend, &deferred))
            }
            if let cb {
                if let r = liveRequest(for: cb) { cancelOne(r) }
            } else {
                files.forEachRequest(onFD: fd, requests: requests, cancelOne)
            }
        }
        afterUnlock(&deferred)
        for (r, generation) in interrupted {
            switch pool.awaitCancel(r, generation: generation) {
            case .canceled: canceled += 1
            case .completed: break  // it finished first, with its real result
            case .stillRunning: running += 1
            }
        }
        // Ring requests: IORING_OP_ASYNC_CANCEL, synchronously. A cancelled request completes
        // through its own CQE (-ECANCELED); wait for that, so that aio_error already says
        // ECANCELED when aio_cancel returns. One the kernel cannot stop is AIO_NOTCANCELED, and
        // so is one it reports stopped that ran to its end all the same (a read in io-wq): the
        // answer is how the request ended (its watch says: its aiocb may be freed by then).
        if let uring {
            for (token, watch) in inKernel {
                if uring.cancel(token: token) {
                    // Until its CQE is in, signals or not: AIO_CANCELED says aio_error is ECANCELED.
                    while waitForCompletions(deadlineNs: nil, until: { !isLive(token) }) != nil {}
                    // Ended (finishLocked told the watch before it freed the slot).
                    if lock.withLock({ watch.pointee.canceled }) { canceled += 1 } else { running += 1 }
                } else {
                    uring.drain()  // it may have just completed: then it is done, not running
                    let live = lock.withLock {
                        let s = requests[UInt32(truncatingIfNeeded: token)]
                        guard !watch.pointee.ended else { return false }
                        unwatch(s, watch)
                        if s.pointee.backend == .uring { s.pointee.cancel = .none }  // not stopped: as before
                        return true
                    }
                    if live {
                        running += 1
                    } else if watch.pointee.canceled {
                        canceled += 1  // stopped just before by another cancel (its thread's exit)
                    }
                }
                watch.deallocate()
            }
        }
        if running > 0 { return CInt(AIO_NOTCANCELED) }
        return CInt(canceled > 0 ? AIO_CANCELED : AIO_ALLDONE)
    }

    /// The backend that operation `op` goes to in this process now.
    public func backend(for op: Opcode) -> BackendKind {
        lock.withLock { uring?.routesLocked(op) == true ? .uring : .pool }
    }

    /// Takes `watch` off the list of request slot `s`, which has not ended. Under the lock.
    private func unwatch(_ s: UnsafeMutablePointer<RequestSlot>, _ watch: UnsafeMutablePointer<CancelWatch>) {
        if s.pointee.watchers == watch { s.pointee.watchers = watch.pointee.next; return }
        var w = s.pointee.watchers
        while let x = w {
            if x.pointee.next == watch { x.pointee.next = watch.pointee.next; return }
            w = x.pointee.next
        }
    }

    /// Whether the request with this ring token is still in flight.
    private func isLive(_ token: UInt64) -> Bool {
        let r = UInt32(truncatingIfNeeded: token)
        return lock.withLock {
            requests[r].pointee.state != .free && requests[r].pointee.generation == UInt32(truncatingIfNeeded: token >> 32)
        }
    }

    // MARK: lists

    /// Opens a list group whose completion sends `notification`; nil if the table is full.
    func openGroup(_ notification: Notification) -> UInt32? {
        lock.withLock {
            guard let g = groups.take() else { return nil }
            groups[g].pointee.remaining = 1  // lio_listio's own hold while it submits
            groups[g].pointee.notification = notification
            return g
        }
    }

    /// Drops lio_listio's hold on group `g` (notifying if every request already completed).
    func closeGroup(_ g: UInt32) {
        let notification: Notification? = lock.withLock {
            groups[g].pointee.remaining -= 1
            guard groups[g].pointee.remaining == 0 else { return nil }
            let n = groups[g].pointee.notification
            groups.give(g)
            return n
        }
        notification?.deliver(pid: pid)
    }
}

