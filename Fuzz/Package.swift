// swift-tools-version:6.1
// libFuzzer targets for the relay's sans-I/O codecs (WebSocket, HTTP/1 heads,
// HTTP/2 through nghttp2, gRPC messages) and hand-written JSON and JWT
// parsers. Build and run with Fuzz/run.sh; by hand:
//
//   swift build -c release --package-path Fuzz --scratch-path Fuzz/.build \
//       -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
//   Fuzz/.build/release/fuzz-http-head Fuzz/corpus/http-head -max_total_time=60
//
// Each target defines LLVMFuzzerTestOneInput and `<module>_main`, which SwiftPM
// links as main(); it hands over to libFuzzer's driver (see FuzzDriver.h).
import PackageDescription
import Foundation

// The relay package (this folder's parent); RELAY_ROOT points elsewhere.
let relayRoot = ProcessInfo.processInfo.environment["RELAY_ROOT"] ?? ".."
// A path dependency's identity is its folder's name ("main", "relay", ...).
let relay = URL(fileURLWithPath: relayRoot,
                relativeTo: URL(fileURLWithPath: #filePath).deletingLastPathComponent())
    .standardizedFileURL.lastPathComponent.lowercased()

let package = Package(
    name: "relay-fuzz",
    dependencies: [
        .package(path: relayRoot),
    ],
    targets: [
        // Calls libFuzzer's driver from the `<module>_main` that SwiftPM links as main.
        .target(name: "FuzzDriver"),
        .executableTarget(
            name: "fuzz-websocket-decoder",
            dependencies: ["FuzzDriver", .product(name: "Framing", package: relay)],
            path: "Sources/fuzz-websocket-decoder"
        ),
        .executableTarget(
            name: "fuzz-http-head",
            dependencies: ["FuzzDriver", .product(name: "Framing", package: relay)],
            path: "Sources/fuzz-http-head"
        ),
        .executableTarget(
            name: "fuzz-json",
            dependencies: ["FuzzDriver", .product(name: "Framing", package: relay)],
            path: "Sources/fuzz-json"
        ),
        .executableTarget(
            name: "fuzz-jwt",
            dependencies: ["FuzzDriver", .product(name: "Framing", package: relay)],
            path: "Sources/fuzz-jwt"
        ),
        .executableTarget(
            name: "fuzz-h2",
            dependencies: ["FuzzDriver", .product(name: "Framing", package: relay)],
            path: "Sources/fuzz-h2"
        ),
        .executableTarget(
            name: "fuzz-grpc",
            dependencies: ["FuzzDriver", .product(name: "Framing", package: relay)],
            path: "Sources/fuzz-grpc"
        ),
    ],
    swiftLanguageModes: [.v6]
)
