import CUAIO
import Glibc
import Testing

@testable import UAIOCore

/// A heap uaiocb (uaio_ops.h), zeroed, with no notification.
final class ExtendedRequest {
    let p: UnsafeMutablePointer<uaiocb>
    init(_ op: Opcode, fd: CInt) {
        p = .allocate(capacity: 1)
        p.initialize(to: uaiocb())
        p.pointee.uaio_op = Int32(op.rawValue) - Int32(Opcode.openat.rawValue) + 1
        p.pointee.aiocb.aio_fildes = fd
        p.pointee.aiocb.aio_sigevent.sigev_notify = CInt(SIGEV_NONE)
    }
    deinit { p.deallocate() }
    var cb: AIOCB { UnsafeMutableRawPointer(p).assumingMemoryBound(to: aiocb.self) }
}

extension Engine {
    /// Submits and waits: (aio_error, aio_return).
    func run(_ r: ExtendedRequest) -> (error: CInt, result: Int) {
        guard let op = Engine.extendedOpcode(r.cb) else { return (EINVAL, -1) }
        if let e = submit(r.cb, op) { return (e.rawValue, -1) }
        let waited = waitForCompletions(deadlineNs: cuaio_now_ns() + 10_000_000_000) { !r.cb.isInProgress(pid: pid) }
        precondition(waited == nil, "request did not complete")
        return (r.cb.errorCode, (try? AIOStatus.takeReturn(r.cb, engine: self).get()) ?? -99)
    }
}

/// A fresh directory under /tmp, removed with everything in it by `remove()`.
struct TempDir {
    let path: String
    let fd: CInt
    init() {
        var template = Array("/tmp/uaio-ops-swift-XXXXXX".utf8CString)
        precondition(mkdtemp(&template) != nil)
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        fd = open(path, O_RDONLY | O_DIRECTORY)
    }
    func remove() {
        close(fd)
        _ = system_extendedRemoveTree(path)
    }
}

private func system_extendedRemoveTree(_ path: String) -> Bool {
    guard let d = opendir(path) else { return false }
    while let e = readdir(d) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        if name == "." || name == ".." { continue }
        let full = path + "/" + name
        if unlink(full) != 0 { _ = system_extendedRemoveTree(full) }
    }
    closedir(d)
    return rmdir(path) == 0
}

@Suite struct OperationsTests {
    /// The uaio_ops.h operations with effects a test can see, and their error paths, on every
    /// engine kind; then where each went.
    @Test(arguments: availableKinds)
    func pathAndFileOperations(_ kind: EngineKind) {
        let engine = kind.make()
        let dir = TempDir()
        defer { dir.remove() }
        func path(_ s: String, _ body: (UnsafePointer<CChar>) -> Void) { s.withCString(body) }

        // openat creates, close closes; EEXIST, ENOENT, EFAULT (NULL path), EBADF.
        var fd: CInt = -1
        path("f") { name in
            let r = ExtendedRequest(.openat, fd: dir.fd)
            r.p.pointee.uaio_path = name
            r.p.pointee.uaio_flags = O_CREAT | O_EXCL | O_RDWR
            r.p.pointee.uaio_mode = 0o600
            let (e, v) = engine.run(r)
            #expect(e == 0 && v >= 0)
            fd = CInt(v)
            #expect(engine.run(r) == (EEXIST, -1))
        }
        #expect(pwrite(fd, "0123456789", 10, 0) == 10)
        path("missing") { name in
            let r = ExtendedRequest(.openat, fd: dir.fd)
            r.p.pointee.uaio_path = name
            #expect(engine.run(r) == (ENOENT, -1))
        }
        let nullPath = ExtendedRequest(.openat, fd: dir.fd)
        #expect(engine.run(nullPath) == (EFAULT, -1))
        let badFD = ExtendedRequest(.ftruncate, fd: 9999)
        #expect(engine.run(badFD) == (EBADF, -1))

        // statx sees the size (struct statx's stx_size is at byte 40; STATX_SIZE is 0x200);
        // ftruncate and fallocate change it.
        let sx = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 8)
        defer { sx.deallocate() }
        path("f") { name in
            let r = ExtendedRequest(.statx, fd: dir.fd)
            r.p.pointee.uaio_path = name
            r.p.pointee.uaio_mode = 0x200
            r.p.pointee.aiocb.aio_buf = UnsafeMutableRawPointer(sx)
            #expect(engine.run(r) == (0, 0))
        }
        #expect(sx.load(fromByteOffset: 40, as: UInt64.self) == 10)
        let t = ExtendedRequest(.ftruncate, fd: fd)
        t.p.pointee.uaio_len = 3
        #expect(engine.run(t) == (0, 0))
        let fa = ExtendedRequest(.fallocate, fd: fd)
        fa.p.pointee.uaio_len = 8192
        #expect(engine.run(fa) == (0, 0))
        var st = stat()
        #expect(fstat(fd, &st) == 0 && st.st_size == 8192)

        // mkdirat, renameat, unlinkat (and unlinking a directory without AT_REMOVEDIR).
        path("d") { d in
            let m = ExtendedRequest(.mkdirat, fd: dir.fd)
            m.p.pointee.uaio_path = d
            m.p.pointee.uaio_mode = 0o755
            #expect(engine.run(m) == (0, 0))
            let u = ExtendedRequest(.unlinkat, fd: dir.fd)
            u.p.pointee.uaio_path = d
            #expect(engine.run(u) == (EISDIR, -1))
            u.p.pointee.uaio_flags = AT_REMOVEDIR
            #expect(engine.run(u) == (0, 0))
        }
        path("f") { from in
            path("g") { to in
                let r = ExtendedRequest(.renameat, fd: dir.fd)
                r.p.pointee.uaio_path = from
                r.p.pointee.uaio_fd2 = dir.fd
                r.p.pointee.uaio_path2 = to
                #expect(engine.run(r) == (0, 0))
                #expect(engine.run(r) == (ENOENT, -1))
            }
        }
        // copy_file_range and getdents64 (the pool's alone: io_uring has no opcode).
        let c = ExtendedRequest(.copyFileRange, fd: fd)
        c.p.pointee.uaio_fd2 = fd
        c.p.pointee.aiocb.aio_offset = 0
        c.p.pointee.uaio_offset2 = 100
        c.p.pointee.aiocb.aio_nbytes = 3
        #expect(engine.run(c) == (0, 3))
        var dents = [UInt8](repeating: 0, count: 4096)
        dents.withUnsafeMutableBytes { b in
            let g = ExtendedRequest(.getdents64, fd: dir.fd)
            g.p.pointee.aiocb.aio_buf = UnsafeMutableRawPointer(b.baseAddress!)
            g.p.pointee.aiocb.aio_nbytes = b.count
            let (e, v) = engine.run(g)
            #expect(e == 0 && v > 0)
        }
        // Tests run in parallel, so the number may be open again by the time we look: closed means
        // it no longer names this file.
        var before = stat()
        #expect(fstat(fd, &before) == 0)
        let cl = ExtendedRequest(.close, fd: fd)
        #expect(engine.run(cl) == (0, 0))
        var after = stat()
        #expect(fstat(fd, &after) == -1 || after.st_ino != before.st_ino || after.st_dev != before.st_dev)

        // An unknown operation is EINVAL at submission.
        let unknown = ExtendedRequest(.openat, fd: dir.fd)
        unknown.p.pointee.uaio_op = 999
        #expect(Engine.extendedOpcode(unknown.cb) == nil)

        #expect(engine.backend(for: .openat) == (kind.onRing ? .uring : .pool))
        #expect(engine.backend(for: .getdents64) == .pool && engine.backend(for: .copyFileRange) == .pool)
        #expect(engine.inFlight == 0)
    }

    /// The other operations: links, modes, owners, times, attributes, hints, syncs, openat2; each
    /// once with an effect checked and once failing.
    @Test(arguments: availableKinds)
    func linksModesTimesAttributesAndHints(_ kind: EngineKind) {
        let engine = kind.make()
        let dir = TempDir()
        defer { dir.remove() }
        let fd = openat(dir.fd, "a", O_CREAT | O_RDWR, 0o600)
        defer { close(fd) }
        #expect(pwrite(fd, "abcdef", 6, 0) == 6)
        var st = stat()
        func with(_ a: String, _ b: String = "", _ body: (UnsafePointer<CChar>, UnsafePointer<CChar>) -> Void) {
            a.withCString { pa in b.withCString { pb in body(pa, pb) } }
        }
        with("l", "a") { link, target in  // symlinkat, readlinkat
            let s = ExtendedRequest(.symlinkat, fd: dir.fd)
            s.p.pointee.uaio_path = link
            s.p.pointee.uaio_path2 = target
            #expect(engine.run(s) == (0, 0))
            #expect(engine.run(s) == (EEXIST, -1))
            var buf = [CChar](repeating: 0, count: 16)
            buf.withUnsafeMutableBytes { b in
                let r = ExtendedRequest(.readlinkat, fd: dir.fd)
                r.p.pointee.uaio_path = link
                r.p.pointee.aiocb.aio_buf = b.baseAddress
                r.p.pointee.aiocb.aio_nbytes = b.count
                #expect(engine.run(r) == (0, 1))
                r.p.pointee.uaio_path = target  // not a link
                #expect(engine.run(r) == (EINVAL, -1))
            }
            #expect(buf[0] == CChar(UInt8(ascii: "a")))
        }
        with("a", "h") { from, to in  // linkat
            let l = ExtendedRequest(.linkat, fd: dir.fd)
            l.p.pointee.uaio_path = from
            l.p.pointee.uaio_fd2 = dir.fd
            l.p.pointee.uaio_path2 = to
            #expect(engine.run(l) == (0, 0))
            #expect(fstat(fd, &st) == 0 && st.st_nlink == 2)
            #expect(engine.run(l) == (EEXIST, -1))
        }
        let m = ExtendedRequest(.fchmod, fd: fd)  // fchmod, fchmodat
        m.p.pointee.uaio_mode = 0o640
        #expect(engine.run(m) == (0, 0))
        #expect(fstat(fd, &st) == 0 && st.st_mode & 0o777 == 0o640)
        with("missing") { p, _ in
            let ma = ExtendedRequest(.fchmodat, fd: dir.fd)
            ma.p.pointee.uaio_path = p
            ma.p.pointee.uaio_mode = 0o600
            #expect(engine.run(ma) == (ENOENT, -1))
        }
        let o = ExtendedRequest(.fchown, fd: fd)  // fchown, fchownat (to our own ids)
        o.p.pointee.uaio_uid = getuid()
        o.p.pointee.uaio_gid = getgid()
        #expect(engine.run(o) == (0, 0))
        with("a") { p, _ in
            let oa = ExtendedRequest(.fchownat, fd: -5)
            oa.p.pointee.uaio_path = p
            oa.p.pointee.uaio_uid = UInt32.max
            oa.p.pointee.uaio_gid = UInt32.max
            #expect(engine.run(oa) == (EBADF, -1))
        }
        var times = [timespec(tv_sec: 1_000_000_000, tv_nsec: 0), timespec(tv_sec: 1_234_567_890, tv_nsec: 0)]
        times.withUnsafeMutableBufferPointer { t in  // utimensat on the fd itself (NULL path)
            let u = ExtendedRequest(.utimensat, fd: fd)
            u.p.pointee.uaio_arg = UnsafeMutableRawPointer(t.baseAddress!)
            #expect(engine.run(u) == (0, 0))
        }
        #expect(fstat(fd, &st) == 0 && st.st_mtim.tv_sec == 1_234_567_890)
        with("user.uaio", "v") { name, value in  // fsetxattr, fgetxattr
            let set = ExtendedRequest(.fsetxattr, fd: fd)
            set.p.pointee.uaio_path = name
            set.p.pointee.aiocb.aio_buf = UnsafeMutableRawPointer(mutating: value)
            set.p.pointee.aiocb.aio_nbytes = 1
            let (e, _) = engine.run(set)
            guard e != EOPNOTSUPP else { return }  // no user xattrs on /tmp's file system
            #expect(e == 0)
            var buf = [UInt8](repeating: 0, count: 8)
            buf.withUnsafeMutableBytes { b in
                let get = ExtendedRequest(.fgetxattr, fd: fd)
                get.p.pointee.uaio_path = name
                get.p.pointee.aiocb.aio_buf = b.baseAddress
                get.p.pointee.aiocb.aio_nbytes = b.count
                #expect(engine.run(get) == (0, 1))
            }
            #expect(buf[0] == UInt8(ascii: "v"))
        }
        for op in [Opcode.fadvise, .readahead, .syncFileRange, .syncfs] {  // hints and syncs
            let h = ExtendedRequest(op, fd: fd)
            h.p.pointee.uaio_len = 6
            if op == .fadvise { h.p.pointee.uaio_flags = POSIX_FADV_WILLNEED }
            if op == .syncFileRange { h.p.pointee.uaio_flags = 2 }  // SYNC_FILE_RANGE_WRITE
            #expect(engine.run(h) == (0, 0), "\(op)")
            let bad = ExtendedRequest(op, fd: 9999)
            #expect(engine.run(bad) == (EBADF, -1), "\(op) on a bad fd")
        }
        with("a") { p, _ in  // openat2: struct open_how is three u64s (flags, mode, resolve)
            var how: (UInt64, UInt64, UInt64) = (UInt64(O_RDONLY), 0, 0)
            withUnsafeMutablePointer(to: &how) { h in
                let r = ExtendedRequest(.openat2, fd: dir.fd)
                r.p.pointee.uaio_path = p
                r.p.pointee.uaio_arg = UnsafeMutableRawPointer(h)
                r.p.pointee.aiocb.aio_nbytes = 24
                let (e, v) = engine.run(r)
                #expect(e == 0 && v >= 0)
                close(CInt(v))
                r.p.pointee.aiocb.aio_nbytes = 7  // a size no open_how has
                #expect(engine.run(r) == (EINVAL, -1))
            }
        }
    }

    /// UAIO_URING_DISABLE_OPS takes the new names: openat goes to the pool, statx stays.
    @Test(.enabled(if: EngineKind.uring.unavailable == nil, "io_uring cannot be set up here"))
    func disableOpsSendsAnOperationToThePool() {
        let engine = EngineKind.uring.make(["UAIO_URING_DISABLE_OPS": "openat,sync_file_range"])
        #expect(engine.backend(for: .openat) == .pool && engine.backend(for: .syncFileRange) == .pool)
        #expect(engine.backend(for: .statx) == .uring)
        let dir = TempDir()
        defer { dir.remove() }
        "x".withCString { name in
            let r = ExtendedRequest(.openat, fd: dir.fd)
            r.p.pointee.uaio_path = name
            r.p.pointee.uaio_flags = O_CREAT | O_WRONLY
            r.p.pointee.uaio_mode = 0o600
            let (e, v) = engine.run(r)
            #expect(e == 0 && v >= 0)
            close(CInt(v))
        }
    }
}

@Suite struct ReapTests {
    /// Four threads submit reads (cached: inline where the kind allows) and try to reap every
    /// third themselves with aio_return once it completed, while one thread takes whatever
    /// completes with aio_waitcomplete. Every request is reaped exactly once, by one of them
    /// (never by both: a request aio_return took never comes out), each with its result; then
    /// nothing is outstanding.
    @Test(arguments: availableKinds)
    func everyCompletionIsReapedOnceByOneOfThem(_ kind: EngineKind) {
        let engine = kind.make()
        engine.enableReaping()
        let fd = tempFile([UInt8](repeating: 9, count: 1 << 16))
        defer { close(fd) }
        let threads = 4, perThread = 600, total = threads * perThread
        let requests = (0..<threads).map { _ in
            (0..<perThread).map { i in Request(fd: fd, size: 256, offset: (i * 256) % 60000) }
        }
        let taken = UnsafeMutablePointer<UnsafeMutablePointer<aiocb>?>.allocate(capacity: total)
        let returned = UnsafeMutablePointer<UInt8>.allocate(capacity: total)  // 1: aio_return got it
        returned.initialize(repeating: 0, count: total)
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 3)  // taken, bad results, returned
        counts.initialize(repeating: 0, count: 3)
        let submittersDone = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        submittersDone.initialize(to: 0)
        defer { taken.deallocate(); returned.deallocate(); counts.deallocate(); submittersDone.deallocate() }
        let reaper = spawn {
            func record(_ cb: AIOCB, _ result: Result<Int, Errno>) {
                taken[counts[0]] = cb
                counts[0] += 1
                if case .success(256) = result {} else { counts[1] += 1 }
            }
            let deadline = cuaio_now_ns() + 20_000_000_000
            while cuaio_now_ns() < deadline {
                switch engine.waitComplete(timeoutNs: 50_000_000) {
                case .success(let (cb, result)):
                    record(cb, result)
                case .failure:  // nothing outstanding (yet, or any more), or a timeout
                    guard cuaio_load_u32_acquire(submittersDone) == UInt32(threads) && engine.inFlight == 0 else {
                        sched_yield()
                        continue
                    }
                    // All completed: what a request that completed since the failure left in
                    // the queue comes out now (and counts), then nothing is outstanding.
                    switch engine.waitComplete(timeoutNs: 0) {
                    case .success(let (cb, result)): record(cb, result)
                    case .failure: return
                    }
                }
            }
        }
        let submitters = (0..<threads).map { t in
            spawn {
                for (i, r) in requests[t].enumerated() {
                    precondition(engine.submit(r.cb, .read) == nil)
                    guard i % 3 == 0 else { continue }
                    while r.cb.isInProgress(pid: engine.pid) { sched_yield() }
                    if case .success(256) = AIOStatus.takeReturn(r.cb, engine: engine) {
                        returned[t * perThread + i] = 1
                    }
                }
                _ = cuaio_add_u32_seqcst(submittersDone, 1)
            }
        }
        submitters.forEach { pthread_join($0, nil) }
        pthread_join(reaper, nil)
        let out = Set((0..<counts[0]).map { UnsafeRawPointer(taken[$0]!) })
        #expect(out.count == counts[0], "a request came out twice")
        #expect(counts[1] == 0, "a wrong result came out")
        var both = 0, neither = 0, byReturn = 0
        for t in 0..<threads {
            for i in 0..<perThread {
                let inOut = out.contains(UnsafeRawPointer(requests[t][i].cb)), ret = returned[t * perThread + i] == 1
                if ret { byReturn += 1 }
                if inOut && ret { both += 1 }
                if !inOut && !ret { neither += 1 }
            }
        }
        #expect(both == 0 && neither == 0, "\(both) reaped twice, \(neither) never")
        #expect(counts[0] + byReturn == total)
        #expect(cuaio_reapq_dropped(engine.reapQueue) == 0 && cuaio_reapq_ready(engine.reapQueue) == 0)
        // aio_waitcomplete never found a request whose result aio_return had taken (whose aiocb
        // a program may have freed).
        #expect(cuaio_reapq_stale(engine.reapQueue, 0) == 0)
    }

    /// The queue itself: a request whose producer has not published it yet holds nothing
    /// back; aio_return takes its own entry first; an entry aio_waitn handed out is still
    /// aio_return's; one aio_waitcomplete took is not; an aiocb submitted again (its tag names
    /// another request) is not handed out for its old completion.
    @Test func theReapQueueAlone() {
        let q = cuaio_reapq_create(16)!
        let cbs = UnsafeMutablePointer<aiocb>.allocate(capacity: 4)
        cbs.initialize(repeating: aiocb(), count: 4)
        defer { cbs.deallocate() }
        var out = [UnsafeMutablePointer<aiocb>?](repeating: nil, count: 4)
        func reserve(_ cb: UnsafeMutablePointer<aiocb>) -> UInt64 {  // as Engine.storeResult tags it
            let t = cuaio_reapq_reserve(q, cb)
            cuaio_cb_tag_store(cb, 1, AIOCBTag.reapQueued)
            cuaio_cb_tag_store(cb, 2, UInt32(truncatingIfNeeded: t))
            return t
        }
        let t0 = reserve(cbs), t1 = reserve(cbs + 1)
        cuaio_reapq_commit(q, t1)  // t0's producer is still between reserve and commit
        #expect(cuaio_reapq_take(q, &out, 4, 0) == 1 && out[0] == cbs + 1)
        cuaio_reapq_commit(q, t0)
        #expect(cuaio_reapq_ready(q) == 1)
        #expect(cuaio_reapq_reap(q, UInt32(truncatingIfNeeded: t0)) == 1)  // aio_return first
        #expect(cuaio_reapq_take(q, &out, 4, 0) == 0 && cuaio_reapq_ready(q) == 0)
        let t2 = reserve(cbs + 2), t3 = reserve(cbs + 3)
        cuaio_reapq_commit(q, t2)
        cuaio_reapq_commit(q, t3)
        #expect(cuaio_reapq_take(q, &out, 1, 1) == 1 && out[0] == cbs + 2)  // aio_waitn
        #expect(cuaio_reapq_reap(q, UInt32(truncatingIfNeeded: t2)) == 1)  // its result: aio_return's
        #expect(cuaio_reapq_take(q, &out, 4, 0) == 1 && out[0] == cbs + 3)  // aio_waitcomplete
        #expect(cuaio_reapq_reap(q, UInt32(truncatingIfNeeded: t3)) == 0)  // not aio_return's
        #expect(cuaio_reapq_dropped(q) == 0 && cuaio_reapq_ready(q) == 0)
        let t4 = reserve(cbs)
        cuaio_reapq_commit(q, t4)
        cuaio_cb_tag_store(cbs, 1, 7)  // submitted again: slot 7
        #expect(cuaio_reapq_take(q, &out, 4, 0) == 0 && cuaio_reapq_stale(q, 0) == 1 && cuaio_reapq_ready(q) == 0)
    }

    /// Requests in flight when reaping starts (a program that found aio_waitcomplete with
    /// dlsym) come out too.
    @Test(arguments: availableKinds)
    func requestsInFlightWhenReapingStartsComeOut(_ kind: EngineKind) {
        let engine = kind.make()
        var p: [CInt] = [0, 0]
        pipe(&p)
        defer { close(p[0]); close(p[1]) }
        let r = Request(fd: p[0], size: 3)
        #expect(engine.submit(r.cb, .read) == nil)
        engine.enableReaping()
        #expect(write(p[1], "abc", 3) == 3)
        guard case .success(let (cb, result)) = engine.waitComplete(timeoutNs: 5_000_000_000) else {
            Issue.record("nothing came out")
            return
        }
        #expect(cb == r.cb)
        if case .success(3) = result {} else { Issue.record("result \(result)") }
    }
}
