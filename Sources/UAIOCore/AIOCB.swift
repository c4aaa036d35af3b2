// The fields of a user's aiocb that are ours (glibc's private ones) and what we keep there.
//
//   __error_code    EINPROGRESS, then the request's errno (0 on success): written last, with
//                   release, by whoever ends the request; read with acquire (CUAIO).
//   __return_value  the result; written before __error_code.
//   __glibc_reserved[0..15], four 32-bit words:
//     [0] tag: `submitted` once we accepted the request (or failed it inside lio_listio),
//         `returned` after aio_return took the result. Anything else: an aiocb we never saw.
//     [1] the request's slot, [2] its generation: cancellation finds the request in O(1),
//         and a stale aiocb (reused, or a forked child's copy) never matches a live slot.
//     [3] the pid of the process that submitted it.
//
// Everything here is lock-free, so aio_error and aio_return are async-signal-safe.
import CUAIO
import Glibc

public typealias AIOCB = UnsafeMutablePointer<aiocb>

enum AIOCBTag {
    static let submitted: UInt32 = 0x5541_4931  // "UAI1"
    static let returned: UInt32 = 0x5541_4930  // "UAI0"
}

extension UnsafeMutablePointer where Pointee == aiocb {
    var errorCode: CInt { cuaio_cb_error_load(self) }

    /// Stores a final result: the value first, then the error code with release.
    func storeResult(_ result: Result<Int, Errno>) {
        switch result {
        case .success(let n):
            cuaio_cb_return_store(self, n)
            cuaio_cb_error_store(self, 0)
        case .failure(let e):
            cuaio_cb_return_store(self, -1)
            cuaio_cb_error_store(self, e.rawValue)
        }
    }

    func markInProgress(slot: UInt32, generation: UInt32, pid: pid_t) {
        cuaio_cb_tag_store(self, 1, slot)
        cuaio_cb_tag_store(self, 2, generation)
        cuaio_cb_tag_store(self, 3, UInt32(bitPattern: pid))
        cuaio_cb_tag_store(self, 0, AIOCBTag.submitted)
        cuaio_cb_error_store(self, EINPROGRESS)
    }

    /// A request that failed before it was queued (inside lio_listio): aio_error tells why.
    func markFailed(_ e: Errno, pid: pid_t) {
        cuaio_cb_tag_store(self, 1, nilIndex)
        cuaio_cb_tag_store(self, 3, UInt32(bitPattern: pid))
        cuaio_cb_tag_store(self, 0, AIOCBTag.submitted)
        storeResult(.failure(e))
    }

    var tagSlot: UInt32 { cuaio_cb_tag_load(self, 1) }
    var tagGeneration: UInt32 { cuaio_cb_tag_load(self, 2) }
    var tagPid: pid_t { pid_t(bitPattern: cuaio_cb_tag_load(self, 3)) }
    var isOurs: Bool {
        let t = cuaio_cb_tag_load(self, 0)
        return t == AIOCBTag.submitted || t == AIOCBTag.returned
    }

    /// True while the request is running in this process: EINPROGRESS, tagged by us, by this
    /// process (a forked child's copy of its parent's aiocb is never in progress in the child).
    func isInProgress(pid: pid_t?) -> Bool {
        errorCode == EINPROGRESS && cuaio_cb_tag_load(self, 0) == AIOCBTag.submitted && pid != nil && tagPid == pid
    }

    /// aio_return's hand-off: the first call after completion gets the result.
    func takeResult() -> Int? {
        guard cuaio_cb_tag_cas(self, 0, AIOCBTag.submitted, AIOCBTag.returned) != 0 else { return nil }
        return cuaio_cb_return_load(self)
    }
}

/// aio_error and aio_return over the fields above.
public enum AIOStatus {
    /// aio_error: EINPROGRESS, 0, ECANCELED or the request's errno; .invalid for an aiocb we
    /// never saw, or one in progress in another process (a forked child's copy).
    public static func error(_ cb: AIOCB) -> Result<CInt, Errno> {
        // The engine only for a request in progress: the usual answer is two loads.
        guard cb.isOurs, cb.errorCode == EINPROGRESS else { return error(cb, engine: nil) }
        return Engine.withExisting { error(cb, engine: $0) } ?? error(cb, engine: nil)
    }

    /// aio_error against `engine`, the one that runs the request (tests build their own).
    public static func error(_ cb: AIOCB, engine: Engine?) -> Result<CInt, Errno> {
        guard cb.isOurs else { return .failure(.invalid) }
        let e = cb.errorCode
        guard e == EINPROGRESS else { return .success(e) }
        return engine?.errorInProgress(cb) ?? .failure(.invalid)
    }

    /// aio_return: the result, the first time only; .invalid while in progress or afterwards.
    public static func takeReturn(_ cb: AIOCB) -> Result<Int, Errno> {
        Engine.withExisting { takeReturn(cb, engine: $0) } ?? takeReturn(cb, engine: nil)
    }

    /// aio_return against `engine`, the one that ran the request (tests build their own).
    public static func takeReturn(_ cb: AIOCB, engine: Engine?) -> Result<Int, Errno> {
        guard cb.isOurs, cb.errorCode != EINPROGRESS else { return .failure(.invalid) }
        // First: a reaper must not hand out an aiocb returned (and maybe freed) here.
        guard engine?.reapedByReturn(cb) != false, let r = cb.takeResult() else { return .failure(.invalid) }
        return .success(r)
    }
}
