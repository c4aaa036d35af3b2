// uaio run: a program with libuaio.so preloaded and the settings given; uaio probe: what the
// kernel offers.
import ArgumentParser
import CUAIO
import Glibc
import UAIOCore

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a program with libuaio.so preloaded: uaio run [OPTIONS] -- PROGRAM [ARGS...]")
    @Option(help: "auto, uring or pool (UAIO_BACKEND).") var backend: String?
    @Option(help: "UAIO_MAX_BOUNDED_WORKERS.") var maxBoundedWorkers: Int?
    @Option(help: "UAIO_MAX_UNBOUNDED_WORKERS.") var maxUnboundedWorkers: Int?
    @Option(help: "UAIO_WORKER_IDLE_MS.") var workerIdleMs: Int?
    @Option(help: "UAIO_MAX_REQUESTS.") var maxRequests: Int?
    @Option(help: "UAIO_CANCEL_SIGNAL (a number, SIGRTMIN+n, SIGRTMAX-n or none).") var cancelSignal: String?
    @Option(help: "UAIO_STATS: 1 to publish for uaio ps/stat/requests, 0 not to.") var stats: Int?
    @Option(help: "UAIO_SPIN_US: how long aio_suspend may spin before sleeping (0: never).") var spinUs: Int?
    @Option(help: "Path of libuaio.so (default: beside this binary, or ../lib).") var library: String?
    @Argument(parsing: .captureForPassthrough, help: "The program and its arguments.") var command: [String] = []

    func run() throws {
        var argv = command
        if argv.first == "--" { argv.removeFirst() }
        guard let program = argv.first else { throw ValidationError("missing the program to run (uaio run -- PROGRAM)") }
        let lib = try locateLibrary(library)
        let settings: [(String, String?)] = [
            ("UAIO_BACKEND", backend), ("UAIO_MAX_BOUNDED_WORKERS", maxBoundedWorkers.map(String.init)),
            ("UAIO_MAX_UNBOUNDED_WORKERS", maxUnboundedWorkers.map(String.init)),
            ("UAIO_WORKER_IDLE_MS", workerIdleMs.map(String.init)), ("UAIO_MAX_REQUESTS", maxRequests.map(String.init)),
            ("UAIO_CANCEL_SIGNAL", cancelSignal), ("UAIO_STATS", stats.map(String.init)),
            ("UAIO_SPIN_US", spinUs.map(String.init)),
        ]
        for (name, value) in settings { if let value { setenv(name, value, 1) } }
        let preload = Configuration.environment("LD_PRELOAD").map { lib + " " + $0 } ?? lib
        setenv("LD_PRELOAD", preload, 1)
        let cargs = argv.map { strdup($0) } + [nil]
        execvp(program, cargs)
        printError("uaio run: cannot run \(program): \(String(cString: strerror(errno)))")
        throw ExitCode(127)
    }
}

struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What the kernel offers: io_uring (or why not), its opcodes, the routing, io-wq limits, liburing.")
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        var u = utsname()
        uname(&u)
        let kernel = withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let sysctl = readText("/proc/sys/kernel/io_uring_disabled")
        let c = Configuration.load()
        let probe = Routing.probe()
        let why: String? = probe.setupError.map { e in
            if sysctl == "2" { return "the io_uring_disabled sysctl is 2 (\(e))" }
            if sysctl == "1" && getuid() != 0 { return "the io_uring_disabled sysctl is 1 and this user is not in io_uring_group (\(e))" }
            switch e.rawValue {
            case EPERM: return "EPERM: a seccomp filter (containers) or a security module refuses io_uring_setup"
            case ENOSYS: return "ENOSYS: this kernel has no io_uring"
            default: return "\(e) (errno \(e.rawValue))"
            }
        }
        let ops = Routing.kernelOpcodes()
        let liburing = liburingVersion()
        if json {
            let routes = Routing.table(c, setupError: probe.setupError, supported: probe.supported).map {
                JSON.object([("operation", .string($0.opcode.name)), ("backend", .string($0.backend.name)),
                             ("reason", .string($0.reason))])
            }
            print(JSON.object([
                ("kernel", .string(kernel)), ("io_uring", .bool(probe.setupError == nil)),
                ("why_not", why.map(JSON.string) ?? .null),
                ("io_uring_disabled_sysctl", sysctl.map(JSON.string) ?? .null),
                ("opcodes", .array(ops.map(JSON.string))), ("routes", .array(routes)),
                ("iowq_max_workers", .object([("bounded", .int(Int64(c.maxBoundedWorkers.value))),
                                              ("unbounded", .int(Int64(c.maxUnboundedWorkers.value)))])),
                ("liburing", liburing.map(JSON.string) ?? .null),
            ]).text)
            return
        }
        print("kernel: \(kernel)")
        print("liburing: \(liburing ?? "unknown")")
        print("io_uring_disabled sysctl: \(sysctl ?? "absent")")
        print("io_uring: " + (why.map { "cannot be used: \($0)" } ?? "available"))
        if !ops.isEmpty {
            print("the probe's opcodes (\(ops.count)): " + ops.joined(separator: " "))
        }
        print("io-wq limits (from the pool's): bounded \(c.maxBoundedWorkers.value), unbounded \(c.maxUnboundedWorkers.value)")
        print()
        print(routingText(c, probe: probe))
        if probe.setupError != nil { throw ExitCode(2) }  // scripts can ask "is there a ring?"
    }
}

/// liburing's version, from the name of the file the dynamic linker loaded (liburing.so.2.3).
func liburingVersion() -> String? {
    guard let maps = readAll("/proc/self/maps") else { return nil }
    for line in maps.split(separator: "\n") where line.contains("/liburing.so") {
        guard let path = line.split(separator: " ").last else { continue }
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX))
        guard realpath(String(path), &resolved) != nil else { continue }
        let file = String(decoding: resolved.prefix { $0 != 0 }.map(UInt8.init(bitPattern:)), as: UTF8.self)
        let parts = file.split(separator: "/").last?.split(separator: ".", omittingEmptySubsequences: false) ?? []
        // liburing.so.2.3 -> ["liburing", "so", "2", "3"]
        if parts.count > 2, parts[1] == "so" { return parts[2...].joined(separator: ".") }
    }
    return nil
}
