// Child processes for the benchmark: posix_spawn with a chosen environment, stdout captured.
import Glibc

struct ChildResult {
    var status: CInt
    var output: String
}

/// This executable's path (children are the same binary in worker mode).
func executablePath() -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    return n > 0 ? String(decoding: buf.prefix(n).map(UInt8.init(bitPattern:)), as: UTF8.self) : CommandLine.arguments[0]
}

/// The environment without LD_PRELOAD and UAIO_*, plus `extra`.
func childEnvironment(_ extra: [String: String]) -> [String] {
    var env: [String] = []
    var p = environ
    while let entry = p.pointee {
        let s = String(cString: entry)
        if !s.hasPrefix("LD_PRELOAD=") && !s.hasPrefix("UAIO_") { env.append(s) }
        p += 1
    }
    return env + extra.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
}

/// Runs `arguments` (argv[0] first) with `environment`; returns its exit status and stdout.
func runChild(_ arguments: [String], environment: [String]) throws -> ChildResult {
    var fds: [CInt] = [0, 0]
    guard pipe(&fds) == 0 else { throw CLIError("pipe: \(String(cString: strerror(errno)))") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    posix_spawn_file_actions_addclose(&actions, fds[0])
    let argv = arguments.map { strdup($0) } + [nil]
    let envp = environment.map { strdup($0) } + [nil]
    defer {
        argv.forEach { free($0) }
        envp.forEach { free($0) }
    }
    var pid = pid_t()
    let rc = posix_spawn(&pid, arguments[0], &actions, nil, argv, envp)
    close(fds[1])
    guard rc == 0 else {
        close(fds[0])
        throw CLIError("cannot start \(arguments[0]): \(String(cString: strerror(rc)))")
    }
    var output = [UInt8]()
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fds[0], &chunk, chunk.count)
        if n > 0 { output += chunk[0..<n] } else if n == 0 || errno != EINTR { break }
    }
    close(fds[0])
    var status: CInt = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return ChildResult(status: exitCode, output: String(decoding: output, as: UTF8.self))
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
