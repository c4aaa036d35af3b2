// The configuration, read once per engine from the environment (then aio_init(3), then the
// defaults). A bad value never stops the host: it is reported in one line on stderr, the
// first time only, and the default is used. `uaio config` prints the same value.
import CUAIO
import Glibc

public struct Configuration: Sendable, Equatable {
    /// Which backend serves requests.
    public enum Backend: String, Sendable, CaseIterable {
        case auto, pool, uring
    }

    /// Where a value came from.
    public enum Source: String, Sendable {
        case environment, aioInit = "aio_init", defaultValue = "default"
    }

    public struct Setting<Value: Sendable & Equatable>: Sendable, Equatable {
        public var value: Value
        public var source: Source
    }

    public var backend: Setting<Backend>
    public var maxBoundedWorkers: Setting<Int>
    public var maxUnboundedWorkers: Setting<Int>
    public var workerIdleMs: Setting<Int>
    public var maxRequests: Setting<Int>
    /// Try page-cache reads on the submitting thread (preadv2 RWF_NOWAIT) before queueing.
    public var tryInline: Setting<Bool>
    /// Submission queue entries of the io_uring.
    public var ringEntries: Setting<Int>
    /// Operations never sent to the ring (UAIO_URING_DISABLE_OPS).
    public var disabledOnRing: Setting<Set<Opcode>>
    /// UAIO_DEBUG: one diagnostic line on stderr when io_uring cannot be used.
    public var debug: Setting<Bool>
    /// UAIO_CANCEL_SIGNAL: the real-time signal that interrupts a pool worker blocked on a
    /// cancelled request; 0 for none (cancel through poll and an eventfd instead).
    public var cancelSignal: Setting<CInt>
    /// UAIO_STATS: publish counters and in-flight requests for `uaio` (/dev/shm/uaio.PID).
    public var stats: Setting<Bool>
    /// UAIO_SPIN_US: how long aio_suspend may spin before it sleeps, when waits have been that
    /// short lately (Engine+Wait); 0 never spins.
    public var spinUs: Setting<Int>
    /// UAIO_COOP_TASKRUN: set the ring up with IORING_SETUP_COOP_TASKRUN, with kicks for the
    /// waiters of another thread's requests (URingBackend's header). On by default; 0 for the
    /// kernel's default, an interrupt of the submitting thread for every completion.
    public var coopTaskrun: Setting<Bool>
    /// One line per variable that could not be used.
    public var problems: [String] = []

    public static let variables = [
        "UAIO_BACKEND", "UAIO_MAX_BOUNDED_WORKERS", "UAIO_MAX_UNBOUNDED_WORKERS", "UAIO_WORKER_IDLE_MS",
        "UAIO_MAX_REQUESTS", "UAIO_TRY_INLINE", "UAIO_RING_ENTRIES", "UAIO_URING_DISABLE_OPS", "UAIO_DEBUG",
        "UAIO_CANCEL_SIGNAL", "UAIO_STATS", "UAIO_SPIN_US", "UAIO_COOP_TASKRUN",
    ]

    /// io-wq's bounded default: "Do QD, or 4 * CPUS".
    public static var defaultMaxBoundedWorkers: Int { 4 * max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
    public static let defaultMaxUnboundedWorkers = 256
    public static let defaultWorkerIdleMs = 1000
    public static let defaultMaxRequests = 65536
    public static let defaultRingEntries = 256
    public static let defaultSpinUs = 50
    /// SIGRTMAX-2: high in the range, where applications (which count up from SIGRTMIN)
    /// rarely go, and clear of glibc's reserved 32 and 33.
    public static var defaultCancelSignal: CInt { cuaio_sigrtmax() - 2 }

    /// "SIGRTMIN+3" or "SIGRTMAX-2" for a real-time signal number.
    public static func signalName(_ sig: CInt) -> String {
        let low = cuaio_sigrtmin(), high = cuaio_sigrtmax()
        if sig - low <= high - sig { return sig == low ? "SIGRTMIN" : "SIGRTMIN+\(sig - low)" }
        return sig == high ? "SIGRTMAX" : "SIGRTMAX-\(high - sig)"
    }
    /// Upper bounds that keep a typo from reserving absurd amounts of memory.
    static let workerCeiling = 4096
    static let requestCeiling = 1 << 22

    /// Parses `lookup` (the environment by default) and the values aio_init stored.
    public static func load(lookup: (String) -> String? = Configuration.environment) -> Configuration {
        var threads: CInt = 0, num: CInt = 0, idle: CInt = 0
        cuaio_aioinit_load(&threads, &num, &idle)
        return parse(lookup: lookup, aioInit: (Int(threads), Int(num), Int(idle)))
    }

    public static func environment(_ name: String) -> String? {
        guard let p = getenv(name) else { return nil }
        return String(cString: p)
    }

    static func parse(lookup: (String) -> String?, aioInit: (threads: Int, num: Int, idleSeconds: Int)) -> Configuration {
        var problems: [String] = []

        func number(_ name: String, default def: Int, aioInit fromInit: Int, range: ClosedRange<Int>) -> Setting<Int> {
            let fallback = fromInit > 0 ? Setting(value: min(fromInit, range.upperBound), source: .aioInit)
                                        : Setting(value: def, source: .defaultValue)
            guard let raw = lookup(name) else { return fallback }
            let text = raw.trimmingSpaces()
            if let n = Int(text), range.contains(n) { return Setting(value: n, source: .environment) }
            problems.append(
                "uaio: \(name)='\(raw)' is not a whole number from \(range.lowerBound) to \(range.upperBound); "
                    + "using \(fallback.value) (\(fallback.source.rawValue))")
            return fallback
        }

        var backend = Setting(value: Backend.auto, source: .defaultValue)
        if let raw = lookup("UAIO_BACKEND") {
            if let b = Backend(rawValue: raw.trimmingSpaces().lowercased()) {
                backend = Setting(value: b, source: .environment)
            } else {
                problems.append("uaio: UAIO_BACKEND='\(raw)' is not one of auto, pool, uring; using auto (default)")
            }
        }
        func flag(_ name: String, default def: Bool) -> Setting<Bool> {
            guard let raw = lookup(name) else { return Setting(value: def, source: .defaultValue) }
            switch raw.trimmingSpaces().lowercased() {
            case "1", "true", "yes", "on": return Setting(value: true, source: .environment)
            case "0", "false", "no", "off", "": return Setting(value: false, source: .environment)
            default:
                problems.append("uaio: \(name)='\(raw)' is not 1 or 0; using \(def ? 1 : 0) (default)")
                return Setting(value: def, source: .defaultValue)
            }
        }
        var disabled = Setting(value: Set<Opcode>(), source: .defaultValue)
        if let raw = lookup("UAIO_URING_DISABLE_OPS") {
            var ops = Set<Opcode>()
            for name in raw.split(separator: ",").map({ String($0).trimmingSpaces().lowercased() }) where !name.isEmpty {
                if let op = Opcode.allCases.first(where: { $0.name == name }) {
                    ops.insert(op)
                } else {
                    problems.append(
                        "uaio: UAIO_URING_DISABLE_OPS names '\(name)', which is not one of "
                            + "\(Opcode.allCases.map(\.name).joined(separator: ", ")); ignoring it")
                }
            }
            disabled = Setting(value: ops, source: .environment)
        }
        var cancelSignal = Setting(value: defaultCancelSignal, source: .defaultValue)
        if let raw = lookup("UAIO_CANCEL_SIGNAL") {
            let text = raw.trimmingSpaces().uppercased()
            let low = cuaio_sigrtmin(), high = cuaio_sigrtmax()
            var n: CInt? = nil
            if text == "NONE" || text == "0" {
                n = 0
            } else if let v = CInt(text) {
                n = v
            } else if text.hasPrefix("SIGRTMIN") || text.hasPrefix("SIGRTMAX") {
                let rest = text.dropFirst(8)
                let delta = rest.isEmpty ? 0 : CInt(rest.hasPrefix("+") ? rest.dropFirst() : rest)
                // Reporting overflow: SIGRTMIN+2147483647 is a bad value, not a trap in the host.
                if let delta {
                    let (sum, overflow) = (text.hasPrefix("SIGRTMIN") ? low : high).addingReportingOverflow(delta)
                    if !overflow { n = sum }
                }
            }
            if let n, n == 0 || (low...high).contains(n) {
                cancelSignal = Setting(value: n, source: .environment)
            } else {
                problems.append(
                    "uaio: UAIO_CANCEL_SIGNAL='\(raw)' is not a real-time signal (\(low) to \(high), SIGRTMIN+n, "
                        + "SIGRTMAX-n) or none; using \(signalName(defaultCancelSignal)) (default)")
            }
        }
        let idleFromInit = aioInit.idleSeconds > 0 ? aioInit.idleSeconds * 1000 : 0
        return Configuration(
            backend: backend,
            maxBoundedWorkers: number("UAIO_MAX_BOUNDED_WORKERS", default: defaultMaxBoundedWorkers,
                                      aioInit: aioInit.threads, range: 1...workerCeiling),
            maxUnboundedWorkers: number("UAIO_MAX_UNBOUNDED_WORKERS", default: defaultMaxUnboundedWorkers,
                                        aioInit: 0, range: 1...workerCeiling),
            workerIdleMs: number("UAIO_WORKER_IDLE_MS", default: defaultWorkerIdleMs, aioInit: idleFromInit,
                                 range: 1...3_600_000),
            // aio_num is "the number of expected simultaneous requests": room for at least that many.
            maxRequests: number("UAIO_MAX_REQUESTS", default: defaultMaxRequests,
                                aioInit: aioInit.num > defaultMaxRequests ? aioInit.num : 0, range: 1...requestCeiling),
            tryInline: flag("UAIO_TRY_INLINE", default: true),
            ringEntries: number("UAIO_RING_ENTRIES", default: defaultRingEntries, aioInit: 0, range: 1...32768),
            disabledOnRing: disabled,
            debug: flag("UAIO_DEBUG", default: false),
            cancelSignal: cancelSignal,
            stats: flag("UAIO_STATS", default: true),
            spinUs: number("UAIO_SPIN_US", default: defaultSpinUs, aioInit: 0, range: 0...10_000),
            coopTaskrun: flag("UAIO_COOP_TASKRUN", default: true),
            problems: problems)
    }

    /// Prints the problems to stderr, once per process image (a forked child stays quiet).
    func reportProblemsOnce() {
        guard !problems.isEmpty, cuaio_first_config_report() != 0 else { return }
        for line in problems { cuaio_write_stderr(line + "\n") }
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\n" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\n" { s.removeLast() }
        return String(s)
    }
}
