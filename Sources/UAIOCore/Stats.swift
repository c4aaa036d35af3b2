// What this process publishes for the `uaio` command: /dev/shm/uaio.PID, mode 0600, laid out
// by uaio_shm.h (a versioned C header, so that the library and the command agree byte for
// byte). Only the process-wide engine publishes (Engine.current), after it is built: never at
// load time, and again under the child's own pid after fork. UAIO_STATS=0 turns it off.
//
// Cost on the hot path: relaxed atomic adds for the counters and the latency histogram (an
// inline read, which takes no slot, is counted only where it completes: two adds), and,
// for requests that take a slot, one record write per state change under the engine lock (a
// sequence lock per record: the command copies a record and retries if it changed meanwhile).
import CUAIO
import Glibc

final class Stats {
    let header: UnsafeMutablePointer<uaio_shm_header>
    private let records: UnsafeMutablePointer<uaio_shm_request>
    static let inlineBackend = 2
    static let inlineSampleShift: UInt32 = 4

    /// Maps the region for `engine`; nil if /dev/shm cannot hold it (nothing is published).
    init?(engine: Engine, ringEntries: Int?) {
        let capacity = Int(engine.requests.capacity)
        let headerSize = (MemoryLayout<uaio_shm_header>.size + 63) & ~63
        let size = headerSize + capacity * MemoryLayout<uaio_shm_request>.stride
        guard let raw = uaio_shm_create(engine.pid, UInt64(size)) else { return nil }
        header = raw.bindMemory(to: uaio_shm_header.self, capacity: 1)
        records = (raw + headerSize).bindMemory(to: uaio_shm_request.self, capacity: capacity)
        let h = header
        h.pointee.header_size = UInt32(headerSize)
        h.pointee.pid = engine.pid
        h.pointee.request_capacity = UInt32(capacity)
        h.pointee.started_ns = cuaio_now_ns()
        h.pointee.ring = ringEntries == nil ? 0 : 1
        h.pointee.ring_entries = UInt32(ringEntries ?? 0)
        h.pointee.cancel_signal = engine.configuration.cancelSignal.value
        h.pointee.workers_limit = (UInt32(engine.configuration.maxBoundedWorkers.value),
                                   UInt32(engine.configuration.maxUnboundedWorkers.value))
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

    func submitted(_ op: Opcode) {
        withUnsafeMutablePointer(to: &header.pointee.submitted) {
            uaio_shm_add(UnsafeMutableRawPointer($0).assumingMemoryBound(to: UInt64.self) + Int(op.rawValue), 1)
        }
    }

    func rejected() { uaio_shm_add(&header.pointee.rejected, 1) }

    /// A request ended on backend `backend` (BackendKind raw value, or inlineBackend).
    func finished(_ op: Opcode, backend: Int, _ result: Result<Int, Errno>, latencyNs: UInt64) {
        let base = UnsafeMutableRawPointer(header) + MemoryLayout<uaio_shm_header>.offset(of: \.counters)!
        let c = base.assumingMemoryBound(to: uaio_shm_counters.self) + Int(op.rawValue) * Int(UAIO_SHM_BACKENDS) + backend
        let field = UnsafeMutableRawPointer(c).assumingMemoryBound(to: UInt64.self)  // completed, cancelled, failed, bytes
        switch result {
        case .success(let n):
            uaio_shm_add(field, 1)
            uaio_shm_add(field + 3, UInt64(n))
        case .failure(.canceled):
            uaio_shm_add(field + 1, 1)
        case .failure:
            uaio_shm_add(field + 2, 1)
        }
        // Inline reads are the cheapest requests (a microsecond): their latency is sampled, 1
        // in 16, so that publishing stays within its budget (README, Performance).
        var weight: UInt64 = 1
        if backend == Self.inlineBackend {
            guard uaio_shm_sample(Self.inlineSampleShift) != 0 else { return }
            weight = 1 << Self.inlineSampleShift
        }
        let hist = (UnsafeMutableRawPointer(header) + MemoryLayout<uaio_shm_header>.offset(of: \.latency)!)
            .assumingMemoryBound(to: UInt64.self)
        uaio_shm_add(hist + backend * Int(UAIO_SHM_BUCKETS) + Int(uaio_shm_bucket(latencyNs)), weight)
    }

    // MARK: records and gauges (engine lock held)

    /// Writes request `r`'s record from its slot.
    func publish(_ r: UInt32, _ s: UnsafeMutablePointer<RequestSlot>, live: UInt32) {
        let rec = records + Int(r)
        uaio_shm_write_begin(rec)
        rec.pointee.state = s.pointee.state.rawValue
        rec.pointee.backend = s.pointee.backend.rawValue
        rec.pointee.opcode = s.pointee.opcode.rawValue
        rec.pointee.cancel = s.pointee.cancel.rawValue
        rec.pointee.fd = s.pointee.fd
        rec.pointee.worker_tid = s.pointee.state == .running && s.pointee.backend == .pool ? s.pointee.workerTid : 0
        rec.pointee.offset = s.pointee.offset
        rec.pointee.nbytes = UInt64(s.pointee.nbytes)
        rec.pointee.submitted_ns = s.pointee.submittedNs
        rec.pointee.generation = s.pointee.generation
        uaio_shm_write_end(rec)
        uaio_shm_store32(&header.pointee.in_flight, live)
    }

    func publishWorkers(_ q: WorkQueue) {
        let i = q.workClass.rawValue
        func set(_ kp: WritableKeyPath<uaio_shm_header, (UInt32, UInt32)>, _ v: Int) {
            let p = (UnsafeMutableRawPointer(header) + MemoryLayout<uaio_shm_header>.offset(of: kp)!)
                .assumingMemoryBound(to: UInt32.self)
            uaio_shm_store32(p + i, UInt32(clamping: v))
        }
        set(\.workers_total, q.total)
        set(\.workers_idle, q.idle)
        set(\.workers_blocked, q.blocked)
        set(\.workers_limit, q.limit)
        set(\.queued, q.queued)
    }

    func publishRing(inFlight: Int) { uaio_shm_store32(&header.pointee.ring_in_flight, UInt32(clamping: inFlight)) }
}
