// Where each operation goes, and why. Today every operation goes to the worker pool; the
// io_uring backend (next) fills in the probe and routes what the running kernel supports.
// `uaio config` and `uaio bench` print this table.
import CURing
import Glibc

public struct Route: Sendable, Equatable {
    public var opcode: Opcode
    public var backend: BackendKind
    public var reason: String
}

public enum Routing {
    /// Whether this process can set up an io_uring at all, and if not, the errno.
    public static func probeRing() -> Result<Void, Errno> {
        var ring = io_uring()
        let r = io_uring_queue_init(2, &ring, 0)
        if r < 0 { return .failure(Errno(-r)) }
        io_uring_queue_exit(&ring)
        return .success(())
    }

    public static func table(_ configuration: Configuration) -> [Route] {
        let reason =
            switch configuration.backend.value {
            case .pool: "UAIO_BACKEND=pool"
            case .auto, .uring: "the io_uring backend is not built yet"
            }
        return Opcode.allCases.map { Route(opcode: $0, backend: .pool, reason: reason) }
    }
}
