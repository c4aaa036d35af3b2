// The C ABI: glibc's 17 AIO entry points, plain and *64 (the same struct on x86_64), each a
// line or two over the engine. This is the only place that writes errno or returns -1.
// compat/exports.map keeps every other symbol local.
import CUAIO
import Glibc
import UAIOCore

@inline(__always) private func fail(_ e: Errno) -> CInt {
    errno = e.rawValue
    return -1
}

@inline(__always) private func submit(_ cb: AIOCB?, _ opcode: Opcode) -> CInt {
    guard let cb else { return fail(.invalid) }
    if let e = Engine.submitToCurrent(cb, opcode) { return fail(e) }
    return 0
}

/// The corresponding C function is `aio_read(3)`.
@_cdecl("aio_read") public func uaio_export_aio_read(_ cb: AIOCB?) -> CInt { submit(cb, .read) }
@_cdecl("aio_read64") public func uaio_export_aio_read64(_ cb: AIOCB?) -> CInt { submit(cb, .read) }

/// The corresponding C function is `aio_write(3)`.
@_cdecl("aio_write") public func uaio_export_aio_write(_ cb: AIOCB?) -> CInt { submit(cb, .write) }
@_cdecl("aio_write64") public func uaio_export_aio_write64(_ cb: AIOCB?) -> CInt { submit(cb, .write) }

/// FreeBSD's `aio_readv(2)`/`aio_writev(2)`: `aio_buf` is a `struct iovec` array and
/// `aio_nbytes` its count (uaio.h). Everything else as for aio_read/aio_write.
@_cdecl("aio_readv") public func uaio_export_aio_readv(_ cb: AIOCB?) -> CInt { submit(cb, .readv) }
@_cdecl("aio_writev") public func uaio_export_aio_writev(_ cb: AIOCB?) -> CInt { submit(cb, .writev) }

/// uaio_ops.h: submits a struct uaiocb (its aiocb's address) for the operation its uaio_op names.
@_cdecl("uaio_submit") public func uaio_export_uaio_submit(_ cb: AIOCB?) -> CInt {
    guard let cb else { return fail(.invalid) }
    guard let op = Engine.extendedOpcode(cb) else { return fail(.invalid) }
    return submit(cb, op)
}

/// The corresponding C function is `aio_fsync(3)`: O_SYNC or O_DSYNC, a barrier for every
/// earlier request on the same file.
@_cdecl("aio_fsync") public func uaio_export_aio_fsync(_ op: CInt, _ cb: AIOCB?) -> CInt { fsync(op, cb) }
@_cdecl("aio_fsync64") public func uaio_export_aio_fsync64(_ op: CInt, _ cb: AIOCB?) -> CInt { fsync(op, cb) }

private func fsync(_ op: CInt, _ cb: AIOCB?) -> CInt {
    switch op {
    case O_SYNC: submit(cb, .fsync)
    case O_DSYNC: submit(cb, .fdatasync)
    default: fail(.invalid)
    }
}

/// The corresponding C function is `aio_error(3)`. Async-signal-safe.
@_cdecl("aio_error") public func uaio_export_aio_error(_ cb: AIOCB?) -> CInt { error(cb) }
@_cdecl("aio_error64") public func uaio_export_aio_error64(_ cb: AIOCB?) -> CInt { error(cb) }

private func error(_ cb: AIOCB?) -> CInt {
    guard let cb else { return fail(.invalid) }
    switch AIOStatus.error(cb) {
    case .success(let e): return e
    case .failure(let e): return fail(e)
    }
}

/// The corresponding C function is `aio_return(3)`: the result, once. Async-signal-safe.
@_cdecl("aio_return") public func uaio_export_aio_return(_ cb: AIOCB?) -> Int { takeReturn(cb) }
@_cdecl("aio_return64") public func uaio_export_aio_return64(_ cb: AIOCB?) -> Int { takeReturn(cb) }

private func takeReturn(_ cb: AIOCB?) -> Int {
    guard let cb else { return Int(fail(.invalid)) }
    switch AIOStatus.takeReturn(cb) {
    case .success(let r): return r
    case .failure(let e): return Int(fail(e))
    }
}

/// The corresponding C function is `aio_suspend(3)`. Async-signal-safe.
@_cdecl("aio_suspend")
public func uaio_export_aio_suspend(_ list: UnsafePointer<AIOCB?>?, _ n: CInt, _ timeout: UnsafePointer<timespec>?)
    -> CInt
{ suspend(list, n, timeout) }
@_cdecl("aio_suspend64")
public func uaio_export_aio_suspend64(_ list: UnsafePointer<AIOCB?>?, _ n: CInt, _ timeout: UnsafePointer<timespec>?)
    -> CInt
{ suspend(list, n, timeout) }

/// A relative timeout in nanoseconds: nil for none (NULL, or centuries); .invalid if malformed.
private func nanoseconds(_ timeout: UnsafePointer<timespec>?) -> Result<UInt64?, Errno> {
    guard let t = timeout?.pointee else { return .success(nil) }
    guard t.tv_sec >= 0, t.tv_nsec >= 0, t.tv_nsec < 1_000_000_000 else { return .failure(.invalid) }
    if t.tv_sec > 1 << 32 { return .success(nil) }  // centuries: as good as no timeout
    return .success(UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec))
}

private func suspend(_ list: UnsafePointer<AIOCB?>?, _ n: CInt, _ timeout: UnsafePointer<timespec>?) -> CInt {
    guard n >= 0, n == 0 || list != nil, case .success(let ns) = nanoseconds(timeout) else { return fail(.invalid) }
    guard let list, n > 0 else { return 0 }
    if let e = Engine.suspend(list, count: Int(n), timeoutNs: ns) { return fail(e) }
    return 0
}

/// FreeBSD's `aio_waitcomplete(2)`: waits for the next completed request, stores its aiocb in
/// `*cbp` and returns its result as aio_return would (which it also is: the request is
/// reaped); -1 with the request's errno if it failed. -1/EAGAIN (EWOULDBLOCK) when nothing is
/// outstanding or the timeout passed ({0, 0}: a poll; NULL: no limit), EINTR, EINVAL.
@_cdecl("aio_waitcomplete")
public func uaio_export_aio_waitcomplete(_ cbp: UnsafeMutablePointer<AIOCB?>?, _ timeout: UnsafeMutablePointer<timespec>?)
    -> Int
{
    cbp?.pointee = nil
    guard let cbp, case .success(let ns) = nanoseconds(timeout) else { return Int(fail(.invalid)) }
    guard let engine = Engine.current() else { return Int(fail(.again)) }
    switch engine.waitComplete(timeoutNs: ns) {
    case .success(let (cb, result)):
        cbp.pointee = cb
        switch result {
        case .success(let v): return v
        case .failure(let e): return Int(fail(e))
        }
    case .failure(let e): return Int(fail(e))
    }
}

/// illumos' `aio_waitn(3C)`: waits until at least `*nwait` requests have completed and puts up
/// to `nent` of them in `list` (results still to be taken with aio_return); `*nwait` becomes
/// how many. 0, or -1 with ETIME (timeout; `*nwait` filled all the same), EINTR, EAGAIN
/// (nothing outstanding), EINVAL (`*nwait` > `nent`, NULLs, a bad timeout).
@_cdecl("aio_waitn")
public func uaio_export_aio_waitn(_ list: UnsafeMutablePointer<AIOCB?>?, _ nent: UInt32,
                                  _ nwait: UnsafeMutablePointer<UInt32>?, _ timeout: UnsafePointer<timespec>?) -> CInt
{
    guard let list, let nwait, nent > 0, nent <= UInt32(Engine.maxListLength), nwait.pointee <= nent,
          case .success(let ns) = nanoseconds(timeout)
    else { return fail(.invalid) }
    guard let engine = Engine.current() else { return fail(.again) }
    let (got, error) = engine.waitN(list, count: Int(nent), atLeast: Int(nwait.pointee), timeoutNs: ns)
    nwait.pointee = UInt32(got)
    switch error {
    case nil: return 0
    case .timedOut?: return fail(Errno(ETIME))
    case let e?: return fail(e)
    }
}

/// An eventfd (non-blocking, close-on-exec; libuaio's: do not close it) that is readable while
/// completed requests wait for aio_waitcomplete or aio_waitn, for epoll loops. -1 with errno.
@_cdecl("uaio_eventfd") public func uaio_export_uaio_eventfd() -> CInt {
    guard let engine = Engine.current() else { return fail(.again) }
    switch engine.reapEventFD() {
    case .success(let fd): return fd
    case .failure(let e): return fail(e)
    }
}

/// The corresponding C function is `aio_cancel(3)`.
@_cdecl("aio_cancel") public func uaio_export_aio_cancel(_ fd: CInt, _ cb: AIOCB?) -> CInt { cancel(fd, cb) }
@_cdecl("aio_cancel64") public func uaio_export_aio_cancel64(_ fd: CInt, _ cb: AIOCB?) -> CInt { cancel(fd, cb) }

private func cancel(_ fd: CInt, _ cb: AIOCB?) -> CInt {
    if let cb, cb.pointee.aio_fildes != fd { return fail(.invalid) }
    // AT_FDCWD is no fd, but a uaiocb's path operation may name it: its aiocb is what counts.
    if fcntl(fd, F_GETFD) == -1 && !(fd == AT_FDCWD && cb != nil) { return fail(.badFD) }
    guard let engine = Engine.existing() else { return CInt(AIO_ALLDONE) }
    return engine.cancel(fd: fd, cb)
}

/// The corresponding C function is `lio_listio(3)`.
@_cdecl("lio_listio")
public func uaio_export_lio_listio(_ mode: CInt, _ list: UnsafePointer<AIOCB?>?, _ n: CInt,
                                   _ sig: UnsafeMutablePointer<sigevent>?) -> CInt
{ listIO(mode, list, n, sig) }
@_cdecl("lio_listio64")
public func uaio_export_lio_listio64(_ mode: CInt, _ list: UnsafePointer<AIOCB?>?, _ n: CInt,
                                     _ sig: UnsafeMutablePointer<sigevent>?) -> CInt
{ listIO(mode, list, n, sig) }

private func listIO(_ mode: CInt, _ list: UnsafePointer<AIOCB?>?, _ n: CInt, _ sig: UnsafeMutablePointer<sigevent>?)
    -> CInt
{
    guard mode == LIO_WAIT || mode == LIO_NOWAIT, n >= 0, n <= Engine.maxListLength, n == 0 || list != nil else {
        return fail(.invalid)
    }
    var notification = Notification.none
    if mode == LIO_NOWAIT, let sig {
        guard let n = Notification(sig) else { return fail(.invalid) }
        notification = n
    }
    guard let engine = Engine.current() else { return fail(.again) }
    guard let list else {
        notification.deliver(pid: engine.pid)  // an empty list is complete at once
        return 0
    }
    if let e = engine.listIO(list, count: Int(n), wait: mode == LIO_WAIT, listNotification: notification) {
        return fail(e)
    }
    return 0
}

/// The corresponding C function is `aio_init(3)`: applies where the environment is silent.
@_cdecl("aio_init") public func uaio_export_aio_init(_ settings: UnsafePointer<cuaio_aioinit>?) {
    guard let i = settings?.pointee else { return }
    cuaio_aioinit_store(max(0, i.aio_threads), max(0, i.aio_num), max(0, i.aio_idle_time))
    Engine.existing()?.applyAioInit(threads: Int(i.aio_threads), idleSeconds: Int(i.aio_idle_time))
}

// MARK: extensions (compat/include/uaio.h)

/// Requests this process submitted through libuaio (proof that we, not glibc, served them).
@_cdecl("uaio_requests_submitted") public func uaio_export_requests_submitted() -> UInt64 {
    Engine.existing()?.submittedCount ?? 0
}

/// Requests submitted and not yet complete.
@_cdecl("uaio_requests_in_flight") public func uaio_export_requests_in_flight() -> CInt {
    CInt(Engine.existing()?.inFlight ?? 0)
}

/// "uring" or "pool": where this process sends `operation` ("read", "write", "fsync",
/// "fdatasync") now; NULL for an unknown name.
@_cdecl("uaio_backend_for") public func uaio_export_backend_for(_ operation: UnsafePointer<CChar>?) -> UnsafePointer<CChar>? {
    guard let operation, let op = Opcode.allCases.first(where: { $0.name == String(cString: operation) }),
          let engine = Engine.current()
    else { return nil }
    return engine.backend(for: op) == .uring ? cuaio_name_uring() : cuaio_name_pool()
}

/// The version of libuaio, as "MAJOR.MINOR.PATCH".
@_cdecl("uaio_version") public func uaio_export_version() -> UnsafePointer<CChar> {
    cuaio_version()
}
