// The benchmark's measured loop, run in a child process: plain POSIX AIO calls, served by
// glibc, or by libuaio when the parent preloads it. fio's posixaio engine does the same:
// keep `depth` reads in flight, aio_suspend on the whole list, reap what is done, refill.
import ArgumentParser
import Glibc

struct BenchWorker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "_bench-worker", abstract: "The measured loop of `uaio bench` (internal).",
        shouldDisplay: false)

    @Option var files: String
    @Option var depth: Int
    @Option var seconds: Double
    @Option var block: Int = 4096

    func validate() throws {
        guard (1...4096).contains(depth), seconds > 0 && seconds <= 3600, (512...(1 << 24)).contains(block) else {
            throw ValidationError("--depth 1 to 4096, --seconds above 0 and at most 3600, --block 512 to 16777216")
        }
    }

    func run() throws {
        let paths = files.split(separator: ",").map(String.init)
        let fds = try paths.map { path -> CInt in
            let fd = open(path, O_RDONLY)
            guard fd >= 0 else { throw CLIError("open \(path): \(String(cString: strerror(errno)))") }
            return fd
        }
        // Re-read every file first: the page cache may have dropped it since it was written.
        let size = Int(lseek(fds[0], 0, SEEK_END))
        let blocks = max(1, size / block)
        var warm = [UInt8](repeating: 0, count: 1 << 20)
        for fd in fds { var off = 0; while pread(fd, &warm, warm.count, off_t(off)) > 0 { off += warm.count } }

        let cbs = UnsafeMutablePointer<aiocb>.allocate(capacity: depth)
        cbs.initialize(repeating: aiocb(), count: depth)
        let list = UnsafeMutablePointer<UnsafePointer<aiocb>?>.allocate(capacity: depth)
        var memory: UnsafeMutableRawPointer? = nil
        posix_memalign(&memory, 4096, depth * block)
        let started = UnsafeMutablePointer<UInt64>.allocate(capacity: depth)
        var latencies = [UInt32]()
        latencies.reserveCapacity(8_000_000)
        var rng: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(getpid())
        func next() -> UInt64 {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
            return rng
        }
        func submit(_ i: Int) {
            let r = next()
            cbs[i].aio_fildes = fds[Int(r % UInt64(fds.count))]
            cbs[i].aio_offset = off_t(Int((r >> 8) % UInt64(blocks)) * block)
            cbs[i].aio_buf = UnsafeMutableRawPointer(memory!) + i * block
            cbs[i].aio_nbytes = block
            started[i] = nowNs()
            guard aio_read(cbs + i) == 0 else { fatalError("aio_read: \(String(cString: strerror(errno)))") }
        }
        for i in 0..<depth {
            list[i] = UnsafePointer(cbs + i)
            submit(i)
        }
        let begin = nowNs()
        let deadline = begin + UInt64(seconds * 1e9)
        var ios = 0
        var now = begin
        while now < deadline {
            if aio_suspend(list, CInt(depth), nil) != 0 && errno != EINTR {
                throw CLIError("aio_suspend: \(String(cString: strerror(errno)))")
            }
            now = nowNs()
            for i in 0..<depth where aio_error(cbs + i) != EINPROGRESS {
                let n = aio_return(cbs + i)
                guard n == block else { throw CLIError("read returned \(n), error \(aio_error(cbs + i))") }
                if latencies.count < latencies.capacity { latencies.append(UInt32(min(now - started[i], 0xFFFF_FFFF))) }
                ios += 1
                submit(i)
            }
        }
        let elapsed = Double(nowNs() - begin) / 1e9
        for i in 0..<depth {
            while aio_error(cbs + i) == EINPROGRESS { _ = aio_suspend(list + i, 1, nil) }
            _ = aio_return(cbs + i)
        }
        latencies.sort()
        func percentile(_ p: Double) -> Double {
            latencies.isEmpty ? 0 : Double(latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]) / 1000
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        let servedBy = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "uaio_requests_submitted") == nil ? "glibc" : "uaio"
        // One line of key=value pairs for the parent (BenchSample.init(line:)).
        print("served_by=\(servedBy) ios=\(ios) seconds=\(elapsed) p50_us=\(percentile(0.5)) "
            + "p99_us=\(percentile(0.99)) cpu_seconds=\(cpu)")
    }
}

func nowNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
