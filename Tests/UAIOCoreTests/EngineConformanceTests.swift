import CUAIO
import Glibc
import Testing

@testable import UAIOCore

/// The engine configurations every behaviour is checked against (the io_uring backend joins
/// this list). Each test builds its own engine, so settings never leak between tests.
enum EngineKind: String, CaseIterable, CustomTestStringConvertible {
    case uring, uringNoInline, pool, poolNoInline
    var testDescription: String { rawValue }

    /// Why this kind cannot run here (no ring in this process), or nil.
    var unavailable: String? {
        guard self == .uring || self == .uringNoInline, let e = Routing.probe().setupError else { return nil }
        return "io_uring cannot be set up here: \(e)"
    }

    func make(_ env: [String: String] = [:], backstopMs: CInt = URingBackend.defaultBackstopMs) -> Engine {
        var e = env
        let ring = self == .uring || self == .uringNoInline
        e["UAIO_BACKEND"] = ring ? "uring" : "pool"
        if self == .poolNoInline || self == .uringNoInline { e["UAIO_TRY_INLINE"] = "0" }
        let engine = Engine(configuration: Configuration.parse(lookup: { e[$0] }, aioInit: (0, 0, 0)),
                            ringBackstopMs: backstopMs)!
        precondition(!ring || engine.backend(for: .read) == .uring)
        return engine
    }

    var onRing: Bool { self == .uring || self == .uringNoInline }
}

/// The kinds that can run in this process; the ring is skipped, with its reason, without io_uring.
let availableKinds = EngineKind.allCases.filter { kind in
    if let why = kind.unavailable { print("skipping the \(kind) engine: \(why)"); return false }
    return true
}

/// A heap aiocb with its buffer, freed by `free()`.
final class Request {
    let cb: AIOCB
    let buffer: UnsafeMutableRawPointer
    init(fd: CInt, size: Int, offset: Int = 0, fill: UInt8? = nil) {
        cb = .allocate(capacity: 1)
        cb.initialize(to: aiocb())
        buffer = .allocate(byteCount: max(size, 1), alignment: 4096)
        if let fill { buffer.initializeMemory(as: UInt8.self, repeating: fill, count: max(size, 1)) }
        cb.pointee.aio_fildes = fd
        cb.pointee.aio_buf = UnsafeMutableRawPointer(buffer)
        cb.pointee.aio_nbytes = size
        cb.pointee.aio_offset = offset
    }
    deinit {
        buffer.deallocate()
        cb.deallocate()
    }
    var bytes: [UInt8] { Array(UnsafeRawBufferPointer(start: buffer, count: cb.pointee.aio_nbytes)) }
}

func tempFile(_ bytes: [UInt8] = []) -> CInt {
    var template = Array("/tmp/uaio-swift-XXXXXX".utf8CString)
    let fd = mkstemp(&template)
    precondition(fd >= 0)
    unlink(template)
    if !bytes.isEmpty { precondition(pwrite(fd, bytes, bytes.count, 0) == bytes.count) }
    return fd
}

extension Engine {
    /// Waits (at most 10 s) for `r` as aio_suspend does, and returns aio_error and aio_return.
    func finish(_ r: Request) -> (error: CInt, result: Int) {
        let waited = waitForCompletions(deadlineNs: cuaio_now_ns() + 10_000_000_000) { !r.cb.isInProgress(pid: pid) }
        precondition(waited == nil, "request did not complete")
        let e = r.cb.errorCode
        let v = (try? AIOStatus.takeReturn(r.cb, engine: self).get()) ?? -99
        return (e, v)
    }

    /// The same by polling aio_error (at most 10 s), as programs that never wait do.
    func poll(_ r: Request) -> (error: CInt, result: Int) {
        let deadline = cuaio_now_ns() + 10_000_000_000
        while case .success(EINPROGRESS) = AIOStatus.error(r.cb, engine: self), cuaio_now_ns() < deadline {}
        let e = (try? AIOStatus.error(r.cb, engine: self).get()) ?? -99
        precondition(e != EINPROGRESS, "request did not complete")
        let v = (try? AIOStatus.takeReturn(r.cb, engine: self).get()) ?? -99
        return (e, v)
    }
}

@Suite struct EngineConformanceTests {
    @Test(arguments: availableKinds)
    func readWriteAndFsyncOnAFile(_ kind: EngineKind) {
        let engine = kind.make()
        let fd = tempFile((0..<8192).map { UInt8(truncatingIfNeeded: $0) })
        defer { close(fd) }
        let w = Request(fd: fd, size: 100, offset: 8000, fill: 0xAB)
        #expect(engine.submit(w.cb, .write) == nil)
        #expect(engine.finish(w) == (0, 100))
        let s = Request(fd: fd, size: 0)
        #expect(engine.submit(s.cb, .fsync) == nil)
        #expect(engine.finish(s) == (0, 0))
        let r = Request(fd: fd, size: 300, offset: 7900)
        #expect(engine.submit(r.cb, .read) == nil)
        #expect(engine.finish(r) == (0, 292))  // short at the end of the 8192-byte file
        #expect(r.bytes[0..<100] == ArraySlice((7900..<8000).map { UInt8(truncatingIfNeeded: $0) }))
        #expect(r.bytes[100..<200].allSatisfy { $0 == 0xAB })
        #expect(r.bytes[200..<292] == ArraySlice((8100..<8192).map { UInt8(truncatingIfNeeded: $0) }))
        #expect(engine.submittedCount == 3 && engine.completedCount == 3 && engine.inFlight == 0)
    }

    /// The inline path skips F_GETFL on an fd number it has seen buffered (ReadHint), and on
    /// tmpfs also the preadv2(RWF_NOWAIT) that tmpfs refuses and the fstatfs that told why
    /// (`memory`: one plain pread). That number closed and reused for an O_DIRECT file (dup2
    /// here) still reads the right bytes: the first read is done synchronously, takes the
    /// device's time and clears the hint; the second looks at the flags again and leaves the
    /// inline path for good.
    @Test(arguments: [EngineKind.uring, .pool].filter(availableKinds.contains), ["/var/tmp", "/dev/shm"])
    func aReusedFdNumberThatBecameDirect(_ kind: EngineKind, _ dir: String) throws {
        var name = Array("\(dir)/uaio-hint-XXXXXX".utf8CString)
        let fd = mkstemp(&name)
        try #require(fd >= 0)
        unlink(name)
        defer { close(fd) }
        let inMemory = system_inMemory(fd)
        if dir == "/dev/shm" && !inMemory {
            print("skipping the tmpfs case: /dev/shm is not tmpfs here")
            return
        }
        try #require(dir == "/dev/shm" || !inMemory, "\(dir) is expected on a disk file system")
        let engine = kind.make()
        #expect(pwrite(fd, Array(repeating: UInt8(0x11), count: 4096), 4096, 0) == 4096)
        let expected: ReadHint = inMemory ? .memory : .buffered
        // Cached reads until one is quick enough to leave the hint set: on this shared machine a
        // single copy from the cache can exceed the budget (a preemption, a first fault).
        for _ in 0..<100 where engine.files.readHint(fd) != expected {
            let a = Request(fd: fd, size: 4096)
            #expect(engine.submit(a.cb, .read) == nil)
            #expect(engine.finish(a) == (0, 4096))
            #expect(a.bytes.allSatisfy { $0 == 0x11 })
        }
        try #require(engine.files.readHint(fd) == expected)
        let again = Request(fd: fd, size: 4096)
        #expect(engine.submit(again.cb, .read) == nil)
        #expect(engine.finish(again) == (0, 4096) && again.bytes.allSatisfy { $0 == 0x11 })

        // A file on the root file system (ext4: O_DIRECT reads go to the disk), not in the cache.
        var template = Array("/var/tmp/uaio-direct-XXXXXX".utf8CString)
        let w = mkstemp(&template)
        try #require(w >= 0)
        defer { unlink(template) }
        #expect(pwrite(w, Array(repeating: UInt8(0x22), count: 1 << 20), 1 << 20, 0) == 1 << 20)
        #expect(fsync(w) == 0 && posix_fadvise(w, 0, 0, POSIX_FADV_DONTNEED) == 0)
        close(w)
        let direct = open(template, O_RDONLY | cuaio_o_direct())
        try #require(direct >= 0, "O_DIRECT open: errno \(errno)")
        #expect(dup2(direct, fd) == fd)
        close(direct)

        let b = Request(fd: fd, size: 4096, offset: 8192)
        #expect(engine.submit(b.cb, .read) == nil)
        #expect(engine.finish(b) == (0, 4096))
        #expect(b.bytes.allSatisfy { $0 == 0x22 })
        // Either the stale hint cost one synchronous read from the disk, whose duration turned
        // the hint back to unknown, or the kernel refused RWF_NOWAIT (EAGAIN: the inode lock was
        // contended, or cached pages were in the range) and the normal path's lookup saw O_DIRECT.
        let afterStale = engine.files.readHint(fd)
        #expect(afterStale == .unknown || afterStale == .direct,
                "a read from the disk took less than \(Engine.inlineCopyBudgetNs) ns")
        let c = Request(fd: fd, size: 4096, offset: 12288)
        #expect(engine.submit(c.cb, .read) == nil)
        #expect(engine.finish(c) == (0, 4096))
        #expect(c.bytes.allSatisfy { $0 == 0x22 })
        #expect(engine.files.readHint(fd) == .direct)
    }

    /// readv/writev (FreeBSD's aio_readv/aio_writev): aio_buf is an iovec array, aio_nbytes its
    /// count; scattered into a file and gathered back, and a count out of range is EINVAL.
    @Test(arguments: availableKinds)
    func vectoredReadAndWrite(_ kind: EngineKind) {
        let engine = kind.make()
        let fd = tempFile([UInt8](repeating: 0, count: 4096))
        defer { close(fd) }
        let parts: [[UInt8]] = [Array("abc".utf8), Array("defgh".utf8), Array("ij".utf8)]
        let bufs = parts.map { p in
            let b = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
            b.copyMemory(from: p, byteCount: p.count)
            return b
        }
        defer { bufs.forEach { $0.deallocate() } }
        let iov = UnsafeMutablePointer<iovec>.allocate(capacity: 3)
        defer { iov.deallocate() }
        for i in 0..<3 { iov[i] = iovec(iov_base: bufs[i], iov_len: parts[i].count) }
        let w = Request(fd: fd, size: 0, offset: 100)
        w.cb.pointee.aio_buf = UnsafeMutableRawPointer(iov)
        w.cb.pointee.aio_nbytes = 3
        #expect(engine.submit(w.cb, .writev) == nil)
        #expect(engine.finish(w) == (0, 10))
        let out = UnsafeMutablePointer<iovec>.allocate(capacity: 2)
        defer { out.deallocate() }
        let first = UnsafeMutableRawPointer.allocate(byteCount: 4, alignment: 8)
        let second = UnsafeMutableRawPointer.allocate(byteCount: 6, alignment: 8)
        defer { first.deallocate(); second.deallocate() }
        out[0] = iovec(iov_base: first, iov_len: 4)
        out[1] = iovec(iov_base: second, iov_len: 6)
        let r = Request(fd: fd, size: 0, offset: 100)
        r.cb.pointee.aio_buf = UnsafeMutableRawPointer(out)
        r.cb.pointee.aio_nbytes = 2
        #expect(engine.submit(r.cb, .readv) == nil)
        #expect(engine.finish(r) == (0, 10))
        #expect(Array(UnsafeRawBufferPointer(start: first, count: 4)) == Array("abcd".utf8))
        #expect(Array(UnsafeRawBufferPointer(start: second, count: 6)) == Array("efghij".utf8))
        r.cb.pointee.aio_nbytes = 0
        #expect(engine.submit(r.cb, .readv) == .invalid)
        r.cb.pointee.aio_nbytes = 1025
        #expect(engine.submit(r.cb, .readv) == .invalid)
    }

    @Test(arguments: availableKinds)
    func submissionErrors(_ kind: EngineKind) {
        let engine = kind.make(["UAIO_MAX_REQUESTS": "2"])
        let fd = tempFile([1, 2, 3])
        defer { close(fd) }
        let bad = Request(fd: fd, size: 1, offset: -1)
        #expect(engine.submit(bad.cb, .read) == .invalid)
        bad.cb.pointee.aio_offset = 0
        bad.cb.pointee.aio_reqprio = 21
        #expect(engine.submit(bad.cb, .read) == .invalid)
        bad.cb.pointee.aio_reqprio = 0
        bad.cb.pointee.aio_fildes = 9999
        #expect(engine.submit(bad.cb, .read) == nil)  // EBADF comes through aio_error, as in glibc
        #expect(AIOStatus.error(bad.cb, engine: engine) == .success(EBADF))
        // The limit: two requests blocked on a pipe, a third is EAGAIN.
        var p: [CInt] = [0, 0]
        pipe(&p)
        defer { close(p[0]); close(p[1]) }
        let a = Request(fd: p[0], size: 1), b = Request(fd: p[0], size: 1), c = Request(fd: p[0], size: 1)
        #expect(engine.submit(a.cb, .read) == nil && engine.submit(b.cb, .read) == nil)
        #expect(engine.submit(c.cb, .read) == .again)
        #expect(write(p[1], "xy", 2) == 2)
        #expect(engine.finish(a) == (0, 1) && engine.finish(b) == (0, 1))
        #expect(engine.submit(c.cb, .read) == nil)  // room again
        #expect(write(p[1], "z", 1) == 1)
        #expect(engine.finish(c) == (0, 1))
    }

    @Test(arguments: availableKinds)
    func cancelQueuedRunningAndDone(_ kind: EngineKind) {
        let engine = kind.make()
        var p: [CInt] = [0, 0]
        pipe(&p)
        defer { close(p[0]); close(p[1]) }
        let running = Request(fd: p[0], size: 4), held = Request(fd: p[0], size: 4)
        #expect(engine.submit(running.cb, .read) == nil && engine.submit(held.cb, .read) == nil)
        usleep(30_000)
        #expect(engine.cancel(fd: p[0], held.cb) == CInt(AIO_CANCELED))
        #expect(engine.finish(held) == (ECANCELED, -1))
        // Blocked in the kernel's poll (ring) or in a worker's read (pool: the cancel signal).
        #expect(engine.cancel(fd: p[0], nil) == CInt(AIO_CANCELED))
        #expect(engine.finish(running) == (ECANCELED, -1))
        #expect(engine.canceledCount == 2)
        // Nothing was consumed by the cancelled read: the data is there for the next one.
        #expect(write(p[1], "abcd", 4) == 4)
        let next = Request(fd: p[0], size: 4)
        #expect(engine.submit(next.cb, .read) == nil)
        #expect(engine.finish(next) == (0, 4) && next.bytes == Array("abcd".utf8))
        #expect(engine.cancel(fd: p[0], running.cb) == CInt(AIO_ALLDONE))
    }

    /// Completions reach their aiocb with nobody waiting (the reaper alone), and while a thread
    /// waits for something else: a completion it must not process itself (it readies the next
    /// request of a pipe's lane) is handed back to the reaper, which finishes it and submits
    /// the next one.
    @Test(arguments: availableKinds)
    func completionsArriveWhileNobodyOrSomebodyElseWaits(_ kind: EngineKind) {
        let engine = kind.make(["UAIO_WORKER_IDLE_MS": "60000"])  // no idle wake-up to hide a lost one
        var p: [CInt] = [0, 0], q: [CInt] = [0, 0]
        pipe(&p)
        pipe(&q)
        defer { [p[0], p[1], q[0], q[1]].forEach { close($0) } }
        func settles(_ r: Request) -> Bool {  // polls aio_error only, as ported code may
            for _ in 0..<2000 where r.cb.isInProgress(pid: engine.pid) { usleep(1000) }
            return !r.cb.isInProgress(pid: engine.pid)
        }
        let alone = Request(fd: p[0], size: 1)
        #expect(engine.submit(alone.cb, .read) == nil)
        #expect(write(p[1], "a", 1) == 1)
        #expect(settles(alone) && alone.cb.errorCode == 0)

        let waitedFor = Request(fd: p[0], size: 1)
        let first = Request(fd: q[0], size: 1), second = Request(fd: q[0], size: 1)
        #expect(engine.submit(waitedFor.cb, .read) == nil)
        let waiter = spawn { _ = engine.finish(waitedFor) }
        usleep(20_000)  // the waiter is asleep (in the kernel, on the ring)
        #expect(engine.submit(first.cb, .read) == nil && engine.submit(second.cb, .read) == nil)
        #expect(write(q[1], "bc", 2) == 2)
        #expect(settles(first) && settles(second))
        #expect(first.cb.errorCode == 0 && second.cb.errorCode == 0)
        #expect(first.bytes == [UInt8(ascii: "b")] && second.bytes == [UInt8(ascii: "c")])
        #expect(waitedFor.cb.isInProgress(pid: engine.pid))
        #expect(write(p[1], "d", 1) == 1)
        pthread_join(waiter, nil)
        #expect(waitedFor.cb.errorCode == 0 && waitedFor.bytes == [UInt8(ascii: "d")])
    }

    /// Threads submit reads and writes on shared files and pipes at once, half of them waiting
    /// and half polling aio_error (on the ring, both reap the CQ, next to the reaper); every
    /// request must complete exactly once with the right result, and the ring must count each
    /// completion.
    @Test(arguments: availableKinds)
    func concurrentSubmittersLoseNothing(_ kind: EngineKind) {
        let engine = kind.make()
        let fd = tempFile([UInt8](repeating: 7, count: 1 << 16))
        defer { close(fd) }
        let threads = 4, perThread = 3000
        let failures = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        failures.initialize(to: 0)
        let before = engine.ring.sequence
        let workers = (0..<threads).map { t in
            spawn {
                var p: [CInt] = [0, 0]
                pipe(&p)
                defer { close(p[0]); close(p[1]) }
                for i in 0..<perThread {
                    let stream = i % 10 == 0
                    let r = stream ? Request(fd: p[0], size: 1) : Request(fd: fd, size: 512, offset: (i * 512) % 60000)
                    let ok = engine.submit(r.cb, i % 3 == 1 && !stream ? .write : .read) == nil
                    if stream { _ = write(p[1], "s", 1) }
                    let (e, v) = t % 2 == 0 ? engine.finish(r) : engine.poll(r)
                    if !ok || e != 0 || v != (stream ? 1 : 512) || AIOStatus.takeReturn(r.cb) != .failure(.invalid) {
                        _ = cuaio_add_u32_seqcst(failures, 1)
                    }
                }
            }
        }
        workers.forEach { pthread_join($0, nil) }
        #expect(cuaio_load_u32_acquire(failures) == 0)
        #expect(engine.ring.sequence &- before == UInt32(threads * perThread))
        #expect(engine.completedCount == UInt64(threads * perThread) && engine.inFlight == 0)
    }
}

@Suite struct URingSubmissionTests {
    /// lio_listio hands its whole list to the kernel with one io_uring_enter (16 reads on 16
    /// pipes: all ready at once; on one pipe, lane order would release them one by one).
    @Test(.enabled(if: EngineKind.uring.unavailable == nil, "io_uring cannot be set up here"))
    func aListIsOneSubmission() {
        let engine = EngineKind.uring.make()
        let (pipes, requests, list) = pipeReadList(16)
        defer { pipes.forEach { close($0[0]); close($0[1]) }; list.deallocate() }
        let before = engine.uring!.submitCalls
        #expect(engine.listIO(list, count: requests.count, wait: true, listNotification: .none) == nil)
        #expect(engine.uring!.submitCalls - before == 1)
        #expect(requests.map { $0.bytes[0] } == (0..<16).map { UInt8($0) })
    }

    /// A short submission (the kernel takes only some SQEs when it is short of memory; here
    /// io_uring_enter is asked to take one at a time) leaves nothing in the SQ for the next
    /// thread that submits, which would carry it as itself: the submitter enters again; and
    /// what the kernel never takes (here: none at all) goes to the pool. 8 reads of 8 pipes.
    @Test(.enabled(if: EngineKind.uring.unavailable == nil, "io_uring cannot be set up here"),
          arguments: [UInt32(1), 0])
    func aShortSubmissionLeavesNothingBehind(_ limit: UInt32) {
        let engine = EngineKind.uring.make()
        let (pipes, requests, list) = pipeReadList(8)
        defer { pipes.forEach { close($0[0]); close($0[1]) }; list.deallocate() }
        engine.uring!.sqLock.withLock { engine.uring!.submitLimit = limit }
        #expect(engine.listIO(list, count: requests.count, wait: false, listNotification: .none) == nil)
        #expect(engine.uring!.sqLock.withLock { engine.uring!.unsubmitted } == 0)
        engine.uring!.sqLock.withLock { engine.uring!.submitLimit = nil }
        for (i, r) in requests.enumerated() { #expect(engine.finish(r) == (0, 1) && r.bytes == [UInt8(i)]) }
        #expect(engine.backend(for: .read) == .uring)  // no lasting verdict
    }
}

/// `n` pipes holding one byte each (pipe i: byte i), and a lio_listio list of a 1-byte read of each.
func pipeReadList(_ n: Int) -> ([[CInt]], [Request], UnsafeMutablePointer<AIOCB?>) {
    let pipes = (0..<n).map { i -> [CInt] in
        var p: [CInt] = [0, 0]
        pipe(&p)
        var byte = UInt8(i)
        _ = write(p[1], &byte, 1)
        return p
    }
    let requests = pipes.map { Request(fd: $0[0], size: 1) }
    for r in requests { r.cb.pointee.aio_lio_opcode = CInt(LIO_READ) }
    let list = UnsafeMutablePointer<AIOCB?>.allocate(capacity: n)
    for (i, r) in requests.enumerated() { list[i] = r.cb }
    return (pipes, requests, list)
}

@Suite struct URingPollingTests {
    /// A program that polls aio_error and never waits completes ring requests itself (the
    /// reaper would too, after its wake-up on the other CPU): pipe reads, each completed by a
    /// write while this thread polls. Each result arrives once and intact, and the poller reaps
    /// some of them. When the other CPU is busy (tests run in parallel), the woken reaper may
    /// preempt this thread on its own CPU and win every time, so rounds go on until the poller
    /// has reaped one; if aio_error did not reap, that never comes and the deadline fails this.
    @Test(.enabled(if: EngineKind.uring.unavailable == nil, "io_uring cannot be set up here"))
    func aioErrorReapsTheRing() throws {
        let engine = EngineKind.uring.make()
        var p: [CInt] = [0, 0]
        #expect(pipe(&p) == 0)
        defer { close(p[0]); close(p[1]) }
        let deadline = cuaio_now_ns() + 20_000_000_000
        var submitted = 0
        while engine.uring!.polledCompletions == 0 && cuaio_now_ns() < deadline {
            for _ in 0..<100 {
                let r = Request(fd: p[0], size: 1)
                #expect(engine.submit(r.cb, .read) == nil)
                var byte = UInt8(truncatingIfNeeded: submitted)
                submitted += 1
                #expect(write(p[1], &byte, 1) == 1)
                while case .success(EINPROGRESS) = AIOStatus.error(r.cb, engine: engine), cuaio_now_ns() < deadline {}
                #expect(try AIOStatus.error(r.cb, engine: engine).get() == 0)
                #expect(try AIOStatus.takeReturn(r.cb, engine: engine).get() == 1)
                #expect(r.bytes == [byte])
            }
        }
        #expect(engine.uring!.polledCompletions > 0)
        #expect(engine.completedCount == UInt64(submitted) && engine.inFlight == 0)
    }
}

extension URingPollingTests {
    /// A thread asleep in io_uring_enter for a pool completion is woken by its doorbell, which
    /// the publisher rings only if the waiter's `asleep` bit is set, once per sleep. Two file
    /// writes (the pool's) per round; the waiter waits for the second, then the first, so it
    /// also sleeps through completions it does not wait for. A lost doorbell leaves it asleep
    /// until the 2 s deadline, and fails this (verified with the bit set after the check).
    @Test(.enabled(if: EngineKind.uring.unavailable == nil, "io_uring cannot be set up here"))
    func aWaiterInTheKernelWakesForPoolCompletions() {
        // Buffered file writes: the pool's (takesLocked). No spin: every wait sleeps.
        let engine = EngineKind.uringNoInline.make(["UAIO_SPIN_US": "0"])
        let fd = tempFile()
        defer { close(fd) }
        for round in 0..<1500 {
            let a = Request(fd: fd, size: 512, offset: 0, fill: 1), b = Request(fd: fd, size: 512, offset: 512, fill: 2)
            #expect(engine.submit(a.cb, .write) == nil && engine.submit(b.cb, .write) == nil)
            var lost = false
            for r in [b, a] {
                // A wait that reached its deadline may still find the request done on its way
                // out: the time tells.
                let start = cuaio_now_ns()
                let waited = engine.waitForCompletions(deadlineNs: start + 2_000_000_000) {
                    !r.cb.isInProgress(pid: engine.pid)
                }
                lost = lost || waited != nil || cuaio_now_ns() - start >= 1_900_000_000
            }
            #expect(!lost, "round \(round): a completion's doorbell was lost")
            if lost { break }
            #expect(engine.finish(a) == (0, 512) && engine.finish(b) == (0, 512))
        }
        #expect(engine.inFlight == 0)
    }
}

extension URingPollingTests {
    /// CQEs the CQ had no room for wait in the kernel's overflow list (IORING_SQ_CQ_OVERFLOW),
    /// which only an io_uring_enter flushes: a poller that looked at the CQ alone would leave
    /// them to the reaper's backstop. 200 cached reads on a ring of 32 entries (a CQ of 64, as
    /// many as one reaping pass takes), with the backstop raised to 10 s: aio_error of each
    /// must see it complete within 10000 calls (with the flag ignored, from the 65th on none did).
    @Test(.enabled(if: EngineKind.uring.unavailable == nil, "io_uring cannot be set up here"))
    func pollersSeeAnOverflowedCQ() throws {
        let engine = EngineKind.uringNoInline.make(["UAIO_RING_ENTRIES": "32"], backstopMs: 10_000)
        let fd = tempFile([UInt8](repeating: 5, count: 200 * 512))
        defer { close(fd) }
        let requests = (0..<200).map { Request(fd: fd, size: 512, offset: $0 * 512) }
        for r in requests { #expect(engine.submit(r.cb, .read) == nil) }
        var late = 0
        for r in requests {
            var calls = 0
            while case .success(EINPROGRESS) = AIOStatus.error(r.cb, engine: engine), calls < 10_000 { calls += 1 }
            if calls == 10_000 { late += 1 }
        }
        #expect(late == 0, "\(late) of 200 completions unseen after 10000 calls of aio_error")
        for r in requests { #expect(engine.finish(r) == (0, 512)) }
    }
}

@Suite struct SpinningWaitTests {
    /// A pipe read that a thread completes `afterUs` later, waited for as aio_suspend waits:
    /// its result and the CPU time the waiting thread used meanwhile.
    private func readALateByte(_ engine: Engine, afterUs: UInt32) -> (result: (CInt, Int), cpuNs: Int) {
        var p: [CInt] = [0, 0]
        pipe(&p)
        defer { close(p[0]); close(p[1]) }
        let r = Request(fd: p[0], size: 1)
        #expect(engine.submit(r.cb, .read) == nil)
        let writeEnd = p[1]
        let writer = spawn {
            usleep(afterUs)
            var byte: UInt8 = 7
            _ = write(writeEnd, &byte, 1)
        }
        var before = timespec(), after = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &before)
        let result = engine.finish(r)
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &after)
        pthread_join(writer, nil)
        return (result, (after.tv_sec - before.tv_sec) * 1_000_000_000 + (after.tv_nsec - before.tv_nsec))
    }

    /// The same in the pool (its worker blocks on the read). Whether the waiter slept shows in
    /// the completion ring: a publisher that wakes a sleeper stamps the time (noteWake).
    private func waitForALateByte(spinUs: Int) -> (slept: Bool, result: (CInt, Int)) {
        let engine = EngineKind.pool.make(["UAIO_SPIN_US": "\(spinUs)"])
        let result = readALateByte(engine, afterUs: 2000).result
        return (engine.ring.lastWakeNs != 0, result)
    }

    /// With a spin longer than the wait, the waiter never sleeps, and nobody has to wake it;
    /// without one, it sleeps and the worker wakes it. The result is the same. (A busy machine
    /// may stretch the 2 ms past the 10 ms spin, or keep the waiter off its CPU until the byte
    /// is there, so that it never sleeps: such a round proves nothing and is run again.)
    @Test(.enabled(if: sysconf(Int32(_SC_NPROCESSORS_ONLN)) > 1, "a single CPU never spins"))
    func aShortWaitSpinsInsteadOfSleeping() {
        var spun = (slept: true, result: (CInt(0), 0))
        for _ in 0..<5 {
            let start = cuaio_now_ns()
            spun = waitForALateByte(spinUs: 10_000)
            if cuaio_now_ns() - start < 8_000_000 { break }
        }
        #expect(!spun.slept && spun.result == (0, 1))
        var slept = (slept: false, result: (CInt(0), 0))
        for _ in 0..<5 where !slept.slept {
            slept = waitForALateByte(spinUs: 0)
            #expect(slept.result == (0, 1))
        }
        #expect(slept.slept)
    }

    /// A wait for ring work alone sleeps at once: the kernel completes it without a worker
    /// paying for the wake-up (Engine+Wait). The 3 ms wait shows in the thread's CPU time if
    /// it spins.
    @Test(.enabled(if: EngineKind.uring.unavailable == nil, "io_uring cannot be set up here"))
    func aWaitForTheRingAloneDoesNotSpin() {
        let engine = EngineKind.uring.make(["UAIO_SPIN_US": "10000"])
        let (result, cpuNs) = readALateByte(engine, afterUs: 3000)
        #expect(result == (0, 1))
        #expect(cpuNs < 1_500_000, "the wait used \(cpuNs) ns of CPU: it spun")
    }

    /// The spin ends at the wait's deadline (aio_suspend's timeout), not at its own limit. (A
    /// busy machine may keep the waiter off its CPU past 8 ms: such a round proves nothing and is
    /// run again; a spin to its 10 ms limit never takes less.)
    @Test func aSpinKeepsTheDeadline() {
        let engine = EngineKind.pool.make(["UAIO_SPIN_US": "10000"])
        var p: [CInt] = [0, 0]
        pipe(&p)
        defer { close(p[0]); close(p[1]) }
        var elapsed = UInt64.max
        for _ in 0..<5 where elapsed >= 8_000_000 {
            let r = Request(fd: p[0], size: 1)
            #expect(engine.submit(r.cb, .read) == nil)
            let start = cuaio_now_ns()
            #expect(engine.waitForCompletions(deadlineNs: start + 1_000_000) { !r.cb.isInProgress(pid: engine.pid) } == .timedOut)
            elapsed = cuaio_now_ns() - start
            #expect(engine.cancel(fd: p[0], r.cb) == CInt(AIO_CANCELED))
            #expect(engine.finish(r) == (ECANCELED, -1))
        }
        #expect(elapsed < 8_000_000)
    }
}

@Suite struct URingFallbackTests {
    /// The kernel refuses writes on this ring (IORING_REGISTER_RESTRICTIONS: EACCES, as a sandbox
    /// would): the write is re-issued on the pool, succeeds, the caller never sees EACCES, and
    /// writes go to the pool from then on while reads stay on the ring.
    @Test(.enabled(if: EngineKind.uring.unavailable == nil, "io_uring cannot be set up here"))
    func aRefusedOperationMovesToThePool() {
        let env = ["UAIO_BACKEND": "uring", "UAIO_TRY_INLINE": "0"]
        let engine = Engine(configuration: Configuration.parse(lookup: { env[$0] }, aioInit: (0, 0, 0)),
                            restrictRingTo: [.read, .fsync, .fdatasync])!
        #expect(engine.backend(for: .write) == .uring)  // the probe says yes
        var p: [CInt] = [0, 0]  // stream writes go to the ring (buffered file writes do not)
        pipe(&p)
        defer { close(p[0]); close(p[1]) }
        let w = Request(fd: p[1], size: 4096, fill: 0x5A)
        #expect(engine.submit(w.cb, .write) == nil)
        #expect(engine.finish(w) == (0, 4096))
        #expect(engine.backend(for: .write) == .pool)  // the verdict is kept
        #expect(engine.backend(for: .read) == .uring)
        let r = Request(fd: p[0], size: 4096)
        #expect(engine.submit(r.cb, .read) == nil)
        #expect(engine.finish(r) == (0, 4096))
        #expect(r.bytes.allSatisfy { $0 == 0x5A })
        #expect(engine.canceledCount == 0 && engine.completedCount == 2)
    }
}

@Suite struct PoolBatchTests {
    /// A list of 64 page-cache writes lands in the pool's queue before its first worker starts,
    /// so the worker runs them in batches (WorkerPool, "batches"). Each still gets its own
    /// result: the bytes it wrote, or EFAULT for the two whose buffer is not mapped (one sits
    /// in the first batch), and every byte lands where its own request put it.
    @Test(arguments: availableKinds)
    func batchedWritesKeepTheirOwnResults(_ kind: EngineKind) {
        let engine = kind.make()
        let fd = tempFile()
        defer { close(fd) }
        let count = 64, size = 512
        let unmapped: Set = [1, 40]
        let requests = (0..<count).map { i in Request(fd: fd, size: size, offset: i * size, fill: UInt8(i)) }
        for (i, r) in requests.enumerated() {
            r.cb.pointee.aio_lio_opcode = CInt(LIO_WRITE)
            if unmapped.contains(i) { r.cb.pointee.aio_buf = UnsafeMutableRawPointer(bitPattern: 4096) }
        }
        let list = UnsafeMutablePointer<AIOCB?>.allocate(capacity: count)
        defer { list.deallocate() }
        for (i, r) in requests.enumerated() { list[i] = r.cb }
        // Two entries failed while running, so LIO_WAIT says EIO (POSIX, glibc); each entry
        // keeps its own result.
        #expect(engine.listIO(list, count: count, wait: true, listNotification: .none) == .io)
        for (i, r) in requests.enumerated() {
            let expected = unmapped.contains(i) ? (EFAULT, -1) : (0, size)
            #expect(engine.finish(r) == expected, "request \(i)")
        }
        var back = [UInt8](repeating: 0xFF, count: count * size)
        #expect(pread(fd, &back, back.count, 0) == back.count)
        for i in 0..<count {
            let want: UInt8 = unmapped.contains(i) ? 0 : UInt8(i)
            #expect(back[i * size..<(i + 1) * size].allSatisfy { $0 == want }, "bytes of request \(i)")
        }
        #expect(engine.lock.withLock { engine.pool.batchedCount } > 0)
        #expect(engine.completedCount == UInt64(count) && engine.inFlight == 0)
    }
}
