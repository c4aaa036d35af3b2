// Submitting the operations of uaio_ops.h (a uaiocb: an aiocb followed by the operation and
// its arguments). They share everything with aio_read (slots, notification, lio_listio,
// aio_suspend, cancellation, the completion ring) except file ordering: none is ordered with
// other requests, so they never enter the file table. The pool runs them with ops.c's system
// calls, the ring with ops.c's SQE preparation.
//
// Inline first, as io_uring does in the kernel for openat: an openat or a statx whose path is
// all in the kernel's lookup caches (openat2 with RESOLVE_CACHED, 5.12; statx through an
// O_PATH fd opened so), and a close, run on the submitting thread, as the submitter, with no
// thread hop; anything else, or a cache miss, is queued. (A statx that still took long, a
// network file system asking its server, turns inline statx off for the process: ops.c.)
//
// Identity: an operation that resolves a path or checks the caller (Opcode.needsCredentials)
// must run as the thread that submitted it. On the ring that is free: the submitting thread
// enters the kernel itself, and io_uring keeps its credentials for work it hands to io-wq.
// For the pool, the submitter's fsuid, fsgid and groups are taken here (three system calls,
// only for those operations) and the worker takes them on around the call (WorkerPool).
import CUAIO
import Glibc

extension Engine {
    /// The operation a uaiocb names; nil for an unknown one (EINVAL).
    public static func extendedOpcode(_ cb: AIOCB) -> Opcode? {
        Opcode(uaioOp: UnsafeMutableRawPointer(cb).assumingMemoryBound(to: uaiocb.self).pointee.uaio_op)
    }

    func queueExtended(_ cb: AIOCB, _ opcode: Opcode, reqprio: CInt, _ notification: Notification, group: UInt32,
                       _ deferred: inout Deferred) -> Errno?
    {
        if tryInline && (opcode == .openat || opcode == .statx || opcode == .close) && !cb.isInProgress(pid: pid) {
            let start = cuaio_now_ns()
            let r = cuaio_op_inline(cb)
            if r != -EAGAIN {
                let result: Result<Int, Errno> = r >= 0 ? .success(r) : .failure(Errno(CInt(-r)))
                finishInline(cb, opcode, result, notification, latencyNs: cuaio_now_ns() &- start, &deferred)
                return nil
            }
        }
        // The ring takes it unless its arguments do not fit an SQE (routes never change for
        // these: the ring does not send them back) or this thread is exiting (URingBackend+Exit).
        // Elsewhere, the pool needs the identity.
        let onRing = uring?.routes(opcode) == true && cuaio_op_ring_fits(cb) != 0
            && cuaio_thread_ring(Unmanaged.passUnretained(self).toOpaque()) != nil
        var creds = cuaio_creds()
        let keepsCredentials = opcode.needsCredentials && !onRing
        if keepsCredentials {
            if cuaio_creds_take(&creds) != 0 {  // (ENOMEM for a long group list: a resource, EAGAIN)
                cuaio_creds_release(&creds)
                return .again
            }
        }
        lock(holding: &deferred)
        defer { lock.unlock() }
        guard liveRequest(for: cb) == nil, let r = requests.take() else {
            cuaio_creds_release(&creds)
            if liveRequest(for: cb) != nil { return .invalid }
            deferred.fullWhileRetiring = cuaio_load_u32_seqcst(retiring) != 0
            return .again
        }
        let s = requests[r]
        let generation = s.pointee.generation
        s.pointee.cb = cb
        s.pointee.opcode = opcode
        s.pointee.fd = cb.pointee.aio_fildes
        s.pointee.reqprio = reqprio
        s.pointee.buffer = UnsafeMutableRawPointer(mutating: cb.pointee.aio_buf)
        s.pointee.nbytes = Int(cb.pointee.aio_nbytes)
        s.pointee.offset = Int64(cb.pointee.aio_offset)
        s.pointee.notification = notification
        s.pointee.file = nilIndex
        s.pointee.group = group
        s.pointee.workClass = .bounded
        s.pointee.positioned = true
        s.pointee.mayBlock = true  // metadata waits for the disk as often as not
        s.pointee.inMemory = false
        s.pointee.lane = .none
        s.pointee.hasCredentials = keepsCredentials
        if keepsCredentials { (credentials + Int(r)).initialize(to: creds) }
        s.pointee.submittedNs = cuaio_now_ns()
        if group != nilIndex { groups[group].pointee.remaining += 1 }
        cb.markInProgress(slot: r, generation: generation, pid: pid)
        makeReadyLocked(r, &deferred)
        return nil
    }
}
