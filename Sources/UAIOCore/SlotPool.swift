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
    @exclusivity(unchecked) private var freeHead = nilIndex
    /// Slots below this index have been initialised; above it the mapping is untouched.
    @exclusivity(unchecked) private(set) var highWater: UInt32 = 0
    @exclusivity(unchecked) private(set) var live: UInt32 = 0

    init?(capacity: Int) {
        guard capacity > 0, capacity < Int(nilIndex),
              let raw = system_mmapAnonymous(capacity * MemoryLayout<Slot>.stride)
        else { return nil }
        self.capacity = UInt32(capacity)
        self.base = raw.bindMemory(to: Slot.self, capacity: capacity)
    }

    @inline(__always) subscript(_ i: UInt32) -> UnsafeMutablePointer<Slot> { base + Int(i) }

    /// Gives the mapping back: only for a table no request ever used (a failed engine build).
    func unmap() { munmap(base, Int(capacity) * MemoryLayout<Slot>.stride) }

    /// A free slot, reset to `Slot()` but for its generation, or nil when all are taken.
    func take() -> UInt32? {
        let i: UInt32
        if freeHead != nilIndex {
            i = freeHead
            let slot = self[i]
            freeHead = slot.pointee.nextFree
            let generation = slot.pointee.generation
            slot.pointee = Slot()
            slot.pointee.generation = generation
        } else if highWater < capacity {
            i = highWater
            highWater += 1
            (base + Int(i)).initialize(to: Slot())
        } else {
            return nil
        }
        live += 1
        return i
    }

    /// Returns slot `i` to the free list and moves its generation on.
    func give(_ i: UInt32) {
        self[i].pointee.generation &+= 1
        self[i].pointee.nextFree = freeHead
        freeHead = i
        live -= 1
    }
}

extension RequestSlot: Poolable {}
