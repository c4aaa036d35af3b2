// uaio: what UringAIO does on this machine and how fast it is.
import ArgumentParser

@main
struct UAIO: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uaio",
        abstract: "UringAIO: POSIX AIO on io_uring and an io-wq-style worker pool.",
        subcommands: [Probe.self, Config.self, PS.self, Stat.self, Requests.self, Top.self, Run.self, Bench.self,
                      BenchWorker.self]
    )
}
