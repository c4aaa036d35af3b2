import Glibc
import Testing

@testable import UAIOCore

/// The ordering rules alone, on a file table and request slots, without threads.
@Suite struct FileTableTests {
    let requests = SlotPool<RequestSlot>(capacity: 64)!
    let table = FileTable(capacity: 64)!

    private func file(_ mode: mode_t, inode: Int = 7, fd: CInt = 3) -> UInt32 {
        let id = FileIdentity(device: 1, inode: UInt64(inode), mode: mode)
        return table.attach(fd: fd, status: id, kind: FileKind(mode: mode) { false }, flags: O_RDWR)!.file
    }

    /// Submits `opcode` in `lane` through `fd`; returns its index and whether it may start.
    private func enter(_ f: UInt32, _ opcode: Opcode, _ lane: Lane = .none, fd: CInt = 3) -> (UInt32, Bool) {
        let r = requests.take()!
        let s = requests[r]
        s.pointee.fd = fd
        s.pointee.opcode = opcode
        s.pointee.lane = lane
        s.pointee.file = f
        let ready = table.enter(r, s, requests: requests)
        s.pointee.state = ready ? .running : .held
        return (r, ready)
    }

    /// Also checks `completionReadies` (which lets a waiter in aio_suspend complete the request
    /// itself): it must never say "nothing" when leaving readies something.
    private func leave(_ r: UInt32) -> [UInt32] {
        let predicted = table.completionReadies(requests[r], requests: requests)
        let (a, b) = table.leave(r, requests[r], requests: requests)
        #expect(predicted || (a == nilIndex && b == nilIndex), "completionReadies missed what leave readied")
        requests[r].pointee.state = .free
        requests.give(r)
        return [a, b].filter { $0 != nilIndex }
    }

    @Test func fsyncWaitsForEveryEarlierRequestAndNoLaterOne() {
        let f = file(S_IFREG)
        let (r1, ok1) = enter(f, .read)
        let (w2, ok2) = enter(f, .write)
        let (s3, ok3) = enter(f, .fsync)
        let (r4, ok4) = enter(f, .read)
        #expect(ok1 && ok2 && !ok3 && ok4)  // parallel, barrier, later read not held back
        #expect(leave(w2).isEmpty)  // r1 is still earlier than the fsync
        #expect(leave(r4).isEmpty)
        #expect(leave(r1) == [s3])  // now the fsync heads the file
    }

    /// Reads and positioned writes in flight together ready nothing when one ends, so the
    /// waiter in aio_suspend may complete them itself; the last request before a held fsync
    /// readies it.
    @Test func completionsThatReadyNothingAreToldApart() {
        let f = file(S_IFREG)
        let (r1, _) = enter(f, .read)
        let (w2, _) = enter(f, .write)
        let (r3, _) = enter(f, .read)
        #expect(!table.completionReadies(requests[r1], requests: requests))
        #expect(!table.completionReadies(requests[w2], requests: requests))
        let (s4, _) = enter(f, .fsync)
        #expect(!table.completionReadies(requests[r1], requests: requests))  // w2 and r3 still before s4
        #expect(leave(w2).isEmpty && leave(r3).isEmpty)
        #expect(table.completionReadies(requests[r1], requests: requests))  // now s4 waits for r1 alone
        #expect(leave(r1) == [s4] && leave(s4).isEmpty)
    }

    @Test func appendWritesRunOneAtATimeInOrder() {
        let f = file(S_IFREG)
        let (a, okA) = enter(f, .write, .append)
        let (b, okB) = enter(f, .write, .append)
        let (c, okC) = enter(f, .write, .append)
        let (p, okP) = enter(f, .write)  // positioned: not in the lane
        #expect(okA && !okB && !okC && okP)
        #expect(leave(a) == [b])
        #expect(leave(b) == [c])
        #expect(leave(c).isEmpty && leave(p).isEmpty)
    }

    @Test func streamDirectionsAreIndependentLanes() {
        let f = file(S_IFIFO)
        let (r1, ok1) = enter(f, .read, .streamRead)
        let (r2, ok2) = enter(f, .read, .streamRead)
        let (w1, ok3) = enter(f, .write, .streamWrite)
        #expect(ok1 && !ok2 && ok3)
        #expect(leave(w1).isEmpty)
        #expect(leave(r1) == [r2])
        #expect(leave(r2).isEmpty)
    }

    @Test func cancellingAHeldRequestFromTheMiddleOfALane() {
        let f = file(S_IFSOCK)
        let (r1, _) = enter(f, .read, .streamRead)
        let (r2, _) = enter(f, .read, .streamRead)
        let (r3, _) = enter(f, .read, .streamRead)
        #expect(leave(r2).isEmpty)  // cancelled while held
        #expect(leave(r1) == [r3])
        #expect(leave(r3).isEmpty)
    }

    /// Two fds share the file (its ordering), but each number's cache entry lives only while
    /// requests submitted through that number are in flight: a number whose requests are done
    /// may be closed and reopened for another file while the first stays busy through the other.
    @Test func dupedFDsShareTheFileAndEachNumbersCacheDiesWithItsLastRequest() {
        let f = file(S_IFREG, fd: 3)
        let g = file(S_IFREG, fd: 4)  // same inode through another fd
        #expect(f == g)
        let (r, _) = enter(f, .read, fd: 3)
        #expect(table.cached(3)?.file == f && table.cached(4) == nil)
        #expect(table.cached(5) == nil)  // never seen: zeroed memory is no entry
        let (q, _) = enter(f, .read, fd: 4)
        #expect(table.cached(4)?.file == f)
        #expect(leave(r).isEmpty)
        #expect(table.cached(3) == nil && table.cached(4)?.file == f)  // the file is still busy
        #expect(leave(q).isEmpty)
        #expect(table.cached(3) == nil && table.cached(4) == nil)
    }
}

@Suite struct SlotPoolTests {
    @Test func takesUpToCapacityAndReusesWhatIsGiven() {
        let pool = SlotPool<RequestSlot>(capacity: 3)!
        let a = pool.take(), b = pool.take(), c = pool.take()
        #expect([a, b, c] == [0, 1, 2])
        #expect(pool.take() == nil)
        pool[1].pointee.fd = 42
        let generation = pool[1].pointee.generation
        pool.give(1)
        #expect(pool.live == 2)
        #expect(pool.take() == 1)
        #expect(pool[1].pointee.generation == generation &+ 1)  // a stale (1, generation) never matches
        #expect(pool[1].pointee.fd == -1)  // everything else is fresh
    }

    /// After a burst past the published slots, requests in flight land in them again, not in
    /// the slots the burst freed last (`uaio requests` shows only the first `preferred`).
    @Test func handsOutThePreferredSlotsFirst() {
        let pool = SlotPool<RequestSlot>(capacity: 64, preferred: 16)!
        let burst = (0..<40).map { _ in pool.take()! }
        for i in burst { pool.give(i) }  // the highest freed last: a LIFO list hands it out first
        let next = (0..<16).map { _ in pool.take()! }
        #expect(next.allSatisfy { $0 < 16 })
        #expect(pool.take()! >= 16)  // then the others
        let rest = (0..<47).map { _ in pool.take() }
        #expect(rest.allSatisfy { $0 != nil } && pool.take() == nil)
    }
}
