// A fixed-capacity table of slots addressed by 32-bit index, with a free list threaded
// through the slots. The memory is one anonymous mapping made when the engine is built:
// pages of slots never used cost no RSS, and taking or returning a slot never allocates.
// Each slot has a generation that changes whenever it is returned, so anything that remembers
// (index, generation) (a ring token, an aiocb's tag, an fd-cache entry) can tell a reused slot
// from its own. Not thread-safe: the engine lock guards every call.
import Glibc

protocol Poolable {
    init()
    var nextFree: UInt32 { get set }
    var generation: UInt32 { get set }
}

final class SlotPool<Slot: Poolable> {
    let capacity: UInt32
    let base: UnsafeMutablePointer<Slot>
    /// Slots below this index are handed out first (the request table's: those the stats
    /// region publishes), so that while no more than `preferred` are taken, all of them are
    /// there. Free slots are kept in two LIFO lists, below and above it.
    let preferred: UInt32
    @exclusivity(unchecked) private var freeLow = nilIndex
    @exclusivity(unchecked) private var freeHigh = nilIndex
    /// Slots below this index have been initialised; above it the mapping is untouched.
    @exclusivity(unchecked) private(set) var highWater: UInt32 = 0
    @exclusivity(unchecked) private(set) var live: UInt32 = 0

    init?(capacity: Int, preferred: Int? = nil) {
        guard capacity > 0, capacity < Int(nilIndex),
              let raw = system_mmapAnonymous(capacity * MemoryLayout<Slot>.stride)
        else { return nil }
        self.capacity = UInt32(capacity)
        self.preferred = UInt32(min(preferred ?? capacity, capacity))
        self.base = raw.bindMemory(to: Slot.self, capacity: capacity)
    }

    @inline(__always) subscript(_ i: UInt32) -> UnsafeMutablePointer<Slot> { base + Int(i) }

    /// Gives the mapping back: only for a table no request ever used (a failed engine build).
    func unmap() { munmap(base, Int(capacity) * MemoryLayout<Slot>.stride) }

    /// A free slot, reset to `Slot()` but for its generation, or nil when all are taken: the
    /// lowest kind first (a free slot below `preferred`, a new one below it, a free one above
    /// it, a new one above it).
    func take() -> UInt32? {
        let i: UInt32
        if freeLow != nilIndex {
            i = reuse(&freeLow)
        } else if highWater < preferred {
            i = fresh()
        } else if freeHigh != nilIndex {
            i = reuse(&freeHigh)
        } else if highWater < capacity {
            i = fresh()
        } else {
            return nil
        }
        live += 1
        return i
    }

    @inline(__always) private func reuse(_ head: inout UInt32) -> UInt32 {
        let i = head
        let slot = self[i]
        head = slot.pointee.nextFree
        let generation = slot.pointee.generation
        slot.pointee = Slot()
        slot.pointee.generation = generation
        return i
    }

    @inline(__always) private func fresh() -> UInt32 {
        let i = highWater
        highWater += 1
        (base + Int(i)).initialize(to: Slot())
        return i
    }

    /// Returns slot `i` to the free list and moves its generation on.
    func give(_ i: UInt32) {
        self[i].pointee.generation &+= 1
        if i < preferred {
            self[i].pointee.nextFree = freeLow
            freeLow = i
        } else {
            self[i].pointee.nextFree = freeHigh
            freeHigh = i
        }
        live -= 1
    }
}

extension RequestSlot: Poolable {}
