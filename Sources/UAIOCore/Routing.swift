// Where each operation goes, and why: to the ring when a ring can be set up, the running
// kernel's probe reports the opcode and nothing switched it off; to the worker pool otherwise.
// The engine routes by this table; `uaio config` and `uaio bench` print it.
import CURing
import Glibc

public struct Route: Sendable, Equatable {
    public var opcode: Opcode
    public var backend: BackendKind
    public var reason: String
}

public enum Routing {
    /// The io_uring opcode that serves an operation; nil where io_uring has none (the pool's).
    static func ringOpcode(_ op: Opcode) -> UInt32? {
        let o: io_uring_op
        switch op {
        case .read: o = IORING_OP_READ
        case .write: o = IORING_OP_WRITE
        case .fsync, .fdatasync: o = IORING_OP_FSYNC
        case .readv: o = IORING_OP_READV
        case .writev: o = IORING_OP_WRITEV
        case .openat: o = IORING_OP_OPENAT
        case .openat2: o = IORING_OP_OPENAT2
        case .close: o = IORING_OP_CLOSE
        case .statx: o = IORING_OP_STATX
        case .fallocate: o = IORING_OP_FALLOCATE
        case .ftruncate: return 55  // IORING_OP_FTRUNCATE (6.9), newer than liburing 2.3's header
        case .fadvise: o = IORING_OP_FADVISE
        case .syncFileRange: o = IORING_OP_SYNC_FILE_RANGE
        case .renameat: o = IORING_OP_RENAMEAT
        case .unlinkat: o = IORING_OP_UNLINKAT
        case .mkdirat: o = IORING_OP_MKDIRAT
        case .symlinkat: o = IORING_OP_SYMLINKAT
        case .linkat: o = IORING_OP_LINKAT
        case .fgetxattr: o = IORING_OP_FGETXATTR
        case .fsetxattr: o = IORING_OP_FSETXATTR
        case .readahead, .fchmod, .fchmodat, .fchown, .fchownat, .utimensat, .getdents64, .copyFileRange,
             .readlinkat, .syncfs:
            return nil
        }
        return UInt32(o.rawValue)
    }

    /// What this process can do with io_uring: nil when a ring can be set up, else the errno
    /// (EPERM from the io_uring_disabled sysctl or a seccomp filter, ENOSYS, ENOMEM...), and
    /// the operations the kernel's probe reports.
    public static func probe(entries: Int = 2) -> (setupError: Errno?, supported: Set<Opcode>) {
        var ring = io_uring()
        let r = io_uring_queue_init(UInt32(entries), &ring, 0)
        if r < 0 { return (Errno(-r), []) }
        defer { io_uring_queue_exit(&ring) }
        return (nil, supported(&ring))
    }

    static func supported(_ ring: UnsafeMutablePointer<io_uring>) -> Set<Opcode> {
        guard let probe = io_uring_get_probe_ring(ring) else { return [] }
        defer { io_uring_free_probe(probe) }
        return Set(Opcode.allCases.filter { op in
            ringOpcode(op).map { io_uring_opcode_supported(probe, CInt($0)) != 0 } ?? false
        })
    }

    /// The kernel's opcodes by number, as its uapi header names them (to 6.15's PIPE; newer ones by number).
    static let ringOpcodeNames = [
        "NOP", "READV", "WRITEV", "FSYNC", "READ_FIXED", "WRITE_FIXED", "POLL_ADD", "POLL_REMOVE", "SYNC_FILE_RANGE", "SENDMSG", "RECVMSG", "TIMEOUT", "TIMEOUT_REMOVE", "ACCEPT", "ASYNC_CANCEL", "LINK_TIMEOUT", "CONNECT", "FALLOCATE", "OPENAT", "CLOSE", "FILES_UPDATE", "STATX", "READ", "WRITE", "FADVISE", "MADVISE", "SEND", "RECV", "OPENAT2", "EPOLL_CTL", "SPLICE", "PROVIDE_BUFFERS", "REMOVE_BUFFERS", "TEE", "SHUTDOWN", "RENAMEAT", "UNLINKAT", "MKDIRAT", "SYMLINKAT", "LINKAT", "MSG_RING", "FSETXATTR", "SETXATTR", "FGETXATTR", "GETXATTR", "SOCKET", "URING_CMD", "SEND_ZC", "SENDMSG_ZC",
        "READ_MULTISHOT", "WAITID", "FUTEX_WAIT", "FUTEX_WAKE", "FUTEX_WAITV", "FIXED_FD_INSTALL", "FTRUNCATE", "BIND", "LISTEN", "RECV_ZC", "EPOLL_WAIT", "READV_FIXED", "WRITEV_FIXED", "PIPE",
    ]

    /// Every opcode the kernel's probe reports, by name ("op 52" past the names we know);
    /// empty without a ring.
    public static func kernelOpcodes() -> [String] {
        var ring = io_uring()
        guard io_uring_queue_init(2, &ring, 0) >= 0 else { return [] }
        defer { io_uring_queue_exit(&ring) }
        guard let probe = io_uring_get_probe_ring(&ring) else { return [] }
        defer { io_uring_free_probe(probe) }
        return (0...Int(probe.pointee.last_op)).filter { io_uring_opcode_supported(probe, CInt($0)) != 0 }.map {
            $0 < ringOpcodeNames.count ? ringOpcodeNames[$0] : "op \($0)"
        }
    }

    /// The routing table for `configuration`, given what the probe found.
    public static func table(_ configuration: Configuration, setupError: Errno?, supported: Set<Opcode>) -> [Route] {
        Opcode.allCases.map { op in
            func pool(_ why: String) -> Route { Route(opcode: op, backend: .pool, reason: why) }
            if configuration.backend.value == .pool { return pool("UAIO_BACKEND=pool") }
            if let e = setupError { return pool("no io_uring here: \(e) (errno \(e.rawValue))") }
            guard let ringName = ringOpcodeName(op) else { return pool("io_uring has no opcode for it") }
            if !supported.contains(op) { return pool("the kernel's probe lacks IORING_OP_\(ringName)") }
            if configuration.disabledOnRing.value.contains(op) { return pool("UAIO_URING_DISABLE_OPS") }
            let why = "the kernel's probe has IORING_OP_\(ringName)"
            return Route(opcode: op, backend: .uring,
                         reason: op.isWrite ? why + "; buffered writes to files: pool (faster here)" : why)
        }
    }

    /// The table as this process would route now (sets up and tears down a small ring).
    public static func table(_ configuration: Configuration) -> [Route] {
        let p: (setupError: Errno?, supported: Set<Opcode>) = configuration.backend.value == .pool ? (nil, []) : probe()
        return table(configuration, setupError: p.setupError, supported: p.supported)
    }

    static func ringOpcodeName(_ op: Opcode) -> String? {
        ringOpcode(op).map { Int($0) < ringOpcodeNames.count ? ringOpcodeNames[Int($0)] : "op \($0)" }
    }
}
