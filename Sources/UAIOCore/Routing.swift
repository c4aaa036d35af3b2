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
    /// The io_uring opcode that serves an operation.
    static func ringOpcode(_ op: Opcode) -> UInt32 {
        switch op {
        case .read: UInt32(IORING_OP_READ.rawValue)
        case .write: UInt32(IORING_OP_WRITE.rawValue)
        case .fsync, .fdatasync: UInt32(IORING_OP_FSYNC.rawValue)
        case .readv: UInt32(IORING_OP_READV.rawValue)
        case .writev: UInt32(IORING_OP_WRITEV.rawValue)
        }
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
        return Set(Opcode.allCases.filter { io_uring_opcode_supported(probe, CInt(ringOpcode($0))) != 0 })
    }

    /// The kernel's opcodes by number, as liburing 2.3's header names them (newer ones by number).
    static let ringOpcodeNames = [
        "NOP", "READV", "WRITEV", "FSYNC", "READ_FIXED", "WRITE_FIXED", "POLL_ADD", "POLL_REMOVE", "SYNC_FILE_RANGE", "SENDMSG", "RECVMSG", "TIMEOUT", "TIMEOUT_REMOVE", "ACCEPT", "ASYNC_CANCEL", "LINK_TIMEOUT", "CONNECT", "FALLOCATE", "OPENAT", "CLOSE", "FILES_UPDATE", "STATX", "READ", "WRITE", "FADVISE", "MADVISE", "SEND", "RECV", "OPENAT2", "EPOLL_CTL", "SPLICE", "PROVIDE_BUFFERS", "REMOVE_BUFFERS", "TEE", "SHUTDOWN", "RENAMEAT", "UNLINKAT", "MKDIRAT", "SYMLINKAT", "LINKAT", "MSG_RING", "FSETXATTR", "SETXATTR", "FGETXATTR", "GETXATTR", "SOCKET", "URING_CMD", "SEND_ZC", "SENDMSG_ZC"
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
            if !supported.contains(op) { return pool("the kernel's probe lacks IORING_OP_\(ringOpcodeName(op))") }
            if configuration.disabledOnRing.value.contains(op) { return pool("UAIO_URING_DISABLE_OPS") }
            let why = "the kernel's probe has IORING_OP_\(ringOpcodeName(op))"
            return Route(opcode: op, backend: .uring,
                         reason: op.isWrite ? why + "; buffered writes to files: pool (faster here)" : why)
        }
    }

    /// The table as this process would route now (sets up and tears down a small ring).
    public static func table(_ configuration: Configuration) -> [Route] {
        let p: (setupError: Errno?, supported: Set<Opcode>) = configuration.backend.value == .pool ? (nil, []) : probe()
        return table(configuration, setupError: p.setupError, supported: p.supported)
    }

    static func ringOpcodeName(_ op: Opcode) -> String {
        switch op {
        case .read: "READ"
        case .write: "WRITE"
        case .fsync, .fdatasync: "FSYNC"
        case .readv: "READV"
        case .writev: "WRITEV"
        }
    }
}
