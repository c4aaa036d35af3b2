import CUAIO
import Glibc
import Testing

@testable import UAIOCore

@Suite(.serialized) struct LockTests {
    /// Threads add to a plain counter under the lock: a lost update shows a broken lock. Once
    /// with the spin off (every contended take sleeps on the futex) and once with it on.
    @Test(arguments: [0, Engine.lockSpinNs])
    func holdsAreMutuallyExclusive(spinNs: UInt64) {
        Lock.setSpin(ns: spinNs)
        defer { Lock.setSpin(ns: Engine.lockSpinNs) }
        let lock = Lock()
        let counter = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        counter.initialize(to: 0)
        defer { counter.deallocate() }  // after the joins below
        let threads = 4, perThread = 50_000
        let all = (0..<threads).map { _ in
            spawn {
                for _ in 0..<perThread {
                    lock.withLock {
                        let v = counter.pointee
                        cuaio_cpu_relax()  // widen the window a second holder would hit
                        counter.pointee = v + 1
                    }
                }
            }
        }
        all.forEach { pthread_join($0, nil) }
        #expect(counter.pointee == threads * perThread)
        #expect(lock.tryLock())
        #expect(!lock.tryLock())
        lock.unlock()
    }

    /// A waiter and a signaller in rounds, the signal landing at random moments around the
    /// waiter's release of the lock. A lost wake-up leaves the waiter asleep until its deadline.
    @Test func aSignalIsNeverLost() {
        let lock = Lock()
        let condition = lock.makeCondition()
        let words = UnsafeMutablePointer<UInt32>.allocate(capacity: 2)  // [0] posted, [1] round
        words.initialize(repeating: 0, count: 2)
        defer { words.deallocate() }  // after the join below
        let rounds: UInt32 = 20_000
        let signaller = spawn {
            var seed: UInt32 = 4321
            for round in 1...rounds {
                while cuaio_load_u32_acquire(words + 1) < round {}
                if cuaio_load_u32_acquire(words + 1) > rounds { return }  // the waiter gave up
                seed = seed &* 1_103_515_245 &+ 12345
                for _ in 0..<(seed >> 16) % 64 { cuaio_cpu_relax() }
                lock.withLock {
                    words.pointee = round
                    condition.signal()
                }
            }
        }
        var stuckInRound: UInt32? = nil
        for round in 1...rounds {
            let deadline = cuaio_now_ns() + 5_000_000_000
            lock.withLock {
                cuaio_store_u32_seqcst(words + 1, round)
                while words.pointee < round && cuaio_now_ns() < deadline {
                    _ = condition.wait(untilNs: deadline)
                }
                if words.pointee < round { stuckInRound = round }
            }
            if stuckInRound != nil {
                cuaio_store_u32_seqcst(words + 1, rounds + 1)
                break
            }
        }
        pthread_join(signaller, nil)
        #expect(stuckInRound == nil)
    }

    @Test func aWaitEndsAtItsDeadline() {
        let lock = Lock()
        let condition = lock.makeCondition()
        let deadline = cuaio_now_ns() + 20_000_000
        let signalled = lock.withLock { condition.wait(untilNs: deadline) }
        #expect(!signalled)
        #expect(cuaio_now_ns() >= deadline)
    }
}
