import CUAIO
import Testing

@testable import UAIOCore

@Suite struct ConfigurationTests {
    private func parse(_ env: [String: String], aioInit: (Int, Int, Int) = (0, 0, 0)) -> Configuration {
        Configuration.parse(lookup: { env[$0] }, aioInit: aioInit)
    }

    @Test func defaultsWhenTheEnvironmentIsSilent() {
        let c = parse([:])
        #expect(c.backend == .init(value: .auto, source: .defaultValue))
        #expect(c.maxBoundedWorkers.value == Configuration.defaultMaxBoundedWorkers)
        #expect(c.maxUnboundedWorkers.value == 256)
        #expect(c.workerIdleMs.value == 1000)
        #expect(c.maxRequests.value == 65536)
        #expect(c.spinUs == .init(value: 50, source: .defaultValue))
        #expect(c.problems.isEmpty)
    }

    @Test func theSpinIsMicrosecondsUpToTenMilliseconds() {
        #expect(parse(["UAIO_SPIN_US": "0"]).spinUs == .init(value: 0, source: .environment))
        #expect(parse(["UAIO_SPIN_US": "10000"]).spinUs == .init(value: 10000, source: .environment))
        for bad in ["-1", "10001", "fast"] {
            let c = parse(["UAIO_SPIN_US": bad])
            #expect(c.spinUs == .init(value: 50, source: .defaultValue), "\(bad)")
            #expect(c.problems.count == 1 && c.problems[0].contains("UAIO_SPIN_US"), "\(bad)")
        }
    }

    @Test func environmentValuesWin() {
        let c = parse(
            ["UAIO_BACKEND": " Pool ", "UAIO_MAX_BOUNDED_WORKERS": "3", "UAIO_MAX_UNBOUNDED_WORKERS": "9",
             "UAIO_WORKER_IDLE_MS": "50", "UAIO_MAX_REQUESTS": "128"], aioInit: (7, 100_000, 4))
        #expect(c.backend == .init(value: .pool, source: .environment))
        #expect(c.maxBoundedWorkers == .init(value: 3, source: .environment))
        #expect(c.maxUnboundedWorkers == .init(value: 9, source: .environment))
        #expect(c.workerIdleMs == .init(value: 50, source: .environment))
        #expect(c.maxRequests == .init(value: 128, source: .environment))
    }

    @Test func aioInitFillsWhatTheEnvironmentLeavesOut() {
        let c = parse(["UAIO_MAX_REQUESTS": "128"], aioInit: (7, 100_000, 4))
        #expect(c.maxBoundedWorkers == .init(value: 7, source: .aioInit))
        #expect(c.workerIdleMs == .init(value: 4000, source: .aioInit))
        #expect(c.maxRequests == .init(value: 128, source: .environment))
        // aio_num is a hint of expected requests: it only ever raises the capacity.
        #expect(parse([:], aioInit: (0, 64, 0)).maxRequests == .init(value: 65536, source: .defaultValue))
        #expect(parse([:], aioInit: (0, 100_000, 0)).maxRequests == .init(value: 100_000, source: .aioInit))
    }

    @Test(arguments: ["", "abc", "0", "-5", "12x", "99999999999999999999"])
    func badNumbersFallBackWithOneLine(_ raw: String) {
        let c = parse(["UAIO_MAX_BOUNDED_WORKERS": raw])
        #expect(c.maxBoundedWorkers == .init(value: Configuration.defaultMaxBoundedWorkers, source: .defaultValue))
        #expect(c.problems.count == 1)
        #expect(c.problems[0].hasPrefix("uaio: UAIO_MAX_BOUNDED_WORKERS='\(raw)' is not a whole number"))
        #expect(c.problems[0].contains("using \(Configuration.defaultMaxBoundedWorkers) (default)"))
    }

    @Test func badBackendFallsBackToAuto() {
        let c = parse(["UAIO_BACKEND": "io_uring"])
        #expect(c.backend == .init(value: .auto, source: .defaultValue))
        #expect(c.problems == ["uaio: UAIO_BACKEND='io_uring' is not one of auto, pool, uring; using auto (default)"])
    }

    @Test func cancelSignalNamesAndNumbers() {
        let low = cuaio_sigrtmin(), high = cuaio_sigrtmax()
        #expect(parse([:]).cancelSignal == .init(value: high - 2, source: .defaultValue))
        #expect(parse(["UAIO_CANCEL_SIGNAL": "SIGRTMIN+3"]).cancelSignal.value == low + 3)
        #expect(parse(["UAIO_CANCEL_SIGNAL": "sigrtmax-1"]).cancelSignal.value == high - 1)
        #expect(parse(["UAIO_CANCEL_SIGNAL": "\(low + 1)"]).cancelSignal.value == low + 1)
        #expect(parse(["UAIO_CANCEL_SIGNAL": "none"]).cancelSignal == .init(value: 0, source: .environment))
        #expect(Configuration.signalName(high - 2) == "SIGRTMAX-2" && Configuration.signalName(low) == "SIGRTMIN")
        // Not real-time (SIGUSR1, glibc's reserved 32 and 33), or out of the range: the default.
        for bad in ["10", "32", "33", "SIGRTMAX+1", "SIGRTMIN-1", "SIGUSR1", "x",
                    "SIGRTMIN+2147483647", "SIGRTMAX+2147483647", "SIGRTMIN-2147483648", "99999999999"] {
            let c = parse(["UAIO_CANCEL_SIGNAL": bad])
            #expect(c.cancelSignal == .init(value: high - 2, source: .defaultValue), "\(bad)")
            #expect(c.problems.count == 1 && c.problems[0].hasPrefix("uaio: UAIO_CANCEL_SIGNAL='\(bad)'"))
        }
    }
}
