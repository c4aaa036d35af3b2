import CUAIO
import Glibc
import Testing

@testable import UAIOCore

@Suite struct CompletionRingTests {
    @Test func aWaiterReturnsOnceItsConditionHolds() {
        let ring = CompletionRing(logEntries: 8)
        #expect(ring.wait(deadlineNs: nil) { true } == nil)
        let deadline = cuaio_now_ns() + 20_000_000
        #expect(ring.wait(deadlineNs: deadline) { false } == .timedOut)
        #expect(cuaio_now_ns() >= deadline)
    }

    @Test func theLogKeepsTheMostRecentCompletions() {
        let ring = CompletionRing(logEntries: 4)
        for i in 0..<10 {
            var r = CompletionRecord()
            r.request = UInt32(i)
            ring.publish(r)
        }
        #expect(ring.recent(10).map(\.request) == [6, 7, 8, 9])
        #expect(ring.recent(2).map(\.ticket) == [9, 10])
        #expect(ring.sequence == 10)
    }

    /// Publishers bump a counter and publish; waiters each wait for a target. A lost wake-up
    /// leaves a waiter asleep with its target reached: the deadline would catch it. With more
    /// waiters than sleeper slots, some sleep on the futex.
    @Test(arguments: [4, CompletionRing.sleeperSlots + 4])
    func noWakeUpIsLostUnderContention(waiters: Int) {
        let ring = CompletionRing()
        let counter = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        counter.initialize(to: 0)
        let perPublisher = 20_000, publishers = 3
        let total = UInt32(perPublisher * publishers)
        let timedOut = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        timedOut.initialize(to: 0)
        var threads: [pthread_t] = []
        for w in 0..<waiters {
            threads.append(spawn {
                var target = UInt32(w + 1)
                while target <= total {
                    let deadline = cuaio_now_ns() + 10_000_000_000
                    let r = ring.wait(deadlineNs: deadline, until: { cuaio_load_u32_acquire(counter) >= target })
                    if r != nil || cuaio_now_ns() >= deadline {  // (at the deadline, done() may hold)
                        _ = cuaio_add_u32_seqcst(timedOut, 1)
                        return
                    }
                    target += UInt32(1 + (w * 37 + Int(target)) % 97)
                }
            })
        }
        for _ in 0..<publishers {
            threads.append(spawn {
                for _ in 0..<perPublisher {
                    _ = cuaio_add_u32_seqcst(counter, 1)
                    ring.publish(CompletionRecord())
                }
            })
        }
        threads.forEach { pthread_join($0, nil) }
        #expect(cuaio_load_u32_acquire(timedOut) == 0)
        #expect(ring.sequence == total)
    }

    /// One waiter and one publisher in rounds: each round the publisher publishes completions
    /// the waiter does not wait for, closely spaced, so that the waiter often goes to sleep
    /// just as one is published, and then the one it waits for. A lost wake-up leaves the
    /// waiter asleep until its deadline. (With several waiters, one waiter's lost wake-up can
    /// hide behind another's.)
    @Test func aLoneWaiterIsNeverLeftAsleep() {
        let ring = CompletionRing()
        let words = UnsafeMutablePointer<UInt32>.allocate(capacity: 2)  // [0] the waiter's, [1] round
        words.initialize(repeating: 0, count: 2)
        defer { words.deallocate() }  // after the join below
        let rounds: UInt32 = 20_000
        let publisher = spawn {
            var seed: UInt32 = 12345
            for round in 1...rounds {
                while cuaio_load_u32_acquire(words + 1) < round {}
                if cuaio_load_u32_acquire(words + 1) > rounds { return }  // the waiter gave up
                for _ in 0..<20 {
                    seed = seed &* 1_103_515_245 &+ 12345
                    for _ in 0..<(seed >> 16) % 8 { cuaio_fence_seqcst() }  // a pause of random length
                    ring.publish(CompletionRecord())  // someone else's
                }
                _ = cuaio_add_u32_seqcst(words, 1)
                ring.publish(CompletionRecord())
            }
        }
        var stuckInRound: UInt32? = nil
        for round in 1...rounds {
            cuaio_store_u32_seqcst(words + 1, round)
            let deadline = cuaio_now_ns() + 5_000_000_000
            _ = ring.wait(deadlineNs: deadline, until: { cuaio_load_u32_acquire(words) >= round })
            if cuaio_now_ns() >= deadline {
                stuckInRound = round
                cuaio_store_u32_seqcst(words + 1, rounds + 1)
                break
            }
        }
        pthread_join(publisher, nil)
        #expect(stuckInRound == nil)
    }
}

extension CompletionRingTests {
    /// A signal ends a wait however many threads sleep, up to `sleeperSlots`: each sleeps in
    /// ppoll with its caller's mask. Round after round, one of 24 waiters (more than the 16
    /// slots the ring had before) is signalled 1 to 3 ms into its wait, while a publisher's
    /// completions, none of them the waiters', wake every sleeper. The wait must end with EINTR
    /// and not run to its deadline. (With 16 slots, 8 waiters slept on the futex, and 1 to 3
    /// of 48 signals were missed: the handler ran between two sleeps, and the wait went on.)
    @Test func aSignalEndsAWaitWhileManyThreadsSleep() {
        let sig = cuaio_sigrtmax() - 5
        var handler = sigaction()
        handler.__sigaction_handler.sa_handler = { _ in }
        #expect(sigaction(sig, &handler, nil) == 0)
        let ring = CompletionRing()
        let waiters = 24, rounds = 72
        // [0] stop; then per waiter: the start of its current wait (0: not waiting), and its
        // waits that ended with EINTR.
        let words = UnsafeMutablePointer<UInt64>.allocate(capacity: 1 + 2 * waiters)
        words.initialize(repeating: 0, count: 1 + 2 * waiters)
        let started = words + 1, interrupted = words + 1 + waiters
        let threads = (0..<waiters).map { w in
            spawn {
                var mine = sigset_t()  // (the test runner's threads, which these inherit, block it)
                sigemptyset(&mine)
                sigaddset(&mine, sig)
                pthread_sigmask(SIG_UNBLOCK, &mine, nil)
                while cuaio_load_u64_seqcst(words) == 0 {
                    var mask = sigset_t()
                    cuaio_block_signals(&mask)  // before it counts as waiting: no signal is lost before the wait
                    cuaio_store_u64_seqcst(started + w, cuaio_now_ns())
                    let r = ring.wait(deadlineNs: cuaio_now_ns() + 300_000_000, callerMask: &mask) {
                        cuaio_load_u64_seqcst(words) != 0
                    }
                    if r == .interrupted { _ = cuaio_add_u64_relaxed(interrupted + w, 1) }
                    cuaio_store_u64_seqcst(started + w, 0)
                    cuaio_restore_signals(&mask)
                }
            }
        }
        let publisher = spawn {
            while cuaio_load_u64_seqcst(words) == 0 {
                ring.publish(CompletionRecord())
                usleep(200)
            }
        }
        var missed = 0, seed: UInt32 = 7
        for round in 0..<rounds {
            let w = round % waiters
            var since: UInt64 = 0
            while since == 0 {
                since = cuaio_load_u64_seqcst(started + w)
                if since == 0 { usleep(100) }
            }
            seed = seed &* 1_103_515_245 &+ 12345
            usleep(1000 + (seed >> 16) % 2000)
            guard cuaio_load_u64_seqcst(started + w) == since else { continue }  // (a 300 ms wait ended)
            let before = cuaio_load_u64_relaxed(interrupted + w)
            pthread_kill(threads[w], sig)
            while cuaio_load_u64_seqcst(started + w) == since { usleep(100) }
            if cuaio_load_u64_relaxed(interrupted + w) == before { missed += 1 }
        }
        cuaio_store_u64_seqcst(words, 1)
        ring.publish(CompletionRecord())
        pthread_join(publisher, nil)
        threads.forEach { pthread_join($0, nil) }
        words.deallocate()
        var dfl = sigaction()
        sigaction(sig, &dfl, nil)
        #expect(missed == 0, "\(missed) of \(rounds) signals did not end the wait")
    }
}

/// Starts a thread running `body` (tests only).
func spawn(_ body: @escaping () -> Void) -> pthread_t {
    final class Box { let body: () -> Void; init(_ b: @escaping () -> Void) { body = b } }
    var t = pthread_t()
    let arg = Unmanaged.passRetained(Box(body)).toOpaque()
    pthread_create(&t, nil, { p in
        Unmanaged<Box>.fromOpaque(p!).takeRetainedValue().body()
        return nil
    }, arg)
    return t
}
