import CUAIO
import Glibc
import Testing

@testable import UAIOCore

/// Cancelling work a pool worker is blocked on (WorkerPool, "Cancellation"), with real pipes
/// and sockets. Each test uses a signal of its own, so that the process-wide dispositions they
/// change never meet.
@Suite(.serialized) struct CancellationTests {
    static func disposition(_ sig: CInt) -> sigaction {
        var old = sigaction()
        sigaction(sig, nil, &old)
        return old
    }

    static func isDefault(_ sig: CInt) -> Bool {
        let d = disposition(sig)
        return d.sa_flags & SA_SIGINFO == 0 && unsafeBitCast(d.__sigaction_handler.sa_handler, to: Int.self) == 0
    }

    func poolEngine(signal: String) -> Engine {
        EngineKind.pool.make(["UAIO_CANCEL_SIGNAL": signal])
    }

    @Test func theSignalIsInstalledWhenStreamWorkFirstRunsAndInterruptsIt() {
        let sig = cuaio_sigrtmax() - 6
        #expect(Self.isDefault(sig))
        let engine = poolEngine(signal: "SIGRTMAX-6")
        let fd = tempFile([1, 2, 3, 4])
        defer { close(fd) }
        let file = Request(fd: fd, size: 4)
        #expect(engine.submit(file.cb, .read) == nil && engine.finish(file) == (0, 4))
        #expect(engine.pool.cancelMechanism == .undecided && Self.isDefault(sig), "file I/O needs no signal")

        var s: [CInt] = [0, 0]
        #expect(socketpair(AF_UNIX, CInt(SOCK_STREAM.rawValue), 0, &s) == 0)
        defer { close(s[0]); close(s[1]) }
        let blocked = Request(fd: s[0], size: 8)
        #expect(engine.submit(blocked.cb, .read) == nil)
        usleep(30_000)
        #expect(engine.pool.cancelMechanism == .signal(sig))
        #expect(!Self.isDefault(sig) && Self.disposition(sig).sa_flags & CInt(SA_RESTART) == 0,
                "installed, without SA_RESTART")
        #expect(engine.cancel(fd: s[0], blocked.cb) == CInt(AIO_CANCELED))
        #expect(blocked.cb.errorCode == ECANCELED)  // already final when aio_cancel returns
        #expect(engine.finish(blocked) == (ECANCELED, -1))
        // Nothing consumed, and the worker serves the next request.
        #expect(write(s[1], "12345678", 8) == 8)
        let next = Request(fd: s[0], size: 8)
        #expect(engine.submit(next.cb, .read) == nil && engine.finish(next) == (0, 8))
        #expect(next.bytes == Array("12345678".utf8))
    }

    @Test func aWriteThatMovedDataEndsWithItsPartialCount() {
        let engine = poolEngine(signal: "SIGRTMAX-8")
        var p: [CInt] = [0, 0]
        #expect(pipe(&p) == 0)
        defer { close(p[0]); close(p[1]) }
        let setPipeSize: CInt = 1031, getPipeSize: CInt = 1032  // F_SETPIPE_SZ, F_GETPIPE_SZ (_GNU_SOURCE)
        #expect(fcntl(p[1], setPipeSize, 4096) >= 4096)
        let size = Int(fcntl(p[1], getPipeSize))
        let w = Request(fd: p[1], size: size + 8192, fill: 7)
        #expect(engine.submit(w.cb, .write) == nil)
        usleep(30_000)  // it filled the pipe and sleeps for room
        #expect(engine.cancel(fd: p[1], w.cb) == CInt(AIO_ALLDONE), "it ended by itself, partly done")
        #expect(engine.finish(w) == (0, size))
    }

    @Test func anApplicationHandlerIsNeverReplacedAndNeverRunsOnOurThreads() {
        let sig = cuaio_sigrtmax() - 7
        _ = applicationHandlerRuns  // initialised here, never first in the handler (swift_once)
        var mine = sigaction()
        mine.__sigaction_handler.sa_handler = { _ in _ = cuaio_add_u32_seqcst(applicationHandlerRuns, 1) }
        #expect(sigaction(sig, &mine, nil) == 0)
        defer {
            var dfl = sigaction()
            sigaction(sig, &dfl, nil)
        }
        let engine = poolEngine(signal: "SIGRTMAX-7")
        var p: [CInt] = [0, 0]
        #expect(pipe(&p) == 0)
        defer { close(p[0]); close(p[1]) }
        let blocked = Request(fd: p[0], size: 4)
        #expect(engine.submit(blocked.cb, .read) == nil)
        usleep(30_000)
        #expect(engine.pool.cancelMechanism == .poll(ownedSignal: sig))
        #expect(engine.cancel(fd: p[0], nil) == CInt(AIO_CANCELED))
        #expect(engine.finish(blocked) == (ECANCELED, -1))
        #expect(cuaio_load_u32_acquire(applicationHandlerRuns) == 0)
        let d = Self.disposition(sig)
        #expect(unsafeBitCast(d.__sigaction_handler.sa_handler, to: Int.self)
                == unsafeBitCast(mine.__sigaction_handler.sa_handler, to: Int.self))
        // Poll's readiness path still delivers data.
        let next = Request(fd: p[0], size: 4)
        #expect(engine.submit(next.cb, .read) == nil)
        #expect(write(p[1], "abcd", 4) == 4)
        #expect(engine.finish(next) == (0, 4))
    }

    @Test func withoutASignalCancelsGoThroughPoll() {
        let engine = poolEngine(signal: "none")
        var p: [CInt] = [0, 0]
        #expect(pipe(&p) == 0)
        defer { close(p[0]); close(p[1]) }
        let a = Request(fd: p[0], size: 4), b = Request(fd: p[0], size: 4)
        #expect(engine.submit(a.cb, .read) == nil && engine.submit(b.cb, .read) == nil)
        usleep(30_000)
        #expect(engine.pool.cancelMechanism == .poll(ownedSignal: 0))
        #expect(engine.cancel(fd: p[0], nil) == CInt(AIO_CANCELED))
        #expect(engine.finish(a) == (ECANCELED, -1) && engine.finish(b) == (ECANCELED, -1))
        // The pool's count of its work (what lets waiters spin) is back to none: `a` ran and
        // was handed to its canceller, `b` was held behind it and never queued.
        #expect(poolWorkDrains(engine))
    }

    /// A request still queued in the pool (its only stream worker is blocked on another pipe)
    /// is taken off the queue by aio_cancel; the pool's count of its work follows.
    @Test func aQueuedRequestLeavesThePoolsCount() {
        let engine = EngineKind.pool.make(["UAIO_MAX_UNBOUNDED_WORKERS": "1", "UAIO_CANCEL_SIGNAL": "SIGRTMAX-8"])
        var p: [CInt] = [0, 0], q: [CInt] = [0, 0]
        #expect(pipe(&p) == 0 && pipe(&q) == 0)
        defer { close(p[0]); close(p[1]); close(q[0]); close(q[1]) }
        let blocked = Request(fd: p[0], size: 1), queued = Request(fd: q[0], size: 1)
        #expect(engine.submit(blocked.cb, .read) == nil)
        usleep(20_000)
        #expect(engine.submit(queued.cb, .read) == nil)
        #expect(engine.pool.activeHint == 2)
        #expect(engine.cancel(fd: q[0], queued.cb) == CInt(AIO_CANCELED))
        #expect(engine.finish(queued) == (ECANCELED, -1))
        #expect(engine.pool.activeHint == 1)
        #expect(engine.cancel(fd: p[0], blocked.cb) == CInt(AIO_CANCELED))
        #expect(engine.finish(blocked) == (ECANCELED, -1))
        #expect(poolWorkDrains(engine))
    }

    /// Whether the pool's count of queued and running requests returns to 0 within 1 s (a
    /// worker that handed its request to a canceller counts it off a moment after).
    func poolWorkDrains(_ engine: Engine) -> Bool {
        let deadline = cuaio_now_ns() + 1_000_000_000
        while engine.pool.activeHint != 0 && cuaio_now_ns() < deadline { usleep(1000) }
        return engine.pool.activeHint == 0
    }

    /// A FIFO, on every backend: a blocked read and a blocked write (FIFO full) are cancelled,
    /// nothing is consumed, and the FIFO serves the next requests.
    @Test(arguments: availableKinds)
    func aFIFOsBlockedReadAndWriteAreCancelled(_ kind: EngineKind) {
        let engine = kind.make(["UAIO_CANCEL_SIGNAL": "SIGRTMAX-8"])
        var template = Array("/tmp/uaio-fifo-XXXXXX".utf8CString)
        #expect(mkdtemp(&template) != nil)
        let dir = String(cString: template)
        let path = dir + "/fifo"
        #expect(mkfifo(path, 0o600) == 0)
        defer { unlink(path); rmdir(dir) }
        let fd = open(path, O_RDWR)  // O_RDWR: opening does not wait for the other end
        #expect(fd >= 0)
        defer { close(fd) }
        let r = Request(fd: fd, size: 8)
        #expect(engine.submit(r.cb, .read) == nil)
        usleep(20_000)
        #expect(engine.cancel(fd: fd, r.cb) == CInt(AIO_CANCELED))
        #expect(engine.finish(r) == (ECANCELED, -1))
        // Fill it, then a write blocks for room.
        let flags = fcntl(fd, F_GETFL)
        #expect(fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0)
        var filled = 0
        let chunk = [UInt8](repeating: 1, count: 4096)
        while case let n = write(fd, chunk, chunk.count), n > 0 { filled += n }
        #expect(fcntl(fd, F_SETFL, flags) == 0)
        let w = Request(fd: fd, size: 100, fill: 2)
        #expect(engine.submit(w.cb, .write) == nil)
        usleep(20_000)
        #expect(engine.cancel(fd: fd, nil) == CInt(AIO_CANCELED))
        #expect(engine.finish(w) == (ECANCELED, -1))
        // Everything written is there, and nothing of the cancelled write.
        var drained = 0
        var buf = [UInt8](repeating: 0, count: 4096)
        #expect(fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0)
        while case let n = read(fd, &buf, buf.count), n > 0 {
            drained += n
            #expect(buf[0..<n].allSatisfy { $0 == 1 })
        }
        #expect(drained == filled)
        #expect(fcntl(fd, F_SETFL, flags) == 0)
        let next = Request(fd: fd, size: 3)
        #expect(engine.submit(next.cb, .read) == nil)
        #expect(write(fd, "xyz", 3) == 3)
        #expect(engine.finish(next) == (0, 3))
        #expect(poolWorkDrains(engine))
    }

    @Test func fileIOThatHasStartedIsNotCancelled() {
        // An fsync runs in a bounded worker and cannot be interrupted: AIO_NOTCANCELED while it
        // runs, or AIO_ALLDONE if it was quicker than us. Never ECANCELED once started.
        let engine = poolEngine(signal: "SIGRTMAX-8")
        let fd = tempFile([UInt8](repeating: 1, count: 1 << 20))
        defer { close(fd) }
        let s = Request(fd: fd, size: 0)
        #expect(engine.submit(s.cb, .fsync) == nil)
        usleep(1000)
        let answer = engine.cancel(fd: fd, s.cb)
        let (e, _) = engine.finish(s)
        #expect(answer == CInt(AIO_NOTCANCELED) ? e == 0 : true)
        #expect(answer != CInt(AIO_CANCELED) || e == ECANCELED)
    }
}

nonisolated(unsafe) let applicationHandlerRuns: UnsafeMutablePointer<UInt32> = {
    let p = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    p.initialize(to: 0)
    return p
}()
