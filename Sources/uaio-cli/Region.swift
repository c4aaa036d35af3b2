// Reading another process's stats region (uaio_shm.h): /dev/shm/uaio.PID.
import CUAIO
import Glibc
import UAIOCore

/// Why a region cannot be read; each has its exit code.
enum RegionError: Error, CustomStringConvertible {
    case noProcess(pid_t)
    case notUsingUAIO(pid_t)
    case permission(pid_t)
    case unknownLayout(pid_t, version: UInt32)
    case unreadable(pid_t, Errno)

    var description: String {
        switch self {
        case .noProcess(let p): "no process \(p)"
        case .notUsingUAIO(let p):
            "process \(p) publishes no libuaio state (not using libuaio, not yet started any I/O, or UAIO_STATS=0)"
        case .permission(let p): "process \(p)'s libuaio state is not readable by this user (mode 0600: same user only)"
        case .unknownLayout(let p, let v):
            "process \(p) publishes layout version \(v); this uaio reads version \(UAIO_SHM_VERSION): use the uaio of that libuaio"
        case .unreadable(let p, let e): "cannot read process \(p)'s libuaio state: \(e)"
        }
    }

    /// 3: no such process or no state; 4: permission; 5: unknown layout; 1: other.
    var exitCode: Int32 {
        switch self {
        case .noProcess, .notUsingUAIO: 3
        case .permission: 4
        case .unknownLayout: 5
        case .unreadable: 1
        }
    }
}

/// A private copy of a process's region (uaio_shm_snapshot), taken when it is opened: the
/// region is another process's memory, which may change under the reader, shrink (a mapping
/// would SIGBUS) or be something else by that name (a FIFO would hang the open).
final class Region {
    let pid: pid_t
    let base: UnsafeRawPointer
    let size: Int
    /// The file's uid, and the open file (records being written are read again from it).
    let owner: uid_t
    private let fd: CInt
    var header: UnsafePointer<uaio_shm_header> { base.assumingMemoryBound(to: uaio_shm_header.self) }

    private init(pid: pid_t, base: UnsafeRawPointer, size: Int, owner: uid_t, fd: CInt) {
        (self.pid, self.base, self.size, self.owner, self.fd) = (pid, base, size, owner, fd)
    }

    deinit {
        free(UnsafeMutableRawPointer(mutating: base))
        close(fd)
    }

    static func path(_ pid: pid_t) -> String { "/dev/shm/uaio.\(pid)" }

    /// Whether process `pid` maps its region (after exec or pid reuse it does not): a line of
    /// its maps whose path is exactly the region's. nil if the maps cannot be read (a process
    /// of another user, or one that is not dumpable).
    static func mapsRegion(_ pid: pid_t) -> Bool? {
        guard let maps = readAll("/proc/\(pid)/maps") else { return nil }
        let wanted = path(pid)
        return maps.split(separator: "\n").contains { line in
            // address perms offset dev inode path: the path is what follows the fifth field.
            var rest = Substring(line)
            for _ in 0..<5 {
                rest = rest.drop { $0 != " " }.drop { $0 == " " }
            }
            return rest == wanted
        }
    }

    /// The uids of process `pid` (real, effective, saved, filesystem); empty if it is gone.
    static func uids(_ pid: pid_t) -> [uid_t] {
        guard let status = readAll("/proc/\(pid)/status"),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") })
        else { return [] }
        return line.dropFirst(4).split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { uid_t($0) }
    }

    /// Whether this region describes the live process `pid`: it names that pid, the file is
    /// owned by one of the process's uids (any user can write a region under any pid's name),
    /// and the process maps it, where its maps can be read.
    var describesLiveProcess: Bool {
        let ns = header.pointee.pid_ns, ours = uaio_shm_pid_ns()
        guard ns == 0 || ours == 0 || ns == ours else { return false }  // another namespace's pid
        guard header.pointee.pid == pid, Self.uids(pid).contains(owner) else { return false }
        return Self.mapsRegion(pid) ?? true
    }

    static func open(_ pid: pid_t) throws(RegionError) -> Region {
        guard kill(pid, 0) == 0 || errno == EPERM else { throw .noProcess(pid) }
        var size: UInt64 = 0, owner: UInt32 = 0, fd: CInt = -1
        guard let p = uaio_shm_snapshot(pid, &size, &owner, &fd) else {
            switch errno {
            case ENOENT, EPROTO: throw .notUsingUAIO(pid)
            case EACCES, EPERM: throw .permission(pid)
            case let e: throw .unreadable(pid, Errno(e))
            }
        }
        let r = Region(pid: pid, base: UnsafeRawPointer(p), size: Int(size), owner: owner, fd: fd)
        guard r.header.pointee.magic == UAIO_SHM_MAGIC else { throw .notUsingUAIO(pid) }
        guard r.header.pointee.version == UAIO_SHM_VERSION else {
            throw .unknownLayout(pid, version: r.header.pointee.version)
        }
        guard r.describesLiveProcess else { throw .notUsingUAIO(pid) }
        return r
    }

    /// The pids with a region in /dev/shm; regions of processes gone are removed (ours only:
    /// the directory is sticky). A region of another pid namespace (a container sharing
    /// /dev/shm) is neither listed nor removed: its pid means another process here.
    static func all() -> [pid_t] {
        guard let dir = opendir("/dev/shm") else { return [] }
        defer { closedir(dir) }
        var pids: [pid_t] = []
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasPrefix("uaio."), let pid = pid_t(name.dropFirst(5)), uaio_shm_foreign(pid) == 0 else { continue }
            if kill(pid, 0) == 0 || errno == EPERM, Self.mapsRegion(pid) != false {
                pids.append(pid)  // (Region.open checks the rest)
            } else if kill(pid, 0) != 0 && errno == ESRCH || isOld(path(pid)) {
                unlink(path(pid))  // (a young one may be a region whose process maps it right now)
            }
        }
        return pids.sorted()
    }

    private static func isOld(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0 else { return false }
        let (age, overflow) = time(nil).subtractingReportingOverflow(st.st_mtim.tv_sec)
        return overflow ? st.st_mtim.tv_sec < 0 : age > 2
    }

    var command: String {
        withUnsafeBytes(of: header.pointee.command) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// The in-flight requests, each read consistently (its sequence lock), with its slot.
    func requests() -> [(slot: Int, record: uaio_shm_request)] {
        let n = Int(header.pointee.request_capacity)
        guard Int(header.pointee.header_size) + n * MemoryLayout<uaio_shm_request>.stride <= size else { return [] }
        var out: [(Int, uaio_shm_request)] = []
        let stride = MemoryLayout<uaio_shm_request>.stride, state = MemoryLayout<uaio_shm_request>.offset(of: \.state)!
        // The copy may hold a record torn by a write: each in use is read again consistently.
        // (Bytes, not records, from the copy: `header_size` is the region's, maybe unaligned.)
        for i in 0..<n {
            let offset = Int(header.pointee.header_size) + i * stride
            guard base.load(fromByteOffset: offset + state, as: UInt8.self) != 0 else { continue }
            var r = uaio_shm_request()
            if uaio_shm_read_record(fd, UInt64(offset), &r) == 1 && r.state != 0 { out.append((i, r)) }
        }
        return out
    }

    func counters(op: Int, backend: Int) -> uaio_shm_counters {
        withUnsafeBytes(of: header.pointee.counters) {
            $0.load(fromByteOffset: (op * Int(UAIO_SHM_BACKENDS) + backend) * MemoryLayout<uaio_shm_counters>.stride,
                    as: uaio_shm_counters.self)
        }
    }

    /// Latency percentile `q` (0...1) of `backend` in ns (the floor of its bucket), nil if none.
    func latency(backend: Int, _ q: Double) -> UInt64? {
        withUnsafeBytes(of: header.pointee.latency) { raw in
            let counts = (0..<Int(UAIO_SHM_BUCKETS)).map {
                raw.load(fromByteOffset: (backend * Int(UAIO_SHM_BUCKETS) + $0) * 8, as: UInt64.self)
            }
            let total = saturatingSum(counts)
            guard total > 0 else { return nil }
            let wanted = (Double(total) * q).rounded(.up)  // (UInt64.max is 2^64 as a Double)
            let want = wanted < 0x1p64 ? UInt64(wanted) : UInt64.max
            var seen: UInt64 = 0
            for (b, c) in counts.enumerated() {
                seen = saturatingSum([seen, c])
                if seen >= max(want, 1) { return uaio_shm_bucket_floor(UInt32(b)) }
            }
            return nil
        }
    }

    func gauge(_ tuple: (UInt32, UInt32), _ i: Int) -> UInt32 { i == 0 ? tuple.0 : tuple.1 }
}

// The region is another process's memory, writable by any process of its user: nothing read
// from it may trap the command (sums saturate, times before "now" count as 0).
func saturatingSum(_ values: [UInt64]) -> UInt64 {
    values.reduce(UInt64(0)) { sum, v in
        let (s, overflow) = sum.addingReportingOverflow(v)
        return overflow ? .max : s
    }
}

/// Nanoseconds from `start` to `now` (CLOCK_MONOTONIC), 0 if `start` is later.
func elapsed(since start: UInt64, now: UInt64 = cuaio_now_ns()) -> UInt64 { now >= start ? now - start : 0 }
