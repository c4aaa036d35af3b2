// What a request is: its operation, its lifecycle and how it notifies. These are plain values
// kept in the request table's slots (RequestTable.swift), read and written under the engine lock.
import CUAIO
import Glibc

/// The operations the engine runs: POSIX AIO's and FreeBSD's (an aiocb), then those of
/// uaio_ops.h (a uaiocb), in the order of its `enum uaio_op`, so that `init(uaioOp:)` is a sum.
public enum Opcode: UInt8, Sendable, CaseIterable {
    case read  // LIO_READ, aio_read
    case write  // LIO_WRITE, aio_write
    case fsync  // aio_fsync(O_SYNC)
    case fdatasync  // aio_fsync(O_DSYNC)
    case readv  // LIO_READV, aio_readv (FreeBSD): aio_buf is a struct iovec array, aio_nbytes its count
    case writev  // LIO_WRITEV, aio_writev
    case openat, openat2, close, statx, fallocate, ftruncate, fadvise, readahead, syncFileRange
    case renameat, unlinkat, mkdirat, symlinkat, linkat, fgetxattr, fsetxattr
    case fchmod, fchmodat, fchown, fchownat, utimensat, getdents64, copyFileRange, readlinkat, syncfs

    /// A uaiocb's `uaio_op` (UAIO_OP_OPENAT is 1); nil when it names nothing.
    init?(uaioOp: CInt) {
        guard uaioOp >= 1, let op = Opcode(rawValue: UInt8(clamping: Int(uaioOp) - 1 + Int(Opcode.openat.rawValue))),
              op.isExtended
        else { return nil }
        self = op
    }

    public var name: String {
        switch self {
        case .syncFileRange: "sync_file_range"
        case .copyFileRange: "copy_file_range"
        default: "\(self)"
        }
    }

    @inline(__always) var isSync: Bool { self == .fsync || self == .fdatasync }
    @inline(__always) var isRead: Bool { self == .read || self == .readv }
    @inline(__always) var isWrite: Bool { self == .write || self == .writev }
    /// `buffer` is a struct iovec array and `nbytes` its count.
    @inline(__always) var isVectored: Bool { self == .readv || self == .writev }
    /// aio_return counts bytes moved (not an fd, not 0).
    var resultIsBytes: Bool {
        switch self {
        case .read, .write, .readv, .writev, .getdents64, .copyFileRange, .readlinkat, .fgetxattr: true
        default: false
        }
    }
    /// Submitted with a uaiocb (uaio_ops.h), run by ops.c: no file ordering, no inline path.
    @inline(__always) var isExtended: Bool { rawValue >= Opcode.openat.rawValue }
    /// Resolves a path or checks the caller's identity: runs with the submitter's fsuid,
    /// fsgid and groups (Credentials). Read, write, fsync and the like on an open fd need none:
    /// the open checked them.
    var needsCredentials: Bool {
        switch self {
        case .openat, .openat2, .statx, .renameat, .unlinkat, .mkdirat, .symlinkat, .linkat, .fgetxattr,
             .fsetxattr, .fchmod, .fchmodat, .fchown, .fchownat, .utimensat, .readlinkat:
            true
        default: false
        }
    }
}

/// A request's lifecycle. `free` slots hold no request.
///
///     free -> held -> queued -> running -> (completed, slot free again)
///               \________\______ cancel: completed with ECANCELED
///
/// held:    waiting for an ordering rule (an fsync behind earlier requests, an O_APPEND
///          write or a stream request behind the one before it).
/// queued:  in a backend's queue, not started: cancellation removes it.
/// running: a worker (or the kernel) has it. aio_cancel stops it if it is blocked on a
///          stream (CancelState), or in the kernel's poll (the ring); else AIO_NOTCANCELED.
enum RequestState: UInt8 {
    case free, held, queued, running
}

/// Cancelling a request a pool worker is blocked on (WorkerPool, "Cancellation"):
///
///     none -> requested -> acknowledged     (the canceller finishes it: ECANCELED)
///                  \-----> abandoned        (the canceller gave up waiting: AIO_NOTCANCELED;
///                                            the worker ends it ECANCELED if interrupted)
///
/// A worker that completes the request first ends it with its real result, in any state.
enum CancelState: UInt8 {
    case none, requested, acknowledged, abandoned
}

/// An aio_cancel call waiting for a ring request it asked the kernel to stop, told how the
/// request ended: its aiocb cannot say, since the program may free it as soon as it sees the
/// result. Linked from the slot (`watchers`) and written by finishLocked, under the engine lock.
struct CancelWatch {
    var next: UnsafeMutablePointer<CancelWatch>? = nil
    var ended = false
    var canceled = false
}

/// The two classes of io-wq: work that ends by itself, and work that may wait for ever.
public enum WorkClass: Int, Sendable, CaseIterable {
    /// Regular files and block devices.
    case bounded = 0
    /// Pipes, FIFOs, sockets, ttys and other character devices.
    case unbounded = 1

    public var name: String { self == .bounded ? "bounded" : "unbounded" }
}

/// The ordering lane a request runs in, if any: lanes run one request at a time, in order.
enum Lane: UInt8 {
    case none, append, streamRead, streamWrite
}

/// How a request announces its completion (a copy of its aiocb's `aio_sigevent`, taken at
/// submission: the aiocb may be reused as soon as the result is visible).
public enum Notification: Equatable, @unchecked Sendable {
    case none
    /// Queued to the process with si_code SI_ASYNCIO.
    case signal(signo: CInt, value: sigval)
    /// SIGEV_THREAD_ID: queued to one thread.
    case threadSignal(signo: CInt, tid: pid_t, value: sigval)
    /// SIGEV_THREAD: `function(value)` on a new thread.
    case thread(function: @convention(c) (sigval) -> Void, attributes: UnsafeMutablePointer<pthread_attr_t>?,
                value: sigval)

    /// Reads and checks a `struct sigevent`: nil when it is invalid (EINVAL at submission).
    /// SIGEV_SIGNAL with signal 0 is "no signal", as in glibc: zero-filled aiocbs ask for it.
    public init?(_ ev: UnsafePointer<sigevent>) {
        let signo = ev.pointee.sigev_signo
        let valid = signo > 0 && signo < cuaio_nsig()
        switch ev.pointee.sigev_notify {
        case CInt(SIGEV_NONE):
            self = .none
        case CInt(SIGEV_SIGNAL):
            if signo == 0 { self = .none; return }
            guard valid else { return nil }
            self = .signal(signo: signo, value: ev.pointee.sigev_value)
        case CInt(SIGEV_THREAD):
            guard let f = cuaio_sigev_function(ev) else { return nil }
            self = .thread(function: f, attributes: cuaio_sigev_attributes(ev), value: ev.pointee.sigev_value)
        case CInt(SIGEV_THREAD_ID):
            let tid = cuaio_sigev_thread_id(ev)
            guard valid, tid > 0 else { return nil }
            self = .threadSignal(signo: signo, tid: tid, value: ev.pointee.sigev_value)
        default:
            return nil
        }
    }

    public static func == (a: Notification, b: Notification) -> Bool {
        switch (a, b) {
        case (.none, .none): true
        case let (.signal(s1, v1), .signal(s2, v2)): s1 == s2 && v1.sival_ptr == v2.sival_ptr
        case let (.threadSignal(s1, t1, v1), .threadSignal(s2, t2, v2)):
            s1 == s2 && t1 == t2 && v1.sival_ptr == v2.sival_ptr
        case let (.thread(f1, a1, v1), .thread(f2, a2, v2)):
            unsafeBitCast(f1, to: UnsafeRawPointer.self) == unsafeBitCast(f2, to: UnsafeRawPointer.self)
                && a1 == a2 && v1.sival_ptr == v2.sival_ptr
        default: false
        }
    }

    /// Delivers it. Called after the result is visible to aio_error, outside the engine lock.
    public func deliver(pid: pid_t) {
        switch self {
        case .none:
            break
        case let .signal(signo, value):
            _ = cuaio_queue_asyncio_signal(pid, 0, signo, value)
        case let .threadSignal(signo, tid, value):
            _ = cuaio_queue_asyncio_signal(pid, tid, signo, value)
        case let .thread(function, attributes, value):
            _ = cuaio_spawn_notification(function, value, attributes)
        }
    }
}

/// The sentinel for "no slot" in the index-linked lists.
let nilIndex = UInt32.max

/// One request. Lists are threaded through slots by index, so queueing never allocates.
struct RequestSlot {
    // Laid out by hand: the one-byte fields share the gap before `buffer`.
    var cb: UnsafeMutablePointer<aiocb>? = nil
    var generation: UInt32 = 0
    var state: RequestState = .free
    var opcode: Opcode = .read
    var workClass: WorkClass = .bounded
    var lane: Lane = .none
    var fd: CInt = -1
    var reqprio: CInt = 0
    /// Streams and O_APPEND writes ignore the offset (read/write instead of pread/pwrite).
    var positioned = true
    /// O_DIRECT or a block device: the worker will sleep in the kernel.
    var mayBlock = false
    /// On tmpfs/ramfs: a memory copy, never worth RWF_NOWAIT, io-wq or another worker.
    var inMemory = false
    /// The backend that has it (set when it is handed over).
    var backend: BackendKind = .pool
    /// Sent back to the pool once after the ring refused it (URingBackend's fallback).
    var reissued = false
    var cancel: CancelState = .none
    /// Runs with the submitter's identity, kept at the same index in `Engine.credentials`.
    var hasCredentials = false
    /// Cancelled on the ring because its submitter exits: re-issued on the pool if that moved
    /// no data (URingBackend+Exit.swift).
    var handOver = false
    var buffer: UnsafeMutableRawPointer? = nil
    /// Bytes; for readv/writev, the number of iovecs at `buffer`.
    var nbytes = 0
    var offset: Int64 = 0
    var notification: Notification = .none
    /// The file this request is ordered on (FileTable), and its links there.
    var file = nilIndex
    var filePrev = nilIndex
    var fileNext = nilIndex
    var laneNext = nilIndex
    /// The backend queue links.
    var queuePrev = nilIndex
    var queueNext = nilIndex
    /// The lio_listio group to count down, if any.
    var group = nilIndex
    /// The worker thread running it (pool), for the CLI and cancellation.
    var workerTid: pid_t = 0
    /// That worker's eventfd when cancels reach it by poll(2), not by a signal; -1 otherwise.
    var workerWakeFD: CInt = -1
    /// 1 once Engine.publishEarly is storing its result (set without the lock, seq_cst): the
    /// aiocb is the program's again, and aio_cancel counts the request as done.
    var published: UInt32 = 0
    /// Futex word: 1 once the worker acknowledged a cancel (the canceller sleeps on it).
    var cancelAck: UInt32 = 0
    /// The free list link.
    var nextFree = nilIndex
    var submittedNs: UInt64 = 0
    /// On the ring: the count of ring requests of the thread that submitted it, in that
    /// thread's TLS (cuaio_thread_ring), which outlives it (URingBackend+Exit.swift).
    var owner: UnsafeMutablePointer<UInt32>? = nil
    /// The aio_cancel calls waiting for it to end, told its outcome by finishLocked.
    var watchers: UnsafeMutablePointer<CancelWatch>? = nil

    /// readv/writev: `buffer` as the iovec array.
    var iovecs: UnsafePointer<iovec>? { UnsafePointer(buffer?.assumingMemoryBound(to: iovec.self)) }
}
