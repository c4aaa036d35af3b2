import CUAIO
import Glibc
import Testing

@testable import UAIOCore

/// The ring's reaper is woken only when a completion may have nobody else to reap it
/// (URingBackend+Completion's header). Each engine here has a reaper whose backstop, the sleep
/// that bounds how late a completion nobody reaps can be, is a minute: a completion that
/// needed a wake-up and did not get one misses the tests' 5 s deadline.
@Suite struct ReaperTests {
    static let enabled = EngineKind.uring.unavailable == nil

    /// An engine whose reaper is asleep: it started with a first ring read, and drains the CQ
    /// once as it starts (a test that began before would see its CQE reaped there).
    func make() -> Engine {
        let engine = EngineKind.uring.make(["UAIO_WORKER_IDLE_MS": "60000"], backstopMs: 60_000)
        let p = Pipe()
        let r = Request(fd: p.read, size: 1)
        precondition(engine.submit(r.cb, .read) == nil)
        p.put(0)
        precondition(engine.poll(r) == (0, 1))
        usleep(50_000)
        return engine
    }

    /// A program that polls aio_error reaps its ring completions itself: nothing needs the
    /// reaper, so the kernel never signals it (it did for nearly every CQE before).
    @Test(.enabled(if: enabled, "io_uring cannot be set up here"))
    func aPollerDoesNotWakeTheReaper() throws {
        let engine = make()
        let p = Pipe()
        for i in 0..<200 {
            let r = Request(fd: p.read, size: 1)
            #expect(engine.submit(r.cb, .read) == nil)
            p.put(UInt8(truncatingIfNeeded: i))
            #expect(engine.poll(r) == (0, 1) && r.bytes == [UInt8(truncatingIfNeeded: i)])
        }
        #expect(engine.uring!.reaperWakeups == 0)
        #expect(engine.completedCount == 201 && engine.inFlight == 0)
    }

    /// SIGEV_THREAD on a ring read, and nobody calls the library: the reaper delivers it.
    @Test(.enabled(if: enabled, "io_uring cannot be set up here"))
    func aNotificationArrivesWithNobodyWaiting() {
        let engine = make()
        let p = Pipe(), counter = Counter()
        let r = Request(fd: p.read, size: 1)
        counter.notify(r.cb)
        #expect(engine.submit(r.cb, .read) == nil)
        p.put(1)
        #expect(counter.reaches(1))
    }

    /// A list's notification, for ring reads whose own aiocbs ask for none.
    @Test(.enabled(if: enabled, "io_uring cannot be set up here"))
    func aListNotificationArrivesWithNobodyWaiting() {
        let engine = make()
        let p = Pipe(), q = Pipe(), counter = Counter()
        let a = Request(fd: p.read, size: 1), b = Request(fd: q.read, size: 1)
        let list = UnsafeMutablePointer<AIOCB?>.allocate(capacity: 2)
        defer { list.deallocate() }
        for (i, r) in [a, b].enumerated() {
            r.cb.pointee.aio_lio_opcode = CInt(LIO_READ)
            list[i] = r.cb
        }
        let ev = counter.sigevent()
        #expect(engine.listIO(list, count: 2, wait: false, listNotification: .thread(
            function: cuaio_sigev_function(ev)!, attributes: nil, value: ev.pointee.sigev_value)) == nil)
        p.put(1)
        q.put(2)
        #expect(counter.reaches(1))
        ev.deallocate()
    }

    /// Two reads on one pipe: the second is held until the first completes, and only the
    /// second notifies. Nobody polls, so the first's completion must wake the reaper, which
    /// submits the second.
    @Test(.enabled(if: enabled, "io_uring cannot be set up here"))
    func aHeldRequestStartsWithNobodyWaiting() {
        let engine = make()
        let p = Pipe(), counter = Counter()
        let first = Request(fd: p.read, size: 1), second = Request(fd: p.read, size: 1)
        counter.notify(second.cb)
        #expect(engine.submit(first.cb, .read) == nil && engine.submit(second.cb, .read) == nil)
        p.put(1)
        p.put(2)
        #expect(counter.reaches(1))
        #expect(first.bytes == [1] && second.bytes == [2])
    }

    /// A second waiter sleeps on the completion ring's futex while the first holds the CQ in
    /// the kernel. The first leaves; the second's completion must then wake the reaper.
    @Test(.enabled(if: enabled, "io_uring cannot be set up here"))
    func aWaiterOnTheFutexIsWoken() {
        let engine = make()
        let p = Pipe(), q = Pipe()
        let x = Request(fd: p.read, size: 1), y = Request(fd: q.read, size: 1)
        #expect(engine.submit(x.cb, .read) == nil && engine.submit(y.cb, .read) == nil)
        let first = spawn { _ = engine.finish(x) }
        usleep(50_000)  // asleep in io_uring_enter, holding the CQ
        let done = Counter()
        let second = spawn {
            let deadline = cuaio_now_ns() + 5_000_000_000
            if engine.waitForCompletions(deadlineNs: deadline, until: { !y.cb.isInProgress(pid: engine.pid) }) == nil {
                done.bump()
            }
        }
        usleep(50_000)  // asleep on the futex
        p.put(1)
        pthread_join(first, nil)
        q.put(2)
        pthread_join(second, nil)
        #expect(done.value == 1 && y.bytes == [2])
    }

    /// uaio_eventfd is readable, in an epoll-style loop that calls nothing else, once a ring
    /// read completes.
    @Test(.enabled(if: enabled, "io_uring cannot be set up here"))
    func theReapEventFDBecomesReadable() throws {
        let engine = make()
        let fd = try engine.reapEventFD().get()
        let p = Pipe()
        let r = Request(fd: p.read, size: 1)
        #expect(engine.submit(r.cb, .read) == nil)
        p.put(1)
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        #expect(poll(&pfd, 1, 5000) == 1)
    }

    /// aio_cancel waits for the cancelled request's own CQE: the reaper must be woken for it.
    @Test(.enabled(if: enabled, "io_uring cannot be set up here"))
    func aCancelReturnsWithoutTheBackstop() {
        let engine = make()
        let p = Pipe()
        let r = Request(fd: p.read, size: 1)
        #expect(engine.submit(r.cb, .read) == nil)
        let start = cuaio_now_ns()
        #expect(engine.cancel(fd: p.read, r.cb) == CInt(AIO_CANCELED))
        #expect(cuaio_now_ns() - start < 5_000_000_000)
        #expect(r.cb.errorCode == ECANCELED)
    }
}

@Suite struct CooperativeTaskrunTests {
    static let supported = EngineKind.uring.unavailable == nil
        && EngineKind.uring.make(["UAIO_COOP_TASKRUN": "1"]).uring!.cooperative

    /// On by default where the kernel has it (and membarrier, for the kicks); 0 turns it off.
    @Test(.enabled(if: supported, "the kernel has no IORING_SETUP_COOP_TASKRUN (5.19), or no io_uring"))
    func onByDefault() {
        #expect(EngineKind.uring.make().uring!.cooperative)
        #expect(!EngineKind.uring.make(["UAIO_COOP_TASKRUN": "0"]).uring!.cooperative)
    }

    /// With UAIO_COOP_TASKRUN=1 a completion is posted when its submitting thread next enters
    /// the kernel: a system call, a preemption or a timer tick (4 ms here). A thread polling
    /// aio_error for its own reads, in user space, enters it when the kernel asks
    /// (IORING_SQ_TASKRUN): another thread writes the byte, the poller spins on a flag until
    /// the write has returned, then must see the result within 100 calls of aio_error: it did
    /// in 40 rounds of 40, and a poller that does not enter the kernel in 0 or 1. (Timed
    /// instead, 34 to 37 rounds of such a poller took over 1 ms, but so did up to 20 of the
    /// real poller's when another test run loaded both CPUs.)
    @Test(.enabled(if: supported, "the kernel has no IORING_SETUP_COOP_TASKRUN (5.19), or no io_uring"))
    func aPollerPostsItsOwnCompletions() {
        let engine = EngineKind.uring.make(["UAIO_COOP_TASKRUN": "1"])
        let p = Pipe()
        let written = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        defer { written.deallocate() }
        var prompt = 0
        for i in 0..<40 {
            let r = Request(fd: p.read, size: 1)
            #expect(engine.submit(r.cb, .read) == nil)
            written.initialize(to: 0)
            let writer = spawn {
                p.put(UInt8(i))
                cuaio_store_u32_seqcst(written, 1)
            }
            while cuaio_load_u32_seqcst(written) == 0 {}  // no system call meanwhile
            var calls = 0
            while case .success(EINPROGRESS) = AIOStatus.error(r.cb, engine: engine), calls < 100 { calls += 1 }
            if calls < 100 { prompt += 1 }
            pthread_join(writer, nil)
            _ = engine.finish(r)
            #expect(r.cb.errorCode == 0 && r.bytes == [UInt8(i)])
        }
        #expect(prompt >= 36)
    }
}

/// Kicks (URingBackend's header). With cooperative task_work a completion is posted when the
/// thread that submitted the request next enters the kernel. While that thread computes in
/// user space, without system calls, whoever else waits for the request kicks it in with
/// membarrier: a thread waiting in aio_suspend, one polling aio_error, and the reaper that
/// notifies. Each case, 15 rounds: one thread computes all along (a load loop: even a clock
/// read could be a system call), and submits a pipe read when told to; the test writes the
/// byte and measures until it sees the result (for the notification, until the reaper has
/// stored it: the SIGEV_THREAD thread it then starts took 75 us to 2.9 ms while other suites
/// loaded both CPUs, and kicks cannot speed that up). The median must be under 1 ms: with
/// kicks it was 18 to 55 us (aio_suspend, aio_error) and about 100 us (the reaper); with the
/// kick's system call removed, 3.9 to 4 ms in every case (the submitter's next timer tick,
/// HZ=250). The notification still arrives, once, before the round ends. Neither a kick nor the default ring's interrupt can help a
/// submitter that is not on a CPU (its task_work waits until it is scheduled: 4 to 8 ms with
/// either), so only rounds where neither thread was preempted count (RUSAGE_THREAD's
/// involuntary switches), at least 7 of them within 30 s; and one submitter computes for all
/// rounds (one per round shared the test's CPU for the first ticks).
@Suite(.serialized) struct KickTests {
    enum Observer: CaseIterable, Sendable { case suspend, poll, notification }

    @Test(.enabled(if: CooperativeTaskrunTests.supported, "no cooperative task_work here (Linux 5.19, membarrier)"),
          arguments: Observer.allCases)
    func aComputingSubmitterDelaysNobody(_ how: Observer) {
        let engine = EngineKind.uring.make(["UAIO_COOP_TASKRUN": "1"])
        let p = Pipe()
        // 0: compute; 1: submit `next`, then 2; 4: count preemptions, then 0; 3: return.
        let command = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        command.initialize(to: 0)
        defer { command.deallocate() }
        nonisolated(unsafe) var next: AIOCB? = nil
        nonisolated(unsafe) var submitterPreempted = 0
        let submitter = spawn {
            while true {
                switch cuaio_load_u32_seqcst(command) {
                case 1:
                    precondition(engine.submit(next!, .read) == nil)
                    submitterPreempted = preemptions()
                    cuaio_store_u32_seqcst(command, 2)
                case 4:
                    submitterPreempted = preemptions() - submitterPreempted
                    cuaio_store_u32_seqcst(command, 0)
                case 3: return
                default: continue  // computes
                }
            }
        }
        usleep(50_000)  // on a CPU of its own by now
        var latencies: [UInt64] = []
        var counters: [Counter] = []  // alive until the end: a late notification bumps its own
        let end = cuaio_now_ns() + 30_000_000_000  // other suites may load the CPUs for a while
        var i = 0
        while latencies.count < 15 && cuaio_now_ns() < end {
            i += 1
            let r = Request(fd: p.read, size: 1), counter = Counter()
            if how == .notification { counter.notify(r.cb) }
            counters.append(counter)
            next = r.cb
            cuaio_store_u32_seqcst(command, 1)
            while cuaio_load_u32_seqcst(command) != 2 {}
            let preempted = preemptions()
            p.put(UInt8(truncatingIfNeeded: i))
            let start = cuaio_now_ns(), deadline = start + 5_000_000_000
            switch how {
            case .suspend:
                _ = engine.waitForCompletions(deadlineNs: deadline) { !r.cb.isInProgress(pid: engine.pid) }
            case .poll:
                while case .success(EINPROGRESS) = AIOStatus.error(r.cb, engine: engine), cuaio_now_ns() < deadline {}
            case .notification:  // asleep: the reaper needs a CPU; its result, not the thread it starts
                while r.cb.errorCode == EINPROGRESS && cuaio_now_ns() < deadline { usleep(20) }
            }
            let latency = cuaio_now_ns() - start
            if how == .notification {
                while counter.value == 0 && cuaio_now_ns() < deadline { usleep(20) }
                #expect(counter.value == 1)
            }
            let clean = preemptions() == preempted
            cuaio_store_u32_seqcst(command, 4)
            while cuaio_load_u32_seqcst(command) != 0 {}
            if clean && submitterPreempted == 0 { latencies.append(latency) }
            _ = engine.finish(r)
            #expect(r.cb.errorCode == 0 && r.bytes == [UInt8(truncatingIfNeeded: i)])
        }
        cuaio_store_u32_seqcst(command, 3)
        pthread_join(submitter, nil)
        latencies.sort()
        print("uaio kicks (\(how)): latencies \(latencies.map { $0 / 1000 }) us, \(engine.uring!.kickCount) kicks")
        #expect(latencies.count >= 7)
        if !latencies.isEmpty { #expect(latencies[latencies.count / 2] < 1_000_000) }
        #expect(engine.uring!.kickCount > 0)
    }

    /// This thread's involuntary context switches so far.
    func preemptions() -> Int {
        var usage = rusage()
        getrusage(__rusage_who_t(1), &usage)  // RUSAGE_THREAD (GNU: not in Swift's Glibc)
        return usage.ru_nivcsw
    }
}

/// A pipe, closed with the value.
final class Pipe {
    let read: CInt, write: CInt
    init() {
        var p: [CInt] = [0, 0]
        precondition(pipe(&p) == 0)
        (read, write) = (p[0], p[1])
    }
    deinit {
        close(read)
        close(write)
    }
    func put(_ byte: UInt8) {
        var b = byte
        precondition(Glibc.write(write, &b, 1) == 1)
    }
}

/// A counter that SIGEV_THREAD notifications bump.
final class Counter: @unchecked Sendable {
    private let word: UnsafeMutablePointer<UInt32> = {
        let p = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()
    deinit { word.deallocate() }
    var value: UInt32 { cuaio_load_u32_acquire(word) }
    func bump() { _ = cuaio_add_u32_seqcst(word, 1) }

    /// A sigevent asking for a SIGEV_THREAD call that bumps this counter (the caller frees it).
    func sigevent() -> UnsafeMutablePointer<Glibc.sigevent> {
        let ev = UnsafeMutablePointer<Glibc.sigevent>.allocate(capacity: 1)
        ev.initialize(to: Glibc.sigevent())
        fill(ev)
        return ev
    }

    /// Makes `cb` notify by bumping this counter.
    func notify(_ cb: AIOCB) { withUnsafeMutablePointer(to: &cb.pointee.aio_sigevent) { fill($0) } }

    private func fill(_ ev: UnsafeMutablePointer<Glibc.sigevent>) {
        ev.pointee.sigev_notify = CInt(SIGEV_THREAD)
        ev.pointee.sigev_value = sigval(sival_ptr: UnsafeMutableRawPointer(word))
        ev.pointee._sigev_un._sigev_thread._function = { v in
            _ = cuaio_add_u32_seqcst(v.sival_ptr!.assumingMemoryBound(to: UInt32.self), 1)
        }
    }

    /// Whether it reaches `n` within 5 s, without a call into the library.
    func reaches(_ n: UInt32) -> Bool {
        for _ in 0..<5000 where value < n { usleep(1000) }
        return value >= n
    }
}
