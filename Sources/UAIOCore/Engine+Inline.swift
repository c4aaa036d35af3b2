// The inline read: a read whose data is in memory completes on the submitting thread (the
// page cache with preadv2(RWF_NOWAIT), tmpfs and ramfs with a plain pread), with no slot, no
// lock and no thread hop.
import CUAIO
import Glibc

extension Engine {
    enum InlineOutcome {
        case completed
        /// Not done inline; the fd's F_GETFL flags if they were read.
        case declined(flags: CInt?)
    }

    /// The fast path for page-cache hits, io_uring's "inline first" in user space: a read on
    /// a file whose data is cached completes here, on the submitting thread, with one
    /// preadv2(RWF_NOWAIT) (one pread on tmpfs and ramfs, which refuse RWF_NOWAIT and never
    /// wait), with no slot, no lock and no thread hop. Anything else (not
    /// cached, partly cached, O_DIRECT, a stream, an error) is declined and takes the
    /// normal path, which redoes the read from the start. Reads on regular files obey no
    /// ordering rule, so finishing one early reorders nothing.
    func readInline(_ cb: AIOCB, _ notification: Notification, _ deferred: inout Deferred) -> InlineOutcome {
        let fd = cb.pointee.aio_fildes
        var flags: CInt? = nil
        let hint = files.readHint(fd)
        if hint != .buffered && hint != .memory {  // a wrong hint costs one slow read: ReadHint
            guard case .success(let f) = system_getfl(fd) else { return .declined(flags: nil) }
            files.setReadHint(fd, ReadHint(flags: f))
            flags = f
            guard f & cuaio_o_direct() == 0 else { return .declined(flags: f) }
        }
        guard cb.pointee.aio_offset >= 0, cb.pointee.aio_nbytes <= Self.inlineMaxBytes else { return .declined(flags: flags) }
        let start = cuaio_now_ns()
        let n = cb.pointee.aio_nbytes
        let offset = Int64(cb.pointee.aio_offset)
        let buffer = UnsafeMutableRawPointer(mutating: cb.pointee.aio_buf)
        var result: NoWaitRead
        if hint == .memory {
            result = .done(system_pread(fd, buffer, n, offset))
        } else {
            result = system_preadNoWait(fd, buffer, n, offset)
            if case .unsupported = result, system_inMemory(fd) {
                // tmpfs/ramfs: no RWF_NOWAIT, but nothing to wait for either.
                files.setReadHint(fd, .memory)
                result = .done(system_pread(fd, buffer, n, offset))
            }
        }
        guard case .done(.success(let got)) = result, got == n || got == 0  // all of it, or end of file
        else { return .declined(flags: flags) }
        let elapsed = cuaio_now_ns() &- start
        // Slower than a copy from memory can be: the device's time, maybe an fd that became
        // O_DIRECT behind a stale hint; look at its flags again next time.
        if elapsed > Self.inlineCopyBudgetNs + UInt64(n) / 2 { files.setReadHint(fd, .unknown) }
        finishInline(cb, .read, .success(got), notification, latencyNs: elapsed, &deferred)
        return .completed
    }

    /// Ends a request done on the submitting thread: it never had a slot or a lock. Delivered
    /// at once, but inside a lio_listio that holds the ring's SQ lock at the list's end (a
    /// delivery's doorbell takes that lock).
    func finishInline(_ cb: AIOCB, _ opcode: Opcode, _ result: Result<Int, Errno>, _ notification: Notification,
                      latencyNs: UInt64, _ deferred: inout Deferred)
    {
        let d = endInline(cb, opcode, result, notification, latencyNs: latencyNs)
        if deferred.holdsSQ { deferred.deliveries.append(d) } else { deliver(d) }
    }

    /// finishInline's result and counters, with the delivery left to the caller (to defer it
    /// past a held SQ lock).
    func endInline(_ cb: AIOCB, _ opcode: Opcode, _ result: Result<Int, Errno>, _ notification: Notification,
                   latencyNs: UInt64) -> Delivery
    {
        cb.markInProgress(slot: nilIndex, generation: 0, pid: pid)
        storeResult(cb, result)  // and counts it
        var record = CompletionRecord()
        record.request = nilIndex
        record.opcode = opcode.rawValue
        switch result {
        case .success(let n): record.result = Int64(n)
        case .failure(let e): record.error = e.rawValue; record.result = -1
        }
        record.latencyNs = latencyNs
        return Delivery(record: record, published: false, notification: notification, listNotification: .none)
    }
}
