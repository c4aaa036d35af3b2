// uaio config: the effective configuration, where each value came from, and the routing.
import ArgumentParser
import UAIOCore

struct Config: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the effective configuration (environment, then aio_init, then defaults).")

    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let c = Configuration.load()
        let settings: [(String, String, String)] = [
            ("UAIO_BACKEND", c.backend.value.rawValue, c.backend.source.rawValue),
            ("UAIO_MAX_BOUNDED_WORKERS", "\(c.maxBoundedWorkers.value)", c.maxBoundedWorkers.source.rawValue),
            ("UAIO_MAX_UNBOUNDED_WORKERS", "\(c.maxUnboundedWorkers.value)", c.maxUnboundedWorkers.source.rawValue),
            ("UAIO_WORKER_IDLE_MS", "\(c.workerIdleMs.value)", c.workerIdleMs.source.rawValue),
            ("UAIO_MAX_REQUESTS", "\(c.maxRequests.value)", c.maxRequests.source.rawValue),
            ("UAIO_CANCEL_SIGNAL", cancelSignalText(c.cancelSignal.value), c.cancelSignal.source.rawValue),
            ("UAIO_STATS", c.stats.value ? "1" : "0", c.stats.source.rawValue),
            ("UAIO_SPIN_US", "\(c.spinUs.value)", c.spinUs.source.rawValue),
            ("UAIO_COOP_TASKRUN", c.coopTaskrun.value ? "1" : "0", c.coopTaskrun.source.rawValue),
        ]
        let probe = Routing.probe()
        let routes = Routing.table(c, setupError: probe.setupError, supported: probe.supported)
        if json {
            let s = settings.map { "\(jsonString($0.0)): {\"value\": \(jsonString($0.1)), \"source\": \(jsonString($0.2))}" }
            let r = routes.map {
                "{\"operation\": \(jsonString($0.opcode.name)), \"backend\": \(jsonString($0.backend.name)), "
                    + "\"reason\": \(jsonString($0.reason))}"
            }
            let ringText = probe.setupError.map { jsonString("unavailable: \($0) (errno \($0.rawValue))") }
                ?? "\"available\""
            print("{\"settings\": {\(s.joined(separator: ", "))}, \"io_uring\": \(ringText), "
                + "\"routes\": [\(r.joined(separator: ", "))], "
                + "\"problems\": [\(c.problems.map(jsonString).joined(separator: ", "))]}")
            return
        }
        print(renderTable(["variable", "value", "source"], settings.map { [$0.0, $0.1, $0.2] }))
        print()
        print(routingText(c, probe: probe))
        print()
        print(cancelText(c))
        for p in c.problems { print(p) }
    }
}

func cancelSignalText(_ sig: CInt) -> String {
    sig == 0 ? "none" : "\(Configuration.signalName(sig)) (\(sig))"
}

/// How aio_cancel stops a request a pool worker is blocked on.
func cancelText(_ c: Configuration) -> String {
    let sig = c.cancelSignal.value
    let poll = "poll(2) on the descriptor with the worker's eventfd, which aio_cancel writes"
    if sig == 0 { return "cancel: a pool worker blocked on a stream is woken by \(poll) (UAIO_CANCEL_SIGNAL=none)" }
    return "cancel: a pool worker blocked on a stream is interrupted by \(cancelSignalText(sig)), sent to that "
        + "worker only;\n  its handler is installed when the pool first runs stream work, unless the application "
        + "has one for that signal:\n  then (never replacing it) by \(poll). On the ring: IORING_OP_ASYNC_CANCEL."
}

func routingText(_ c: Configuration, probe: (setupError: Errno?, supported: Set<Opcode>) = Routing.probe()) -> String {
    let ringLine =
        if let e = probe.setupError {
            "io_uring: cannot be set up in this process (\(e), errno \(e.rawValue)): everything goes to the pool"
        } else {
            "io_uring: available; the kernel's probe has \(probe.supported.count) of our \(Opcode.allCases.count) operations"
        }
    let rows = Routing.table(c, setupError: probe.setupError, supported: probe.supported).map {
        [$0.opcode.name, $0.backend.name, $0.reason]
    }
    return ringLine + "\n" + renderTable(["operation", "backend", "why"], rows)
}
