// uaio ps, stat, requests, top: what processes using libuaio are doing, from their regions.
import ArgumentParser
import CUAIO
import Glibc
import UAIOCore

/// A JSON value, rendered compactly (enough for our reports; no Foundation in this tool).
indirect enum JSON {
    case string(String), int(Int64), double(Double), bool(Bool), null
    case array([JSON]), object([(String, JSON)])

    var text: String {
        switch self {
        case .string(let s): jsonString(s)
        case .int(let n): "\(n)"
        case .double(let d): d.isFinite ? "\(d)" : "null"
        case .bool(let b): b ? "true" : "false"
        case .null: "null"
        case .array(let a): "[" + a.map(\.text).joined(separator: ", ") + "]"
        case .object(let o): "{" + o.map { jsonString($0.0) + ": " + $0.1.text }.joined(separator: ", ") + "}"
        }
    }
}

let opNames = (0..<Int(UAIO_SHM_OPS)).map { Opcode(rawValue: UInt8($0))?.name ?? "op \($0)" }
let backendNames = ["pool", "uring", "inline"]
let stateNames = ["free", "held", "queued", "running"]
let cancelNames = ["", "requested", "acknowledged", "abandoned"]
let classNames = ["bounded", "unbounded"]

/// Opens the region of `pid`, or exits with the error's code and message.
func openRegion(_ pid: pid_t) throws -> Region {
    do {
        return try Region.open(pid)
    } catch {
        printError("uaio: \(error)")
        throw ExitCode(error.exitCode)
    }
}

func printError(_ s: String) { cuaio_write_stderr(s + "\n") }

func duration(_ ns: UInt64) -> String {
    switch ns {
    case ..<10_000: "\(ns) ns"
    case ..<10_000_000: "\(ns / 1000) us"
    case ..<10_000_000_000: "\(ns / 1_000_000) ms"
    default: "\(ns / 1_000_000_000) s"
    }
}

struct PS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps", abstract: "List the processes using libuaio now (pid, command, backend, requests in flight).")
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        var rows: [[String]] = [], items: [JSON] = []
        for pid in Region.all() {
            guard let r = try? Region.open(pid) else { continue }
            let h = r.header.pointee
            let backend = h.ring != 0 ? "uring+pool" : "pool"
            rows.append(["\(pid)", r.command, backend, "\(h.in_flight)"])
            items.append(.object([("pid", .int(Int64(clamping: pid))), ("command", .string(r.command)),
                                  ("backend", .string(backend)), ("in_flight", .int(Int64(clamping: h.in_flight)))]))
        }
        if json { print(JSON.array(items).text); return }
        print(renderTable(["pid", "command", "backend", "in flight"], rows))
    }
}

/// The report `stat` prints, as JSON and as tables.
func statReport(_ r: Region) -> (json: JSON, text: String) {
    let h = r.header.pointee
    var rows: [[String]] = [], ops: [JSON] = []
    for op in 0..<Int(UAIO_SHM_OPS) {
        for b in 0..<Int(UAIO_SHM_BACKENDS) {
            let c = r.counters(op: op, backend: b)
            guard saturatingSum([c.completed, c.cancelled, c.failed]) > 0 else { continue }
            rows.append([opNames[op], backendNames[b], "\(c.completed)", "\(c.cancelled)", "\(c.failed)", "\(c.bytes)"])
            ops.append(.object([("operation", .string(opNames[op])), ("backend", .string(backendNames[b])),
                                ("completed", .int(Int64(clamping: c.completed))), ("cancelled", .int(Int64(clamping: c.cancelled))),
                                ("failed", .int(Int64(clamping: c.failed))), ("bytes", .int(Int64(clamping: c.bytes)))]))
        }
    }
    // Submitted: what ended (on every backend, inline included) plus what is in flight.
    let records = r.requests()
    let submitted = (0..<Int(UAIO_SHM_OPS)).map { op in
        saturatingSum((0..<Int(UAIO_SHM_BACKENDS)).flatMap { b in
            let c = r.counters(op: op, backend: b)
            return [c.completed, c.cancelled, c.failed]
        } + [UInt64(records.filter { Int($0.record.opcode) == op }.count)])
    }
    var workers: [JSON] = [], workerRows: [[String]] = []
    for i in 0..<2 {
        let t = r.gauge(h.workers_total, i), idle = r.gauge(h.workers_idle, i), blocked = r.gauge(h.workers_blocked, i)
        let limit = r.gauge(h.workers_limit, i)
        // Queued: pool records waiting for a worker of this class (the library keeps no gauge).
        let queued = records.filter { $0.record.state == 2 && $0.record.backend == 0 && Int($0.record.work_class) == i }.count
        let busy = t >= idle ? t - idle : 0
        workerRows.append([classNames[i], "\(t)", "\(busy)", "\(blocked)", "\(idle)", "\(limit)", "\(queued)"])
        workers.append(.object([("class", .string(classNames[i])), ("total", .int(Int64(clamping: t))), ("busy", .int(Int64(clamping: busy))),
                                ("blocked", .int(Int64(clamping: blocked))), ("idle", .int(Int64(clamping: idle))),
                                ("limit", .int(Int64(clamping: limit))), ("queued", .int(Int64(clamping: queued)))]))
    }
    var lat: [JSON] = [], latRows: [[String]] = []
    for b in 0..<Int(UAIO_SHM_BACKENDS) {
        guard let p50 = r.latency(backend: b, 0.5), let p99 = r.latency(backend: b, 0.99),
              let p999 = r.latency(backend: b, 0.999)
        else { continue }
        latRows.append([backendNames[b], duration(p50), duration(p99), duration(p999)])
        lat.append(.object([("backend", .string(backendNames[b])), ("p50_ns", .int(Int64(clamping: p50))),
                            ("p99_ns", .int(Int64(clamping: p99))), ("p999_ns", .int(Int64(clamping: p999)))]))
    }
    let sqcq = ringOccupancy(r)
    let json = JSON.object([
        ("pid", .int(Int64(clamping: r.pid))), ("command", .string(r.command)),
        ("uptime_ns", .int(Int64(clamping: elapsed(since: h.started_ns)))),
        ("in_flight", .int(Int64(clamping: h.in_flight))),
        ("submitted", .object(zip(opNames, submitted).map { ($0, .int(Int64(clamping: $1))) })),
        ("rejected", .int(Int64(clamping: h.rejected))),
        ("completions", .array(ops)), ("workers", .array(workers)),
        ("ring", .object([("in_use", .bool(h.ring != 0)), ("entries", .int(Int64(clamping: h.ring_entries))),
                          ("in_flight", .int(Int64(clamping: h.ring_in_flight))),
                          ("sq_pending", sqcq.map { .int(Int64(clamping: $0.sq)) } ?? .null),
                          ("cq_pending", sqcq.map { .int(Int64(clamping: $0.cq)) } ?? .null)])),
        ("latency", .array(lat)),
    ])
    var text = "pid \(r.pid) (\(terminalSafe(r.command))), up \(duration(cuaio_now_ns() &- h.started_ns)), \(h.in_flight) in flight; "
    text += "submitted " + zip(opNames, submitted).map { "\($0) \($1)" }.joined(separator: ", ")
    text += "; rejected \(h.rejected)\n"
    text += h.ring == 0 ? "ring: not in use\n"
        : "ring: \(h.ring_in_flight) in flight, \(h.ring_entries) entries; SQ \(sqcq.map { "\($0.sq)" } ?? "?") "
            + "unsubmitted, CQ \(sqcq.map { "\($0.cq)" } ?? "?") unreaped\n"
    text += "\n" + renderTable(["operation", "backend", "completed", "cancelled", "failed", "bytes"], rows) + "\n\n"
    text += renderTable(["workers", "total", "busy", "blocked", "idle", "limit", "queued"], workerRows) + "\n\n"
    text += renderTable(["latency", "p50", "p99", "p99.9"], latRows)
    return (json, text)
}

struct Stat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Counters per operation and backend, queues, workers, the ring, latency percentiles.")
    @Argument(help: "The process id.") var pid: Int32
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let report = statReport(try openRegion(pid))
        print(json ? report.json.text : report.text)
    }
}

/// The ring's SQEs not yet consumed by the kernel and CQEs not yet reaped, from the kernel's own
/// account: /proc/PID/fdinfo of the ring's fd (SqTail - SqHead, CqTail - CqHead).
func ringOccupancy(_ r: Region) -> (sq: UInt32, cq: UInt32)? {
    let h = r.header.pointee
    guard h.ring != 0, let text = readAll("/proc/\(r.pid)/fdinfo/\(h.ring_fd)") else { return nil }
    var v: [String: UInt32] = [:]
    for line in text.split(separator: "\n") {
        let kv = line.split(separator: ":", maxSplits: 1)
        if kv.count == 2, let n = UInt32(kv[1].drop { $0 == "\t" || $0 == " " }) { v[String(kv[0])] = n }
    }
    guard let sh = v["SqHead"], let st = v["SqTail"], let ch = v["CqHead"], let ct = v["CqTail"] else { return nil }
    return (st &- sh, ct &- ch)
}

/// A whole file (one of /proc's), nil if it cannot be read.
func readAll(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out = [UInt8](), buf = [UInt8](repeating: 0, count: 4096)
    while case let n = read(fd, &buf, buf.count), n > 0 { out += buf[0..<n] }
    return String(decoding: out, as: UTF8.self)
}

/// The in-flight requests, pg_aios-style.
func requestsReport(_ r: Region) -> (json: JSON, text: String) {
    let now = cuaio_now_ns()
    var rows: [[String]] = [], items: [JSON] = []
    for (slot, q) in r.requests() {
        // A uaio_ops.h path operation may name AT_FDCWD: the process's working directory.
        let path = q.fd == AT_FDCWD ? readLink("/proc/\(r.pid)/cwd").map { $0 + " (cwd)" } ?? "(cwd)"
            : readLink("/proc/\(r.pid)/fd/\(q.fd)") ?? "?"
        let wchan = q.worker_tid > 0 ? readText("/proc/\(r.pid)/task/\(q.worker_tid)/wchan") ?? "?" : ""
        let state = Int(q.state) < stateNames.count ? stateNames[Int(q.state)] : "?"
        let backend = Int(q.backend) < backendNames.count ? backendNames[Int(q.backend)] : "?"
        let op = Int(q.opcode) < opNames.count ? opNames[Int(q.opcode)] : "?"
        let cancel = Int(q.cancel) < cancelNames.count ? cancelNames[Int(q.cancel)] : "?"
        let age = elapsed(since: q.submitted_ns, now: now)  // (submitted after `now` was read: 0)
        rows.append(["\(slot)", state + (cancel.isEmpty ? "" : " (cancel \(cancel))"), state == "held" ? "-" : backend,
                     op, "\(q.fd)", path, "\(q.offset)", "\(q.nbytes)", duration(age),
                     q.worker_tid > 0 ? "\(q.worker_tid)" : "-", wchan.isEmpty ? "-" : wchan])
        items.append(.object([
            ("id", .int(Int64(clamping: slot))), ("state", .string(state)), ("cancel", cancel.isEmpty ? .null : .string(cancel)),
            ("backend", state == "held" ? .null : .string(backend)), ("operation", .string(op)),
            ("fd", .int(Int64(clamping: q.fd))), ("path", .string(path)), ("offset", .int(q.offset)),
            ("length", .int(Int64(clamping: q.nbytes))), ("age_ns", .int(Int64(clamping: age))),
            ("worker_tid", q.worker_tid > 0 ? .int(Int64(clamping: q.worker_tid)) : .null),
            ("wchan", wchan.isEmpty ? .null : .string(wchan)),
        ]))
    }
    var text = renderTable(["id", "state", "backend", "op", "fd", "path", "offset", "length", "age", "worker", "blocked in"], rows)
    let more = Int(r.header.pointee.in_flight) - items.count
    if more > 0 { text += "\n(\(more) more in flight in slots past the \(r.header.pointee.request_capacity) published)" }
    return (.array(items), text)
}

func readLink(_ path: String) -> String? {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink(path, &buf, buf.count - 1)
    guard n >= 0 else { return nil }
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The first line of a small file (/proc's wchan, a sysctl).
func readText(_ path: String) -> String? {
    readAll(path).map { String($0.prefix { $0 != "\n" }) }
}

struct Requests: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Every request in flight: id, state, backend, operation, fd and path, offset, length, age, worker.")
    @Argument(help: "The process id.") var pid: Int32
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let report = requestsReport(try openRegion(pid))
        print(json ? report.json.text : report.text)
    }
}

struct Top: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A live view of `stat` and `requests`, refreshed every second.")
    @Argument(help: "The process id.") var pid: Int32
    @Option(help: "Seconds between refreshes.") var interval: Double = 1
    @Option(help: "Stop after this many refreshes (0: until interrupted or the process ends).") var count = 0

    func validate() throws {
        guard interval > 0 && interval <= 3600 else { throw ValidationError("--interval must be above 0 and at most 3600") }
        guard count >= 0 else { throw ValidationError("--count must not be negative") }
    }

    func run() throws {
        var n = 0
        while count == 0 || n < count {
            guard let r = try? Region.open(pid) else {
                print("uaio: process \(pid) has ended")
                return
            }
            // Home, clear: one screen per refresh (a terminal; plain text otherwise).
            let clear = isatty(1) != 0 ? "\u{1B}[H\u{1B}[2J" : ""
            print(clear + "uaio top \(pid)  (every \(interval) s)\n\n" + statReport(r).text + "\n\nrequests in flight:\n"
                + requestsReport(r).text)
            fflush(nil)
            n += 1
            if count != 0 && n >= count { break }
            usleep(UInt32(interval * 1_000_000))
        }
    }
}
