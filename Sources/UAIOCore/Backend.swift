// The interface between the engine and a backend. The engine owns the request table, the
// ordering rules and the completion ring; a backend only executes requests that the engine
// has made ready, and hands every result back through `Engine.finishLocked` + `deliver`.
// The io_uring backend (next) implements the same protocol; nothing above it changes.
//
// Calls ending in `Locked` are made with the engine lock held and must not block or make
// system calls that can; what needs the lock released (starting threads, entering the kernel)
// is recorded in `Deferred` and done by `afterUnlock`.

/// Which backend ran a request.
public enum BackendKind: UInt8, Sendable, CaseIterable {
    case pool = 0
    case uring = 1

    public var name: String { self == .pool ? "pool" : "uring" }
}

protocol IOBackend: AnyObject {
    var kind: BackendKind { get }
    /// Takes request `r`, whose state the engine has just set to `.queued`.
    func enqueueLocked(_ r: UInt32, _ deferred: inout Deferred)
    /// Removes `r` if it has not started; false if it has (AIO_NOTCANCELED).
    func removeLocked(_ r: UInt32) -> Bool
    /// Does what `enqueueLocked` deferred.
    func afterUnlock(_ deferred: inout Deferred)
}

/// Work decided under the engine lock and done after it is released.
struct Deferred {
    /// Worker threads to start, per WorkClass.
    var spawn: (bounded: Int, unbounded: Int) = (0, 0)
    /// Completions to publish (cancellation and the ring's reaper make several at a time).
    var deliveries: [Delivery] = []
    /// This thread holds the ring's SQ lock (URingBackend): it must submit and release it.
    var holdsSQ = false
    /// SQEs were queued: enter the kernel.
    var submitRing = false
    /// The ring's first submission: start its reaper.
    var startReaper = false
    /// The request table was full while some of its requests had their results out (Engine's
    /// `retiring`, read under the lock): full only until those are retired.
    var fullWhileRetiring = false
    /// The ring's reaper is the caller: it never waits for the SQ lock (URingBackend.drain).
    var reaping = false

    var isEmpty: Bool { spawn == (0, 0) && deliveries.isEmpty && !submitRing && !startReaper && !holdsSQ }
}

/// A completion whose result is already in the aiocb, still to be published (unless it was:
/// Engine.publishEarly) and notified.
struct Delivery {
    var record: CompletionRecord
    var published: Bool
    var notification: Notification
    /// The lio_listio list's notification, when this was the list's last request.
    var listNotification: Notification
}
