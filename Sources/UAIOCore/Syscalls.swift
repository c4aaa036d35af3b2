// The one syscall layer: every libc call the engine makes goes through here, so errno is
// read right after the call (`@inline(never)`, nothing in between) and EINTR is retried in
// one place. Results are `Result<_, Errno>` values; POSIX's -1/errno appears only in UAIOExports.
import CUAIO
import Glibc

/// A POSIX error number.
public struct Errno: Error, RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: CInt
    public init(rawValue: CInt) { self.rawValue = rawValue }
    public init(_ raw: CInt) { self.rawValue = raw }

    public static var current: Errno { Errno(errno) }
    public var description: String { String(cString: strerror(rawValue)) }

    public static let inProgress = Errno(EINPROGRESS)
    public static let canceled = Errno(ECANCELED)
    public static let invalid = Errno(EINVAL)
    public static let badFD = Errno(EBADF)
    public static let again = Errno(EAGAIN)
    public static let interrupted = Errno(EINTR)
    public static let timedOut = Errno(ETIMEDOUT)
    public static let io = Errno(EIO)
    public static let illegalSeek = Errno(ESPIPE)
}

/// Runs `call` until it does not fail with EINTR (unless told not to retry).
@inline(__always)
func valueOrErrno<I: FixedWidthInteger>(retryOnInterrupt: Bool = true, _ call: () -> I) -> Result<I, Errno> {
    while true {
        let r = call()
        if r != -1 { return .success(r) }
        let e = Errno.current
        if e == .interrupted && retryOnInterrupt { continue }
        return .failure(e)
    }
}

/// pread/pwrite through CUAIO's raw system calls (no cancellation-point wrapper: cuaio.h).
@inline(never) func system_pread(_ fd: CInt, _ buf: UnsafeMutableRawPointer?, _ n: Int, _ off: Int64) -> Result<Int, Errno> {
    valueOrNegatedErrno { cuaio_pread(fd, buf, n, off_t(off)) }
}
@inline(never) func system_pwrite(_ fd: CInt, _ buf: UnsafeRawPointer?, _ n: Int, _ off: Int64) -> Result<Int, Errno> {
    valueOrNegatedErrno { cuaio_pwrite(fd, buf, n, off_t(off)) }
}

/// Runs `call`, which returns a count or -errno, until it does not fail with EINTR.
@inline(__always)
func valueOrNegatedErrno(_ call: () -> Int) -> Result<Int, Errno> {
    while true {
        let r = call()
        if r >= 0 { return .success(r) }
        if r == -Int(EINTR) { continue }
        return .failure(Errno(CInt(-r)))
    }
}
/// read(2)/write(2); `interruptible`: EINTR is returned, not retried (the pool's cancellation).
@inline(never) func system_read(_ fd: CInt, _ buf: UnsafeMutableRawPointer?, _ n: Int, interruptible: Bool = false)
    -> Result<Int, Errno>
{
    valueOrErrno(retryOnInterrupt: !interruptible) { read(fd, buf, n) }
}
@inline(never) func system_write(_ fd: CInt, _ buf: UnsafeRawPointer?, _ n: Int, interruptible: Bool = false)
    -> Result<Int, Errno>
{
    valueOrErrno(retryOnInterrupt: !interruptible) { write(fd, buf, n) }
}
/// What a read that must not block did.
enum NoWaitRead {
    case done(Result<Int, Errno>)
    /// The data is not in memory: the read would wait for the device.
    case wouldBlock
    /// The file system has no RWF_NOWAIT (tmpfs, FUSE, NFS...).
    case unsupported
}

/// One try at a page-cache read that never blocks.
@inline(never) func system_preadNoWait(_ fd: CInt, _ buf: UnsafeMutableRawPointer?, _ n: Int, _ off: Int64)
    -> NoWaitRead
{
    let r = cuaio_pread_nowait(fd, buf, n, off_t(off))
    if r >= 0 { return .done(.success(r)) }
    switch CInt(-r) {
    case EAGAIN, EINTR: return .wouldBlock
    case EOPNOTSUPP: return .unsupported
    case let e: return .done(.failure(Errno(e)))
    }
}

/// Whether `fd` is on tmpfs or ramfs (false when unknown).
@inline(never) func system_inMemory(_ fd: CInt) -> Bool { cuaio_fd_in_memory(fd) == 1 }
@inline(never) func system_fsync(_ fd: CInt) -> Result<CInt, Errno> { valueOrErrno { fsync(fd) } }
@inline(never) func system_fdatasync(_ fd: CInt) -> Result<CInt, Errno> { valueOrErrno { fdatasync(fd) } }

/// What the engine needs of an fstat: which file, and what kind. (Not the 144-byte stat:
/// copying that through Results and optionals cost more than the rest of a lookup.)
struct FileIdentity {
    var device: UInt64
    var inode: UInt64
    var mode: mode_t
}

@inline(never) func system_fstat(_ fd: CInt) -> Result<FileIdentity, Errno> {
    var st = stat()
    guard fstat(fd, &st) == 0 else { return .failure(.current) }  // (fstat never fails with EINTR)
    return .success(FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), mode: st.st_mode))
}
/// fcntl(F_DUPFD_CLOEXEC): a second number for the same open file.
@inline(never) func system_dup(_ fd: CInt) -> Result<CInt, Errno> { valueOrErrno { fcntl(fd, F_DUPFD_CLOEXEC, 0) } }

/// readv/writev, or preadv/pwritev at `offset`; `interruptible` as for read.
@inline(never) func system_readv(_ fd: CInt, _ iov: UnsafePointer<iovec>?, _ n: Int, offset: Int64?,
                                 interruptible: Bool = false) -> Result<Int, Errno> {
    valueOrErrno(retryOnInterrupt: !interruptible) {
        if let offset { preadv(fd, iov, CInt(n), off_t(offset)) } else { readv(fd, iov, CInt(n)) }
    }
}
@inline(never) func system_writev(_ fd: CInt, _ iov: UnsafePointer<iovec>?, _ n: Int, offset: Int64?,
                                  interruptible: Bool = false) -> Result<Int, Errno> {
    valueOrErrno(retryOnInterrupt: !interruptible) {
        if let offset { pwritev(fd, iov, CInt(n), off_t(offset)) } else { writev(fd, iov, CInt(n)) }
    }
}

/// An eventfd used as a doorbell: add one (wakes its poller) / take everything (resets it).
@inline(never) func system_eventfdSignal(_ fd: CInt) {
    var one: UInt64 = 1
    _ = write(fd, &one, 8)
}
@inline(never) func system_eventfdDrain(_ fd: CInt) {
    var count: UInt64 = 0
    _ = read(fd, &count, 8)
}
enum PollResult { case readable, timedOut, notOpen }
/// ppoll(2) for POLLIN on one fd, for at most `timeoutNs` (a negative fd: just the sleep).
@inline(never) func system_pollIn(_ fd: CInt, timeoutNs: UInt64) -> PollResult {
    switch cuaio_poll_in(fd, timeoutNs) {
    case 0: .timedOut
    case 1: .readable
    default: .notOpen
    }
}

/// fcntl(F_GETFL): the open file description's status flags and access mode.
/// A uaio_ops.h operation's system call (ops.c: EINTR retried there, except close's).
@inline(never) func system_extended(_ cb: AIOCB?) -> Result<Int, Errno> {
    let r = cuaio_op_perform(cb)
    return r >= 0 ? .success(r) : .failure(Errno(CInt(-r)))
}
@inline(never) func system_getfl(_ fd: CInt) -> Result<CInt, Errno> { valueOrErrno { fcntl(fd, F_GETFL) } }

@inline(never) func system_mmapAnonymous(_ bytes: Int) -> UnsafeMutableRawPointer? {
    let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    return p == MAP_FAILED ? nil : p
}
