// swift-tools-version:6.0
//
// UringAIO: POSIX AIO for Linux, served by io_uring where the kernel has the opcode and by an
// io-wq-style worker pool otherwise. Products:
//   - `uaio`      libuaio.so, the C ABI (aio_* and lio_listio, plain and *64), linked or LD_PRELOADed;
//   - `UAIOCore`  the engine, as a Swift library;
//   - `uaio-cli`  the `uaio` command (installed under that name by `make install`; SwiftPM cannot
//                 name an executable like a library product).
import Foundation
import PackageDescription

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path

let package = Package(
    name: "UringAIO",
    products: [
        .library(name: "uaio", type: .dynamic, targets: ["UAIOExports"]),
        .library(name: "UAIOCore", targets: ["UAIOCore"]),
        .executable(name: "uaio-cli", targets: ["uaio-cli"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        .target(name: "CUAIO"),
        .systemLibrary(name: "CURing", pkgConfig: "liburing", providers: [.apt(["liburing-dev"])]),
        .systemLibrary(name: "CLibAIO", providers: [.apt(["libaio-dev"])]),
        .target(name: "UAIOCore", dependencies: ["CUAIO", "CURing"]),
        .target(
            name: "UAIOExports",
            dependencies: ["UAIOCore"],
            linkerSettings: [
                // A guest library: the Swift runtime linked in (no libswift*.so, no RUNPATH, no
                // backtracer touching the host's signals), only the C ABI exported, and no
                // undefined symbol left for the host program to discover at run time.
                .unsafeFlags([
                    "-static-stdlib",
                    "-Xlinker", "--version-script=\(root)/compat/exports.map",
                    "-Xlinker", "-z", "-Xlinker", "defs",
                    // Resident once loaded: dlclose must not unmap code that our threads (workers,
                    // the reaper, notification threads) and the fork handler still run.
                    "-Xlinker", "-z", "-Xlinker", "nodelete",
                ])
            ]
        ),
        .executableTarget(
            name: "uaio-cli",
            dependencies: [
                "UAIOCore", "CUAIO", "CLibAIO",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "UAIOCoreTests", dependencies: ["UAIOCore"]),
    ]
)
