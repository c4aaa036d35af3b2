// Completion: the CQ has one consumer at a time (`cqLock`). CQEs become completions through
// `Engine.finishLocked` + `deliver`, exactly as pool completions do: both backends publish
// into the one completion ring, and waiters never know which backend served them. Three kinds
// of thread consume the CQ: a thread waiting in aio_suspend, one polling aio_error (both below),
// and a reaper thread, started with the first submission (and again after it exited, idle for
// UAIO_WORKER_IDLE_MS with nothing in flight), which sleeps on an eventfd registered with the
// ring, not in io_uring_enter: a second sleeper on the CQ is woken by every CQE, and at QD1 on
// O_DIRECT that wake-up, and the hand-over after it, cost 15% of the IOPS (measured).
//
// The reaper is woken only when a completion may have nobody else to reap it. The kernel
// signals the eventfd for each CQE only while it is switched on (IORING_CQ_EVENTFD_DISABLED
// clear), and it is on only while (`needs`, counted) a ring request that notifies (a signal, a
// thread, a list's notification) is in flight, a request is held behind another (an fsync,
// the next of a stream or O_APPEND lane: the completion that readies it must be reaped), a
// thread waits on the completion ring instead of in the kernel (a second waiter, a
// kernel without EXT_ARG), or the reap queue is fed (an epoll loop on uaio_eventfd)
// and (`role`) no waiter in the kernel consumes the CQ. Otherwise a CQE stays in the CQ until
// the program's own aio_error or aio_suspend reaps it: on a fast device a CQE arrives while
// the program is still submitting or polling, and a reaper woken for each cost 25k wake-ups
// and 32k extra context switches in 2 s at QD32 on a loop device, and 0.45x fio io_uring's
// IOPS at QD1 (measured). The reaper's sleep is bounded (`backstopMs`) while requests are in
// flight, so a CQE nobody reaps is late by at most that, never lost. (The kernel reads the
// flag after publishing a CQE without a full barrier, so in theory a CQE posted as the flag is
// switched on can miss both the signal and the switcher's look at the CQ: the same bound.)
//
// Waiting without the extra hop. When a CQE arrives for a thread asleep in aio_suspend, the
// kernel first wakes that thread (it runs the completion's task_work), and would then wake the
// reaper, which publishes and wakes it again. So one waiting thread at a time takes the CQ
// over (`waitInKernel`): it sleeps in io_uring_enter and reaps CQEs itself. The protocol:
//  - the role is one word (`role`), claimed by CAS; while it is held, nobody else consumes
//    CQEs: the eventfd is off, so the reaper sleeps on, and other drains return at once. On
//    release the eventfd goes back on if a need asks, with a signal for the CQEs left behind
//    (`syncEventFD`). Dekker pairing: a need is counted (seq_cst), then the role read; the
//    role is cleared (seq_cst), then the needs read: one of the two switches it on;
//  - the role holder processes only what is safe where it may be (a signal handler: aio_suspend
//    is async-signal-safe): trylocks only, and only CQEs whose completion starts no thread
//    (no SIGEV_THREAD, no list notification), readies no held request and needs no fallback.
//    Anything else, or a lock it cannot take, makes it hand the CQ back (release the role, wake
//    the reaper) and wait on the completion ring instead;
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
// Polling without the extra hop. A program that polls aio_error never sleeps in the library.
// So aio_error on a request in progress looks at the CQ (two loads) and, if it holds CQEs,
// takes the role as a poller for one pass under `cqLock`, by the same rules as the waiter
// (what it may not process, it leaves to the reaper, which it wakes). The eventfd keeps its
// state meanwhile, and the reaper waits for `cqLock` instead of leaving the CQ alone.
import CUAIO
import CURing
import Glibc

extension URingBackend {
    // MARK: completion

    /// user_data: the slot in the low 32 bits, its generation in the high 32.
    static func token(_ r: UInt32, _ generation: UInt32) -> UInt64 { UInt64(r) | UInt64(generation) << 32 }

    static let batchSize = 64
    /// drain, while another holds the engine lock: how often it looks for more CQEs, and how
    /// many it takes in all before it just waits.
    static let lateCheckNs: UInt64 = 200_000
    static let lateMax = 4096

    /// Reaps every CQE the ring holds; returns how many. Blocks on `cqLock` only. A program's
    /// thread blocks signals meanwhile, as reapIfReady's pass does (the library's own threads
    /// block them all). The reaper (`asReaper`) never waits for the SQ lock (enqueueLocked).
    @discardableResult
    func drain(asReaper: Bool = false) -> Int {
        var total = 0
        var mask = sigset_t()
        if !asReaper { cuaio_block_signals(&mask) }
        defer { if !asReaper { cuaio_restore_signals(&mask) } }  // after the unlock below
        cqLock.lock()
        defer { cqLock.unlock() }
        while true {
            // A waiter in the kernel consumes the CQ alone (the header): its doorbells are its
            // own. A poller holds `cqLock` for its pass: this waited for it above.
            if roleKind == Role.waiting { return total }
            var cqe: UnsafeMutablePointer<io_uring_cqe>? = nil
            batch.removeAll(keepingCapacity: true)
            while batch.count < Self.batchSize, io_uring_peek_cqe(ring, &cqe) == 0, let c = cqe {
                batch.append((c.pointee.user_data, c.pointee.res, false))
                io_uring_cqe_seen(ring, c)
            }
            if batch.isEmpty { return total }
            total += batch.count
            var deferred = Deferred()
            deferred.reaping = asReaper
            swap(&deferred.deliveries, &spareDeliveries)
            // Final results go out before the lock when it is taken (as the pool's do): its
            // holder may be a thread that a signal handler interrupted to wait for one.
            if !engine.lock.tryLock() {
                for i in batch.indices { batch[i].2 = publishIfFinal(batch[i].0, batch[i].1) }
                // And so do later CQEs' while the lock stays taken: the handler may wait for
                // one of them (compat/tests/suspend_in_pass.c). Not past a waiter's claim of
                // the CQ, nor past a batch of `lateMax`.
                while !engine.lock.lock(untilNs: cuaio_now_ns() &+ Self.lateCheckNs) {
                    while batch.count < Self.lateMax, roleKind != Role.waiting, io_uring_peek_cqe(ring, &cqe) == 0,
                          let c = cqe
                    {
                        let token = c.pointee.user_data, res = c.pointee.res
                        batch.append((token, res, publishIfFinal(token, res)))
                        io_uring_cqe_seen(ring, c)
                    }
                    if batch.count >= Self.lateMax {
                        engine.lock.lock()
                        break
                    }
                }
            }
            for (token, res, published) in batch { completeLocked(token, res, published: published, &deferred) }
            engine.lock.unlock()
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

    /// Publishes the result of a CQE before the engine lock (Engine.publishEarly), if it is
    /// final; whether it did. Not final: a refusal (re-issued on the pool) and ECANCELED or
    /// EINTR, which a thread's exit may re-issue (a hand-over): those wait for the lock. Only
    /// the CQ's consumer calls this (cqLock), and a request in the kernel ends only by its CQE,
    /// so the slot's fields read here do not change meanwhile.
    private func publishIfFinal(_ token: UInt64, _ res: Int32) -> Bool {
        let r = UInt32(truncatingIfNeeded: token)
        guard r < engine.requests.capacity, res != -ECANCELED, res != -EINTR else { return false }
        let s = engine.requests[r]
        guard s.pointee.state == .running, s.pointee.backend == .uring,
              s.pointee.generation == UInt32(truncatingIfNeeded: token >> 32),
              !Self.refused(s.pointee.opcode, res, reissued: s.pointee.reissued)
        else { return false }
        engine.publishEarly(r, s.pointee, res >= 0 ? .success(Int(res)) : .failure(Errno(-res)), backend: .uring)
        return true
    }

    /// `reissue`: the request never reached the kernel (`reissueOnPool`, which decides the routes).
    /// `published`: its result is (publishIfFinal).
    func completeLocked(_ token: UInt64, _ res: Int32, published: Bool = false, _ deferred: inout Deferred,
                        reissue: Bool = false)
    {
        let r = UInt32(truncatingIfNeeded: token)
        guard r < engine.requests.capacity else { return }
        let s = engine.requests[r]
        guard s.pointee.state == .running, s.pointee.backend == .uring,
              s.pointee.generation == UInt32(truncatingIfNeeded: token >> 32)
        else { return }
        leaveLocked(s)
        let result: Result<Int, Errno> = res >= 0 ? .success(Int(res)) : .failure(Errno(-res))
        if published {
            s.pointee.handOver = false
            deferred.deliveries.append(engine.finishLocked(r, result, backend: .uring, published: true, &deferred))
            return
        }
        if s.pointee.handOver {  // its submitter exits (URingBackend+Exit.swift)
            s.pointee.handOver = false
            if s.pointee.cancel == .none && (res == -ECANCELED || res == -EINTR) {  // moved nothing
                s.pointee.backend = .pool
                s.pointee.state = .queued
                engine.pool.enqueueLocked(r, &deferred)
                return
            }
        }
        if reissue || Self.refused(s.pointee.opcode, res, reissued: s.pointee.reissued) {
            if !reissue && res != -EINVAL { routed[Int(s.pointee.opcode.rawValue)] = false }
            s.pointee.reissued = true
            s.pointee.backend = .pool
            s.pointee.state = .queued
            engine.pool.enqueueLocked(r, &deferred)
            return
        }
        deferred.deliveries.append(engine.finishLocked(r, result, backend: .uring, &deferred))
    }

    /// Starts the reaper thread (no lock held).
    func startReaper() {
        let context = Unmanaged.passRetained(self).toOpaque()
        if cuaio_spawn_thread(reaperMain, context, 128 * 1024) != 0 {
            Unmanaged<URingBackend>.fromOpaque(context).release()
            engine.lock.withLock { reaperStarted = false }
        }
    }

    /// Request `s` leaves the kernel's hands (engine lock held).
    func leaveLocked(_ s: UnsafeMutablePointer<RequestSlot>) {
        if let owner = s.pointee.owner {
            cuaio_store_u32_relaxed(owner, cuaio_load_u32_relaxed(owner) - 1)
            s.pointee.owner = nil
        }
        inFlight -= 1
        if inFlight == 0 { cuaio_store_u64_relaxed(submitters, 0) }
        engine.stats?.publishRing(inFlight: inFlight)
        if Self.needsReaper(s) { dropNeed() }
    }

    /// Whether request `s` notifies, itself or as part of a list: then nobody may be there to
    /// reap its completion, and the reaper must be woken for it.
    static func needsReaper(_ s: UnsafeMutablePointer<RequestSlot>) -> Bool {
        if case .none = s.pointee.notification { return s.pointee.group != nilIndex }
        return true
    }

    /// The reaper: drain, then sleep on the eventfd until it is signalled, or at most
    /// `backstopMs` while requests are in flight; exit when idle with nothing in flight. It
    /// submits only what its completions ready (held requests: URingBackend's header).
    func reap() {
        let idleMs = CInt(clamping: engine.configuration.workerIdleMs.value)
        var idleSince = cuaio_now_ns()
        var interval = Self.kickFirstNs, due = false
        while true {
            if drain(asReaper: true) > 0 {
                idleSince = cuaio_now_ns()
                continue
            }
            // Until the kernel, or a thread leaving CQEs behind, signals the eventfd; at most
            // `backstopMs` while requests are in flight (the header). With cooperative
            // task_work, while a need is counted, kicking the threads whose requests these are.
            // Lock-free (`submitters` is 0 exactly when nothing is in flight): a reaper blocked on
            // the engine lock could not reap for a signal handler's wait that interrupted its holder.
            let busy = cuaio_load_u64_relaxed(submitters) != 0
            var timeoutNs = UInt64(busy ? min(idleMs, backstopMs) : idleMs) * 1_000_000
            let kicking = busy && cuaio_load_u32_seqcst(needs) > 0
            if kicking, let cap = kickCap(interval: interval, due: due) { timeoutNs = min(timeoutNs, cap) }
            due = false
            let polled = system_pollIn(eventFD, timeoutNs: timeoutNs)
            if polled == .notOpen {
                replaceEventFD()
            } else if polled == .readable {
                system_eventfdDrain(eventFD)  // resets it, so that the next poll sleeps
                _ = cuaio_add_u64_relaxed(wakeups, 1)
                idleSince = cuaio_now_ns()
                interval = Self.kickFirstNs
            } else if kicking && timeoutNs < UInt64(backstopMs) * 1_000_000 {
                due = true
                interval = min(2 * interval, Self.kickMaxNs)
            } else if cuaio_now_ns() - idleSince >= UInt64(idleMs) * 1_000_000 {
                let exit = engine.lock.withLock {
                    if inFlight == 0 { reaperStarted = false }
                    return inFlight == 0
                }
                if exit { return }
            }
        }
    }

    /// The program closed the reaper's eventfd (a loop closing every fd, closefrom): ppoll
    /// reports it at once, for ever. The ring gets a new one (the kernel still holds the old
    /// one's counter, which nobody reads). If none can be registered (the ring's own fd was
    /// closed too), the reaper polls no fd, only sleeps, at most `backstopMs` while requests are
    /// in flight: completions nobody waits for are that late, never lost, and it does not spin.
    /// An fd number the program reopened before the reaper looked is not told apart: the
    /// reaper then reads from the program's file (README, "Not done yet").
    private func replaceEventFD() {
        let old = eventFD
        let fd = cuaio_eventfd()
        _ = io_uring_unregister_eventfd(ring)
        let registered = fd >= 0 && io_uring_register_eventfd(ring, fd) >= 0
        if fd >= 0 && !registered { close(fd) }
        cuaio_store_u32_relaxed(eventFDWord, UInt32(bitPattern: registered ? fd : -1))
        if engine.configuration.debug.value {
            cuaio_write_stderr("uaio: the program closed the ring's eventfd (\(old)); "
                + (registered ? "the reaper sleeps on a new one (\(fd))\n"
                    : "no other can be registered: completions nobody waits for are reaped every \(backstopMs) ms\n"))
        }
    }

    // MARK: waiting in the kernel

    enum Role {
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

    var roleKind: UInt64 { Role.kind(cuaio_load_u64_seqcst(role)) }

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
    /// the role or handed it back: the caller waits on the completion ring (for what is left).
    /// Otherwise the outcome: nil (done), .timedOut, .interrupted. `callerMask`: as
    /// CompletionRing.wait's: signals are blocked, and each sleep unblocks them.
    func waitInKernel(deadlineNs: UInt64?, callerMask: UnsafeMutablePointer<sigset_t>, until done: () -> Bool)
        -> Errno??
    {
        guard timedWaits, cuaio_load_u32_relaxed(gone) == 0 else { return nil }
        let mine = cuaio_thread_self() | Role.waiting
        // A signal handler that interrupted this thread's own wait (in io_uring_enter, holding
        // no lock) waits in its place; the role stays the interrupted wait's to release.
        let nested = Role.holder(cuaio_load_u64_seqcst(role)) == mine
        guard nested || claimRole(mine) else { return nil }
        if !nested { syncEventFD() }  // off: the reaper sleeps on
        defer { if !nested { releaseRole(mine) } }
        var interval = Self.kickFirstNs, due = false  // kicks (kickCap)
        while true {
            // Gone if a nested wait handed the CQ back meanwhile.
            guard Role.holder(cuaio_load_u64_seqcst(role)) == mine else { return nil }
            _ = engine.ring.sequenceSeqCst  // the Dekker read (header)
            if done() { return .some(nil) }
            guard reapAsWaiter() else {
                handBack(mine)
                return nil
            }
            // Already set: this is a signal handler waiting in place of this thread's wait,
            // which set it; set it again after, for that wait.
            guard let wasAsleep = markAsleep(mine) else { return nil }
            defer { if wasAsleep { _ = markAsleep(mine) } else { markAwake(mine) } }
            if done() { return .some(nil) }  // (its reads come after the bit's seq_cst RMW)
            var cqe: UnsafeMutablePointer<io_uring_cqe>? = nil
            var sleepNs: UInt64? = nil
            if let deadlineNs {
                let now = cuaio_now_ns()
                if now >= deadlineNs { return .some(.timedOut) }
                sleepNs = deadlineNs - now
            }
            let cap = kickCap(interval: interval, due: due)
            let capped = cap != nil && cap! < (sleepNs ?? .max)
            if capped { sleepNs = cap }
            let r: CInt
            if let sleepNs {
                var ts = __kernel_timespec(tv_sec: Int64(sleepNs / 1_000_000_000), tv_nsec: Int64(sleepNs % 1_000_000_000))
                r = io_uring_wait_cqes(ring, &cqe, 1, &ts, callerMask)
            } else {
                r = io_uring_wait_cqes(ring, &cqe, 1, nil, callerMask)
            }
            due = capped && r == -ETIME
            interval = due ? min(2 * interval, Self.kickMaxNs) : Self.kickFirstNs
            if r == -EINTR && !done() { return .some(.interrupted) }
            if Self.isGone(r) {  // the program closed the ring's fd: the completion ring's wait
                cuaio_store_u32_relaxed(gone, 1)
                return nil
            }
        }
    }

    /// A thread polling aio_error reaps the CQ itself when it holds CQEs (aio_error looks first,
    /// through Engine.polledRing), as a waiter would: the completion is there without a wake-up
    /// of the reaper on the other CPU and the hand-over after it. What it may not process (see
    /// reapAsWaiter) it leaves to the reaper, which it wakes; the reaper never skips the CQ for
    /// a poller. Async-signal-safe, as aio_error is. Signals are blocked while the pass holds
    /// the CQ (unless the caller blocked them): a signal handler on this thread that waits in
    /// aio_suspend could not have the CQEs the interrupted pass holds, and nobody else could
    /// reap them before the handler returned (compat/tests/suspend_in_pass.c: 2 to 10 of 3000
    /// such waits timed out). Two rt_sigprocmask per pass, not per aio_error.
    func reapIfReady(signalsBlocked: Bool = false) {
        // Cooperative task_work: this thread's completions are posted when it enters the
        // kernel; another's when it does, which a kick makes it do (the header).
        let flags = cuaio_load_u32_relaxed(ring.pointee.sq.kflags)
        if flags & Self.enterFlags != 0 { _ = io_uring_get_events(ring) }  // (an overflow: flushed)
        if flags & UInt32(IORING_SQ_TASKRUN) != 0 && othersInFlight { kick() }
        guard io_uring_cq_ready(ring) > 0 else { return }
        let me = cuaio_thread_self()
        if cuaio_cas_u64_seqcst(role, 0, me | Role.polling) != 0 {
            var mask = sigset_t()
            if !signalsBlocked { cuaio_block_signals(&mask) }
            let handsBack = !reapAsWaiter(counting: polled)
            cuaio_store_u64_seqcst(role, 0)
            if !signalsBlocked { cuaio_restore_signals(&mask) }
            if handsBack { system_eventfdSignal(eventFD) }  // the reaper does the rest
        } else if Role.holder(cuaio_load_u64_seqcst(role)) == me | Role.waiting {
            // A signal handler interrupted this thread's own wait: reap in its place.
            if !reapAsWaiter(counting: polled) { handBack(me | Role.waiting) }
        }
    }

    /// Takes the role. A poller holds it for one pass over the CQ only, so a waiter retries a
    /// bounded number of times, and not at all if the poller is its own thread (it is then
    /// a signal handler that interrupted that pass).
    func claimRole(_ mine: UInt64) -> Bool {
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
    func markAsleep(_ mine: UInt64) -> Bool? {
        while true {
            let word = cuaio_load_u64_seqcst(role)
            guard Role.holder(word) == mine else { return nil }
            if word & Role.asleep != 0 { return true }
            if cuaio_cas_u64_seqcst(role, word, word | Role.asleep) != 0 { return false }
        }
    }

    /// Clears the bit unless a publisher did (by CAS: the role may be another thread's by now).
    func markAwake(_ mine: UInt64) {
        _ = cuaio_cas_u64_seqcst(role, mine | Role.asleep, mine)
    }

    /// Releases a waiter's role if it still holds it (a nested wait may have released it). A
    /// publisher may clear `asleep` meanwhile; the store of 0 wins either way. CQEs left in the
    /// CQ stay there unless a need switches the eventfd on (`syncEventFD` signals for them).
    func releaseRole(_ mine: UInt64) {
        guard Role.holder(cuaio_load_u64_seqcst(role)) == mine else { return }
        cuaio_store_u64_seqcst(role, 0)  // seq_cst: before the read of `needs` (the header)
        syncEventFD()
    }

    /// Releases the role and wakes the reaper for the CQEs the holder may not process.
    func handBack(_ mine: UInt64) {
        releaseRole(mine)
        system_eventfdSignal(eventFD)
    }

    // MARK: kicks (cooperative task_work: URingBackend's header)

    enum Submitters {
        /// Requests of more than one thread are in flight.
        static let mixed: UInt64 = 1
    }

    static let kickFirstNs: UInt64 = 50_000
    static let kickMaxNs: UInt64 = 1_000_000
    /// The shortest time between two kicks, whoever sends them: one kick serves every waiter.
    static let kickGapNs: UInt64 = 20_000

    /// Notes that this thread submits a ring request (engine lock held, before `inFlight` counts it).
    func noteSubmitterLocked() {
        let me = cuaio_thread_self(), word = cuaio_load_u64_relaxed(submitters)
        if inFlight == 0 {
            cuaio_store_u64_relaxed(submitters, me)
        } else if word != me && word != Submitters.mixed {
            cuaio_store_u64_relaxed(submitters, Submitters.mixed)
        }
    }

    /// Whether ring requests of another thread than this one are in flight: their completions
    /// wait for that thread's task_work, which this thread cannot run. Lock-free.
    var othersInFlight: Bool {
        let word = cuaio_load_u64_relaxed(submitters)
        return word != 0 && word != cuaio_thread_self()
    }

    /// Whether some thread has task_work to run for this ring (the kernel's hint: any thread
    /// that runs its own clears it, so it may be clear while another's is pending).
    var taskrunPending: Bool { cuaio_load_u32_relaxed(ring.pointee.sq.kflags) & UInt32(IORING_SQ_TASKRUN) != 0 }

    /// Makes every thread of the process that runs in user space enter the kernel and run its
    /// task_work: membarrier's IPI returns it through the exit path that runs it (an IPI to
    /// each CPU running one: on a large machine, many). At most one per `kickGapNs` when the
    /// kernel's hint says task_work is pending; a `blind` one, for a hint another thread's run
    /// cleared, at most one per `kickMaxNs`. (A CAS on the time, read relaxed: only a rate
    /// limit, it publishes nothing.) Async-signal-safe.
    func kick(blind: Bool = false) {
        let now = cuaio_now_ns(), last = cuaio_load_u64_relaxed(kicks + 1)
        guard now &- last >= (blind ? Self.kickMaxNs : Self.kickGapNs),
              cuaio_cas_u64_seqcst(kicks + 1, last, now) != 0
        else { return }
        cuaio_membarrier_kick()
        _ = cuaio_add_u64_relaxed(kicks, 1)
    }

    /// The longest a sleep on the CQ may last, and a kick now if the hint asks, or a blind one
    /// if the last sleep ended at its cap and that was 1 ms (`due`). nil: no cap (not
    /// cooperative). A sleep while another thread's requests are in flight is capped at
    /// `interval`, which doubles from 50 us to 1 ms while nothing arrives; any other at the
    /// backstop, which bounds how late a request that another thread submits after this look
    /// (a held one it readies) can be.
    func kickCap(interval: UInt64, due: Bool) -> UInt64? {
        guard cooperative else { return nil }
        if othersInFlight {
            if taskrunPending {
                kick()
            } else if due && interval >= Self.kickMaxNs {
                kick(blind: true)
            }
            return interval
        }
        return UInt64(backstopMs) * 1_000_000
    }

    // MARK: when the reaper is woken

    /// Counts a reason for the reaper to be woken by every CQE (the header). seq_cst: a need
    /// raised, then the role read, pairs with a role cleared, then the needs read.
    func raiseNeed() {
        guard cuaio_add_u32_seqcst(needs, 1) == 0 else { return }
        syncEventFD()
        // A reaper asleep for long must start kicking (kickCap): wake it.
        if cooperative { system_eventfdSignal(eventFD) }
    }

    func dropNeed() {
        if cuaio_sub_u32_seqcst(needs, 1) == 1 { syncEventFD() }
    }

    /// Switches the eventfd on or off as the needs and the role ask: on while there is a need
    /// and no waiter in the kernel consumes the CQ. Every change of either word is followed by
    /// a call; lock-free, as signal handlers call it. A call whose write may be stale (a word
    /// changed meanwhile) writes again, so the last write matches the last state; a wrong flag
    /// in between costs a spurious wake-up or a completion late by `backstopMs`, never a lost
    /// one. Switching it on, it signals for the CQEs that arrived while it was off.
    func syncEventFD() {
        var switchedOn = false
        while true {
            let holder = Role.holder(cuaio_load_u64_seqcst(role)), n = cuaio_load_u32_seqcst(needs)
            let on = n > 0 && Role.kind(holder) != Role.waiting
            if io_uring_cq_eventfd_enabled(ring) != on {
                _ = io_uring_cq_eventfd_toggle(ring, on)
                switchedOn = on
            }
            cuaio_fence_seqcst()  // the flag's store before the reads below (the header)
            if Role.holder(cuaio_load_u64_seqcst(role)) == holder && cuaio_load_u32_seqcst(needs) == n {
                if on && switchedOn && io_uring_cq_ready(ring) > 0 { system_eventfdSignal(eventFD) }
                return
            }
        }
    }

    /// The role holder's reaping: safe CQEs only, trylocks only. False: hand the CQ back.
    func reapAsWaiter(counting: UnsafeMutablePointer<UInt64>? = nil) -> Bool {
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
                    if startsThread || s.pointee.handOver || s.pointee.group != nilIndex
                        || engine.files.completionReadies(s, requests: engine.requests)
                        || Self.refused(s.pointee.opcode, res, reissued: false)
                    {
                        handBack = true
                        break
                    }
                    leaveLocked(s)
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
}

private func reaperMain(_ arg: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    Unmanaged<URingBackend>.fromOpaque(arg!).takeRetainedValue().reap()
    return nil
}
