// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "relay",
    products: [
        .executable(name: "relay", targets: ["RelayCLI"]),
        .executable(name: "loadgen", targets: ["LoadGen"]),
        .library(name: "Reactor", targets: ["Reactor"]),
        .library(name: "TLS", targets: ["TLS"]),
        .library(name: "Framing", targets: ["Framing"]),
        .library(name: "RelayClient", targets: ["RelayClient"]),
        .library(name: "RelayNode", targets: ["RelayNode"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C: what Glibc does not export (epoll, eventfd, signalfd, accept4).
        .target(name: "CReactor"),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "openssl",
                       providers: [.apt(["libssl-dev"])]),
        // HTTP/2 (nghttp2's sans-I/O session, wrapped in Framing) and Redis
        // (hiredis 0.14, for the cluster issue: built once a target uses it).
        .systemLibrary(name: "CNghttp2", path: "Sources/CNghttp2", pkgConfig: "libnghttp2",
                       providers: [.apt(["libnghttp2-dev"])]),
        // permessage-deflate (RFC 7692)'s inflater: one-shot raw DEFLATE, no stream state.
        .systemLibrary(name: "CLibdeflate", path: "Sources/CLibdeflate", pkgConfig: "libdeflate",
                       providers: [.apt(["libdeflate-dev"])]),
        // permessage-deflate's compressor: zlib's sync flush, the form every client reads.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CHiredis", path: "Sources/CHiredis", pkgConfig: "hiredis",
                       providers: [.apt(["libhiredis-dev"])]),
        .target(name: "Reactor", dependencies: ["CReactor"]),
        // OpenSSL's macros as functions, and the never-blocking output BIO.
        .target(name: "CTLS", dependencies: ["COpenSSL"]),
        // TLS as a Reactor transport: contexts (server, client), the transport.
        .target(name: "TLS", dependencies: ["Reactor", "CTLS", "COpenSSL"]),
        // Sans-I/O codecs: bytes in, events out.
        .target(name: "Framing", dependencies: ["COpenSSL", "CNghttp2", "CLibdeflate", "CZlib"]),
        // Pseudo-terminals for `relay attach` (forkpty, TIOCSWINSZ).
        .target(name: "CPTY"),
        // Client-side WebSocket on the Reactor: `relay attach` and `loadgen`.
        .target(name: "RelayClient", dependencies: ["Reactor", "Framing", "TLS"]),
        // The relay as a library: pods, sessions, replay, liveness, the
        // server side of HTTP/1 and WebSocket, routing, settings, admin.
        .target(name: "RelayNode", dependencies: [
            "Reactor", "Framing", "TLS",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // The `relay` executable: command line, dev mode's demo runner, `relay attach`.
        .executableTarget(name: "RelayCLI", dependencies: [
            "RelayNode", "Reactor", "Framing", "RelayClient", "CPTY",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "LoadGen", dependencies: [
            "Reactor", "Framing", "RelayClient", "TLS",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ]),
        .testTarget(name: "ReactorTests", dependencies: ["Reactor"]),
        .testTarget(name: "TLSTests", dependencies: ["TLS", "Reactor", "CTLS", "COpenSSL"]),
        .testTarget(name: "FramingTests", dependencies: ["Framing"]),
        .testTarget(name: "RelayNodeTests", dependencies: [
            "RelayNode", "Reactor", "Framing", .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "LoadGenTests", dependencies: ["LoadGen", .product(name: "Histogram", package: "hdrhistogram-swift")]),
    ],
    swiftLanguageModes: [.v6]
)
