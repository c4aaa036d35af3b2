// uaio bench: the routing, then 4 KiB random reads from page-cached files through the POSIX
// API, glibc against libuaio (each backend), side by side. Each measurement is a child
// process of this binary running BenchWorker's loop: plain for glibc, with libuaio.so in
// LD_PRELOAD for ours. The engines alternate within every round; the table shows medians.
import ArgumentParser
import Glibc
import UAIOCore

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare libuaio with glibc's POSIX AIO: 4 KiB random reads from page-cached files.")

    @Option(help: "Seconds per measurement.") var seconds = 2.0
    @Option(help: "Rounds; the table shows the median of each engine.") var runs = 3
    @Option(help: "Queue depths, comma-separated.") var depths = "1,32"
    @Option(name: .customLong("files"), help: "Numbers of files, comma-separated.") var fileCounts = "1,8"
    @Option(help: "Size of each file, MiB.") var fileMib = 64
    @Option(help: "libuaio backends to measure, comma-separated; NAME-noinline sets UAIO_TRY_INLINE=0.")
    var backends = "uring,pool,pool-noinline"
    @Option(help: "Directory for the temporary files (default: $TMPDIR or /var/tmp).") var dir: String?
    @Option(help: "Path of libuaio.so (default: beside this binary, or ../lib).") var library: String?
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard seconds > 0 && seconds <= 3600 else { throw ValidationError("--seconds must be above 0 and at most 3600") }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard fileMib >= 1 && fileMib <= 1 << 20 else { throw ValidationError("--file-mib must be 1 to 1048576") }
    }

    func run() throws {
        let lib = try locateLibrary(library)
        let depthList = try numbers(depths, "--depths")
        let fileList = try numbers(fileCounts, "--files")
        let engines = ["glibc"] + backends.split(separator: ",").map { "uaio/\($0)" }
        let base = dir ?? Configuration.environment("TMPDIR") ?? "/var/tmp"
        let workdir = "\(base)/uaio-bench.\(getpid())"
        guard mkdir(workdir, 0o700) == 0 else { throw CLIError("mkdir \(workdir): \(Errno.current)") }
        let paths = (0..<(fileList.max() ?? 1)).map { "\(workdir)/file\($0)" }
        defer {
            paths.forEach { unlink($0) }
            rmdir(workdir)
        }
        try paths.forEach { try makeFile($0, mib: fileMib) }

        if !json {
            print("uaio bench: 4 KiB random reads, \(fileMib) MiB page-cached files in \(base), "
                + "\(seconds) s per measurement, median of \(runs) alternated rounds")
            print("library: \(lib)")
            print(routingText(Configuration.load()))
            print()
        }
        var rows: [[String]] = []
        var jsonRows: [String] = []
        for files in fileList {
            for depth in depthList {
                var samples: [String: [BenchSample]] = [:]
                for round in 0..<runs {
                    for engine in round % 2 == 0 ? engines : engines.reversed() {
                        let s = try measure(engine, lib: lib, files: Array(paths.prefix(files)), depth: depth)
                        samples[engine, default: []].append(s)
                    }
                }
                let glibc = median(samples["glibc"]!.map(\.iops))
                for engine in engines {
                    let s = samples[engine]!
                    let iops = median(s.map(\.iops))
                    let row = [
                        "\(files)", "\(depth)", engine, formatCount(iops),
                        String(format1: median(s.map(\.p50))), String(format1: median(s.map(\.p99))),
                        String(format1: median(s.map(\.cpuPerIO))), String(format2: iops / glibc) + "x",
                    ]
                    rows.append(row)
                    jsonRows.append(
                        "{\"files\": \(files), \"depth\": \(depth), \"engine\": \(jsonString(engine)), "
                            + "\"iops\": \(Int(iops)), \"p50_us\": \(median(s.map(\.p50))), "
                            + "\"p99_us\": \(median(s.map(\.p99))), \"cpu_us_per_io\": \(median(s.map(\.cpuPerIO))), "
                            + "\"vs_glibc\": \(iops / glibc)}")
                }
                if !json {
                    print(renderTable(["files", "QD", "engine", "IOPS", "p50 us", "p99 us", "CPU us/IO", "vs glibc"],
                                      rows))
                    rows.removeAll()
                    print()
                }
            }
        }
        if json { print("[\(jsonRows.joined(separator: ",\n "))]") }
    }

    private func measure(_ engine: String, lib: String, files: [String], depth: Int) throws -> BenchSample {
        var extra: [String: String] = [:]
        if engine.hasPrefix("uaio/") {
            extra["LD_PRELOAD"] = lib
            var backend = String(engine.dropFirst(5))
            if backend.hasSuffix("-noinline") {
                backend.removeLast("-noinline".count)
                extra["UAIO_TRY_INLINE"] = "0"
            }
            extra["UAIO_BACKEND"] = backend
        }
        let args = [executablePath(), "_bench-worker", "--files", files.joined(separator: ","),
                    "--depth", "\(depth)", "--seconds", "\(seconds)"]
        let r = try runChild(args, environment: childEnvironment(extra))
        guard r.status == 0, let s = BenchSample(line: r.output) else {
            throw CLIError("\(engine) measurement failed (exit \(r.status)): \(r.output)")
        }
        let want = engine == "glibc" ? "glibc" : "uaio"
        guard s.servedBy == want else { throw CLIError("\(engine): the requests were served by \(s.servedBy)") }
        return s
    }
}

struct BenchSample {
    var servedBy = ""
    var iops = 0.0, p50 = 0.0, p99 = 0.0, cpuPerIO = 0.0

    init?(line: String) {
        var kv: [String: String] = [:]
        for pair in line.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { kv[String(parts[0])] = String(parts[1]) }
        }
        guard let by = kv["served_by"], let ios = kv["ios"].flatMap(Double.init),
              let secs = kv["seconds"].flatMap(Double.init), let p50 = kv["p50_us"].flatMap(Double.init),
              let p99 = kv["p99_us"].flatMap(Double.init), let cpu = kv["cpu_seconds"].flatMap(Double.init),
              ios > 0, secs > 0
        else { return nil }
        servedBy = by
        iops = ios / secs
        self.p50 = p50
        self.p99 = p99
        cpuPerIO = cpu / ios * 1e6
    }
}

/// libuaio.so: the option, $UAIO_LIBRARY, beside this binary (a build directory), or ../lib
/// (an install prefix).
func locateLibrary(_ option: String?) throws -> String {
    let exeDir = String(executablePath().split(separator: "/", omittingEmptySubsequences: false).dropLast()
        .joined(separator: "/"))
    let candidates = [option, Configuration.environment("UAIO_LIBRARY"), "\(exeDir)/libuaio.so",
                      "\(exeDir)/../lib/libuaio.so"].compactMap { $0 }
    guard let found = candidates.first(where: { access($0, R_OK) == 0 }) else {
        throw CLIError("libuaio.so not found (looked at \(candidates.joined(separator: ", "))); "
            + "build it (make install) or pass --library")
    }
    var resolved = [CChar](repeating: 0, count: Int(PATH_MAX))
    return realpath(found, &resolved) != nil ? String(decoding: resolved.prefix { $0 != 0 }.map(UInt8.init(bitPattern:)), as: UTF8.self) : found
}

private func makeFile(_ path: String, mib: Int) throws {
    let fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0o600)
    guard fd >= 0 else { throw CLIError("create \(path): \(Errno.current)") }
    defer { close(fd) }
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    for i in chunk.indices { chunk[i] = UInt8(truncatingIfNeeded: i &* 31) }
    for _ in 0..<mib where write(fd, chunk, chunk.count) != chunk.count {
        throw CLIError("write \(path): \(Errno.current)")
    }
}

private func numbers(_ list: String, _ name: String) throws -> [Int] {
    let values = list.split(separator: ",").compactMap { Int($0.trimmingCharacters()) }
    guard !values.isEmpty, values.allSatisfy({ $0 > 0 }) else { throw ValidationError("\(name): \(list)") }
    return values
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.isEmpty ? 0 : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

func formatCount(_ x: Double) -> String {
    x >= 1e6 ? String(format2: x / 1e6) + "M" : x >= 1e3 ? String(format1: x / 1e3) + "k" : String(format1: x)
}

extension Substring {
    func trimmingCharacters() -> Substring {
        var s = self
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return s
    }
}

extension String {
    /// One decimal, without Foundation's String(format:).
    init(format1 x: Double) { self = fixed(x, 1) }
    init(format2 x: Double) { self = fixed(x, 2) }
}

private func fixed(_ x: Double, _ digits: Int) -> String {
    let scale = digits == 1 ? 10.0 : 100.0
    let v = (x * scale).rounded()
    let whole = Int(v / scale)
    let frac = Int(abs(v).truncatingRemainder(dividingBy: scale))
    let f = String(frac)
    return "\(v < 0 && whole == 0 ? "-" : "")\(whole).\(String(repeating: "0", count: digits - f.count))\(f)"
}
