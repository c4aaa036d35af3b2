// What this process publishes for the `uaio` command: /dev/shm/uaio.PID, mode 0600, laid out
// by uaio_shm.h (a versioned C header, so that the library and the command agree byte for
// byte). Only the process-wide engine publishes (Engine.current), after it is built: never at
// load time, and again under the child's own pid after fork. UAIO_STATS=0 turns it off.
//
// Cost on the hot path: relaxed atomic adds for the counters and the latency histogram, made
// where a completion is published, outside the engine lock (nothing counts submissions: the
// command adds the completions and the requests in flight), and, for requests that take a
// slot, one record write per state change under the engine lock (a sequence lock per record:
// the command copies a record and retries if it changed meanwhile). Worker counts are written
// when they change, not per request. Measured: README, "Looking inside a running process".
import CUAIO
import Glibc

final class Stats {
    let header: UnsafeMutablePointer<uaio_shm_header>
    private let records: UnsafeMutablePointer<uaio_shm_request>
    /// Fields of the header, located once (a key path's offset is a runtime call).
    private let countersBase: UnsafeMutablePointer<UInt64>  // [op][backend] x (completed, cancelled, failed, bytes)
    private let latencyBase: UnsafeMutablePointer<UInt64>  // [backend][bucket]
    private let workersTotal, workersIdle, workersBlocked: UnsafeMutablePointer<UInt32>  // [class] each
    private let inFlight: UnsafeMutablePointer<UInt32>
    private let ringInFlight: UnsafeMutablePointer<UInt32>
    /// Slots below this have a record (requests beyond it are counted, not listed).
    private let recordCount: UInt32
    static let inlineBackend = 2
    static let inlineSampleShift: UInt32 = 4
    /// At most this many records: the region's pages are allocated up front (a write to a page
    /// that a full /dev/shm cannot give would be SIGBUS), so it stays small (200 KiB). The
    /// slot table hands out these slots before any other (SlotPool's `preferred`), so they
    /// cover the requests in flight unless more than 4096 are.
    static let maxRecords = 4096

    /// Maps the region for process `pid`; nil if /dev/shm cannot hold it (nothing is published).
    init?(pid: pid_t, capacity requestCapacity: Int, configuration: Configuration) {
        let capacity = min(requestCapacity, Self.maxRecords)
        recordCount = UInt32(capacity)
        let headerSize = (MemoryLayout<uaio_shm_header>.size + 63) & ~63
        let size = headerSize + capacity * MemoryLayout<uaio_shm_request>.stride
        guard let raw = uaio_shm_create(pid, UInt64(size)) else { return nil }
        header = raw.bindMemory(to: uaio_shm_header.self, capacity: 1)
        records = (raw + headerSize).bindMemory(to: uaio_shm_request.self, capacity: capacity)
        func field<T>(_ kp: PartialKeyPath<uaio_shm_header>, _: T.Type) -> UnsafeMutablePointer<T> {
            (raw + MemoryLayout<uaio_shm_header>.offset(of: kp)!).assumingMemoryBound(to: T.self)
        }
        countersBase = field(\.counters, UInt64.self)
        latencyBase = field(\.latency, UInt64.self)
        workersTotal = field(\.workers_total, UInt32.self)
        workersIdle = field(\.workers_idle, UInt32.self)
        workersBlocked = field(\.workers_blocked, UInt32.self)
        inFlight = field(\.in_flight, UInt32.self)
        ringInFlight = field(\.ring_in_flight, UInt32.self)
        let h = header
        h.pointee.header_size = UInt32(headerSize)
        h.pointee.pid = pid
        h.pointee.request_capacity = UInt32(capacity)
        h.pointee.started_ns = cuaio_now_ns()
        h.pointee.cancel_signal = configuration.cancelSignal.value
        h.pointee.workers_limit = (UInt32(configuration.maxBoundedWorkers.value),
                                   UInt32(configuration.maxUnboundedWorkers.value))
        if let name = Self.commandName() {
            withUnsafeMutableBytes(of: &h.pointee.command) { buf in
                for (i, c) in name.utf8.prefix(buf.count - 1).enumerated() { buf[i] = c }
            }
        }
        h.pointee.version = UAIO_SHM_VERSION
        // The magic last (release): a reader that sees it sees a filled header.
        cuaio_fence_release()
        h.pointee.magic = UAIO_SHM_MAGIC
    }

    /// The engine has a ring of `entries` (before the engine is shared).
    func noteRing(entries: Int, fd: CInt) {
        header.pointee.ring_entries = UInt32(clamping: entries)
        header.pointee.ring_fd = fd
        header.pointee.ring = 1
    }

    private static func commandName() -> String? {
        let fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 64)
        let n = read(fd, &buf, 63)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].prefix { $0 != 10 }, as: UTF8.self)
    }

    // MARK: counters (any thread, no lock)

    func rejected() { uaio_shm_add(&header.pointee.rejected, 1) }

    /// A completion, as it is published (after the engine lock). A record without a request
    /// slot is an inline read.
    func finished(_ c: CompletionRecord) {
        let backend = c.request == nilIndex ? Self.inlineBackend : Int(c.backend)
        let field = countersBase + (Int(c.opcode) * Int(UAIO_SHM_BACKENDS) + backend) * 4
        switch c.error {  // completed, cancelled, failed, bytes
        case 0:
            uaio_shm_add(field, 1)
            if Opcode(rawValue: c.opcode)?.resultIsBytes == true { uaio_shm_add(field + 3, UInt64(max(c.result, 0))) }
        case ECANCELED:
            uaio_shm_add(field + 1, 1)
        default:
            uaio_shm_add(field + 2, 1)
        }
        // Inline reads are the cheapest requests (a microsecond): their latency is sampled, 1
        // in 16, so that publishing stays within its budget (README, Performance).
        var weight: UInt64 = 1
        if backend == Self.inlineBackend {
            guard uaio_shm_sample(Self.inlineSampleShift) != 0 else { return }
            weight = 1 << Self.inlineSampleShift
        }
        uaio_shm_add(latencyBase + backend * Int(UAIO_SHM_BUCKETS) + Int(uaio_shm_bucket(c.latencyNs)), weight)
    }

    // MARK: records and gauges (engine lock held)

    /// Writes request `r`'s record from its slot.
    func publish(_ r: UInt32, _ s: UnsafeMutablePointer<RequestSlot>, live: UInt32) {
        writeRecord(r, s, live: live, whole: true)
    }

    /// Rewrites only the state, backend and worker of request `r`'s record (its other fields
    /// are those `publish` wrote when it was queued): a worker starting it, a completion
    /// freeing it. Half the instructions of `publish`, on the pool's serial path.
    func publishState(_ r: UInt32, _ s: UnsafeMutablePointer<RequestSlot>, live: UInt32) {
        writeRecord(r, s, live: live, whole: false)
    }

    @inline(__always)
    private func writeRecord(_ r: UInt32, _ s: UnsafeMutablePointer<RequestSlot>, live: UInt32, whole: Bool) {
        uaio_shm_store32(inFlight, live)
        guard r < recordCount else { return }
        let rec = records + Int(r)
        uaio_shm_write_begin(rec)
        rec.pointee.state = s.pointee.state.rawValue
        rec.pointee.backend = s.pointee.backend.rawValue
        rec.pointee.worker_tid = s.pointee.state == .running && s.pointee.backend == .pool ? s.pointee.workerTid : 0
        if whole {
            rec.pointee.opcode = s.pointee.opcode.rawValue
            rec.pointee.cancel = s.pointee.cancel.rawValue
            rec.pointee.fd = s.pointee.fd
            rec.pointee.offset = s.pointee.offset
            rec.pointee.nbytes = UInt64(s.pointee.nbytes)
            rec.pointee.submitted_ns = s.pointee.submittedNs
            rec.pointee.generation = s.pointee.generation
            rec.pointee.work_class = UInt8(s.pointee.workClass.rawValue)
        }
        uaio_shm_write_end(rec)
    }

    /// A class's worker counts changed (a worker started, went idle or woke, began or ended a
    /// sleep in the kernel, exited): not per request, to keep the engine lock's holds short.
    func publishWorkers(_ q: WorkQueue) {
        let i = q.workClass.rawValue
        uaio_shm_store32(workersTotal + i, UInt32(clamping: q.total))
        uaio_shm_store32(workersIdle + i, UInt32(clamping: q.idle))
        uaio_shm_store32(workersBlocked + i, UInt32(clamping: q.blocked))
    }

    func publishRing(inFlight n: Int) { uaio_shm_store32(ringInFlight, UInt32(clamping: n)) }
}
