// Which file a request is on, and the ordering rules that follow (semantics.md, "Ordering"):
//
//  - every request on a file joins the file's list in submission order; an fsync/fdatasync
//    may start only at the head of that list, i.e. once every earlier request on the file
//    has completed (FreeBSD's barrier). Later requests never wait for it.
//  - O_APPEND writes, and each direction of a stream (pipe, FIFO, socket, tty), form lanes
//    that run one request at a time, in order.
//  - everything else runs in parallel: reads and positioned writes on one fd included.
//
// "The same file" is the same inode (st_dev, st_ino), so dup'ed fds share their rules. That is
// wider than "the same open file description", and harmless: fsync makes the inode durable
// whichever fd wrote to it.
//
// fstat+fcntl on every submission would be a syscall pair on the hot path, so each fd number
// caches its file while the file has requests in flight; the cache entry dies with the file's
// last request (its generation changes). An fd closed and reused while requests are still in
// flight on it is outside POSIX (close(2) with AIO pending); we keep it memory-safe only.
// After that the entry still remembers the inode it saw and its kind, so a later miss on the
// same inode (QD1: every request) costs an fstat, not also an fstatfs.
import CUAIO
import Glibc

/// What kind of file an fd refers to.
enum FileKind: UInt8 {
    case regular  // regular file: bounded, positioned, parallel
    case memory  // regular file on tmpfs/ramfs: the same, and its I/O never waits for a device
    case block  // block device: bounded, positioned, parallel, workers sleep in the kernel
    case stream  // pipe, FIFO, socket, tty, other character device: unbounded, ordered lanes

    /// `inMemory` is asked only of regular files (an fstatfs).
    init(mode: mode_t, inMemory: () -> Bool) {
        switch mode & S_IFMT {
        case S_IFREG: self = inMemory() ? .memory : .regular
        case S_IFDIR: self = .regular
        case S_IFBLK: self = .block
        default: self = .stream
        }
    }
}

/// The first and last request of a lane (singly linked through RequestSlot.laneNext).
struct LaneEnds {
    var head = nilIndex
    var tail = nilIndex
}

struct FileState: Poolable {
    var device: UInt64 = 0
    var inode: UInt64 = 0
    var generation: UInt32 = 0
    var kind: FileKind = .regular
    var inflight: UInt32 = 0
    /// Every request on the file, in submission order.
    var head = nilIndex
    var tail = nilIndex
    /// The lanes, indexed by Lane.rawValue - 1: append, stream read, stream write.
    var lanes = (LaneEnds(), LaneEnds(), LaneEnds())
    var hashNext = nilIndex
    var nextFree = nilIndex
}

/// What the fd cache knows about one fd number. The cache is zero-filled memory, so an
/// all-zero entry must mean "nothing cached": the file is stored as its index plus one.
struct FDEntry {
    private var fileSlot: UInt32 = 0
    var fileGeneration: UInt32 = 0
    /// fcntl(F_GETFL) of the open file description.
    var flags: CInt = 0
    /// The inode last attached through this fd, and its kind: valid once `file` was set.
    var device: UInt64 = 0
    var inode: UInt64 = 0
    var kind: FileKind = .regular
    /// Requests submitted through this fd number and not yet retired (enter/leave): the entry
    /// is trusted only while there is one. A number with none left may have been closed and
    /// reopened for another file, although the file it named still has requests through others.
    var requests: UInt32 = 0

    init(file: UInt32 = nilIndex, fileGeneration: UInt32 = 0, flags: CInt) {
        fileSlot = file &+ 1
        self.fileGeneration = fileGeneration
        self.flags = flags
    }

    /// The file's index, nilIndex for none.
    var file: UInt32 { fileSlot &- 1 }
}

/// What the inline read path believes about an fd number, so that it can skip the F_GETFL
/// that tells an O_DIRECT fd (never read inline: RWF_NOWAIT does not stop a direct read from
/// waiting for the device) from a buffered one. The belief can go stale without our knowing
/// (close and reopen under the same number, F_SETFL): a `buffered` fd that became O_DIRECT
/// then gets one read done synchronously, with the right result, and the read's duration
/// (a device's, not a copy's) turns the hint back to `unknown`. A `direct` fd that became
/// buffered goes down the normal path, whose lookup corrects the hint. A `memory` fd (tmpfs,
/// ramfs) that became a disk file's likewise gets one plain pread, which the duration catches.
enum ReadHint: UInt32 {
    case unknown = 0
    case direct = 1
    case buffered = 2
    /// Buffered, on a file system that refuses RWF_NOWAIT and never waits (tmpfs, ramfs): read
    /// with a plain pread, without the refused preadv2 and the fstatfs that told why.
    case memory = 3

    init(flags: CInt) { self = flags & cuaio_o_direct() != 0 ? .direct : .buffered }
}

final class FileTable {
    let files: SlotPool<FileState>
    /// Hash chain heads, stored complemented (`head`), so that the mapping's zeros read as
    /// empty chains and its pages cost nothing until a file hashes there.
    private let buckets: UnsafeMutablePointer<UInt32>
    private let bucketMask: UInt32
    private let fds: UnsafeMutablePointer<FDEntry>
    /// Per fd number, what its F_GETFL said last (`ReadHint`). Read and written without the lock
    /// (relaxed: a hint, never a fact) by the inline path; see `ReadHint` for why a stale one
    /// costs at most one slow read.
    private let readHints: UnsafeMutablePointer<UInt32>
    static let cachedFDs: CInt = 1 << 16

    init?(capacity: Int) {
        guard let files = SlotPool<FileState>(capacity: capacity) else { return nil }
        self.files = files
        var n = 64
        while n < capacity { n <<= 1 }
        bucketMask = UInt32(n - 1)
        let heads = system_mmapAnonymous(n * 4)
        let raw = system_mmapAnonymous(Int(Self.cachedFDs) * MemoryLayout<FDEntry>.stride)
        let hints = system_mmapAnonymous(Int(Self.cachedFDs) * 4)
        guard let heads, let raw, let hints else {
            for (p, bytes) in [(heads, n * 4), (raw, Int(Self.cachedFDs) * MemoryLayout<FDEntry>.stride),
                               (hints, Int(Self.cachedFDs) * 4)]
            {
                if let p { munmap(p, bytes) }
            }
            files.unmap()
            return nil
        }
        buckets = heads.bindMemory(to: UInt32.self, capacity: n)
        fds = raw.bindMemory(to: FDEntry.self, capacity: Int(Self.cachedFDs))
        readHints = hints.bindMemory(to: UInt32.self, capacity: Int(Self.cachedFDs))
    }

    /// Gives the mappings back: only for a table no request ever used (a failed engine build).
    func unmap() {
        munmap(buckets, (Int(bucketMask) + 1) * 4)
        munmap(fds, Int(Self.cachedFDs) * MemoryLayout<FDEntry>.stride)
        munmap(readHints, Int(Self.cachedFDs) * 4)
        files.unmap()
    }

    /// The cached entry for `fd`, if requests submitted through it are in flight.
    func cached(_ fd: CInt) -> FDEntry? {
        guard fd >= 0 && fd < Self.cachedFDs else { return nil }
        let e = fds[Int(fd)]
        guard e.requests > 0, e.file != nilIndex, files[e.file].pointee.generation == e.fileGeneration,
              files[e.file].pointee.inflight > 0
        else { return nil }
        return e
    }

    /// What `fd`'s flags were when last looked at (no lock; see `readHints`).
    func readHint(_ fd: CInt) -> ReadHint {
        guard fd >= 0 && fd < Self.cachedFDs else { return .unknown }
        return ReadHint(rawValue: cuaio_load_u32_relaxed(readHints + Int(fd))) ?? .unknown
    }

    /// Remembers what `fd`'s flags say (or forgets, with `.unknown`); no lock.
    func setReadHint(_ fd: CInt, _ hint: ReadHint) {
        guard fd >= 0 && fd < Self.cachedFDs else { return }
        cuaio_store_u32_relaxed(readHints + Int(fd), hint.rawValue)
    }

    /// The inode `fd` referred to when it was last attached, and its kind, even if its requests
    /// are gone. The same inode lives on the same file system, so whether it is in memory holds.
    func lastSeen(_ fd: CInt) -> (device: UInt64, inode: UInt64, kind: FileKind)? {
        guard fd >= 0 && fd < Self.cachedFDs else { return nil }
        let e = fds[Int(fd)]
        return e.file == nilIndex ? nil : (e.device, e.inode, e.kind)
    }

    /// Finds or creates the file for (device, inode), of `kind`, and caches it for `fd`. nil
    /// when the table is full (EAGAIN).
    func attach(fd: CInt, status st: FileIdentity, kind: FileKind, flags: CInt) -> FDEntry? {
        let dev = st.device, ino = st.inode
        let b = bucket(dev, ino)
        var i = head(b)
        while i != nilIndex {
            let f = files[i]
            if f.pointee.device == dev && f.pointee.inode == ino { break }
            i = f.pointee.hashNext
        }
        if i == nilIndex {
            guard let n = files.take() else { return nil }
            let f = files[n]
            f.pointee.device = dev
            f.pointee.inode = ino
            f.pointee.kind = kind
            f.pointee.hashNext = head(b)
            setHead(b, n)
            i = n
        }
        var e = FDEntry(file: i, fileGeneration: files[i].pointee.generation, flags: flags)
        (e.device, e.inode, e.kind) = (dev, ino, files[i].pointee.kind)
        if fd >= 0 && fd < Self.cachedFDs {
            e.requests = fds[Int(fd)].requests  // (the number's, whichever file it names)
            fds[Int(fd)] = e
            setReadHint(fd, ReadHint(flags: flags))
        }
        return e
    }

    private func head(_ b: Int) -> UInt32 { ~buckets[b] }
    private func setHead(_ b: Int, _ i: UInt32) { buckets[b] = ~i }

    private func bucket(_ dev: UInt64, _ ino: UInt64) -> Int {
        Int(UInt32(truncatingIfNeeded: ((ino ^ dev &* 31) &* 0x9E37_79B9_7F4A_7C15) >> 32) & bucketMask)
    }

    /// Drops a file that has no request left (its fd cache entries die with its generation).
    private func detach(_ i: UInt32) {
        let f = files[i]
        let dev = f.pointee.device, ino = f.pointee.inode
        let b = bucket(dev, ino)
        if head(b) == i {
            setHead(b, f.pointee.hashNext)
        } else {
            var p = head(b)
            while files[p].pointee.hashNext != i { p = files[p].pointee.hashNext }
            files[p].pointee.hashNext = f.pointee.hashNext
        }
        files.give(i)
    }

    // MARK: ordering

    /// Appends request `r` to its file's list (and lane). True when it may start now.
    func enter(_ r: UInt32, _ slot: UnsafeMutablePointer<RequestSlot>, requests: SlotPool<RequestSlot>) -> Bool {
        let fi = slot.pointee.file
        let f = files[fi]
        slot.pointee.filePrev = f.pointee.tail
        slot.pointee.fileNext = nilIndex
        if f.pointee.tail != nilIndex { requests[f.pointee.tail].pointee.fileNext = r } else { f.pointee.head = r }
        f.pointee.tail = r
        f.pointee.inflight += 1
        countOnFD(slot.pointee.fd, 1)
        var ready = !slot.pointee.opcode.isSync || f.pointee.head == r
        if slot.pointee.lane != .none {
            let l = lane(f, slot.pointee.lane)
            slot.pointee.laneNext = nilIndex
            if l.pointee.tail != nilIndex { requests[l.pointee.tail].pointee.laneNext = r } else { l.pointee.head = r }
            l.pointee.tail = r
            ready = ready && l.pointee.head == r
        }
        return ready
    }

    /// Whether `leave` would ready another request (lock held): a sync waiting for this one to
    /// be the file's oldest, or the next request of its lane. Most completions ready nothing.
    func completionReadies(_ slot: UnsafeMutablePointer<RequestSlot>, requests: SlotPool<RequestSlot>) -> Bool {
        guard slot.pointee.file != nilIndex else { return false }
        if slot.pointee.filePrev == nilIndex, slot.pointee.fileNext != nilIndex {
            let n = requests[slot.pointee.fileNext]
            if n.pointee.state == .held && n.pointee.opcode.isSync { return true }
        }
        let l = slot.pointee.laneNext
        return slot.pointee.lane != .none && l != nilIndex && requests[l].pointee.state == .held
    }

    /// Removes request `r` (completed or cancelled) from its file. Returns up to two held
    /// requests that may now start: the new head of the file if it is a held fsync, and
    /// the next request of `r`'s lane.
    func leave(_ r: UInt32, _ slot: UnsafeMutablePointer<RequestSlot>, requests: SlotPool<RequestSlot>)
        -> (UInt32, UInt32)
    {
        let fi = slot.pointee.file
        let f = files[fi]
        var readyA = nilIndex, readyB = nilIndex
        let prev = slot.pointee.filePrev, next = slot.pointee.fileNext
        if prev != nilIndex { requests[prev].pointee.fileNext = next } else { f.pointee.head = next }
        if next != nilIndex { requests[next].pointee.filePrev = prev } else { f.pointee.tail = prev }
        if prev == nilIndex && next != nilIndex {
            let n = requests[next]
            // Only a sync waits for the head position; it joins no lane.
            if n.pointee.state == .held && n.pointee.opcode.isSync { readyA = next }
        }
        if slot.pointee.lane != .none {
            let l = lane(f, slot.pointee.lane)
            if l.pointee.head == r {
                let n = slot.pointee.laneNext
                l.pointee.head = n
                if n == nilIndex {
                    l.pointee.tail = nilIndex
                } else if requests[n].pointee.state == .held {
                    readyB = n  // lane requests are never syncs: the lane is their only rule
                }
            } else {
                // A held request leaves from the middle of its lane (cancellation).
                var p = l.pointee.head
                while requests[p].pointee.laneNext != r { p = requests[p].pointee.laneNext }
                requests[p].pointee.laneNext = slot.pointee.laneNext
                if l.pointee.tail == r { l.pointee.tail = p }
            }
        }
        f.pointee.inflight -= 1
        countOnFD(slot.pointee.fd, -1)
        if f.pointee.inflight == 0 { detach(fi) }
        return (readyA, readyB)
    }

    /// Counts a request in or out of its fd number's entry (FDEntry.requests).
    private func countOnFD(_ fd: CInt, _ d: Int32) {
        guard fd >= 0 && fd < Self.cachedFDs else { return }
        fds[Int(fd)].requests = UInt32(bitPattern: Int32(bitPattern: fds[Int(fd)].requests) &+ d)
    }

    /// Calls `body` for every request on the file cached for `fd` (none if nothing is in flight).
    func forEachRequest(onFD fd: CInt, requests: SlotPool<RequestSlot>, _ body: (UInt32) -> Void) {
        guard let e = cached(fd) else { return }
        var i = files[e.file].pointee.head
        while i != nilIndex {
            let next = requests[i].pointee.fileNext
            if requests[i].pointee.fd == fd { body(i) }
            i = next
        }
    }

    /// The ends of `lane` of file `f` (the tuple is homogeneous, so laid out like a C array).
    private func lane(_ f: UnsafeMutablePointer<FileState>, _ lane: Lane) -> UnsafeMutablePointer<LaneEnds> {
        precondition(lane != .none)
        let base = UnsafeMutableRawPointer(f) + MemoryLayout<FileState>.offset(of: \.lanes)!
        return base.assumingMemoryBound(to: LaneEnds.self) + Int(lane.rawValue - 1)
    }
}
