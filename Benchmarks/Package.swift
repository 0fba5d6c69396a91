// swift-tools-version:6.1
// Benchmarks for the relay: ordo-one/benchmark suites (Benchmarks/<Name>/)
// and the `reactor-echo` load program (ReactorEcho/). A package of its own so
// that the benchmark dependency never reaches the relay's build.
//
//   swift package --package-path Benchmarks --scratch-path Benchmarks/.build \
//       --disable-sandbox benchmark
//   swift run -c release --package-path Benchmarks --scratch-path Benchmarks/.build \
//       reactor-echo --size 64 --seconds 10
import PackageDescription
import Foundation

// The relay package (this folder's parent). RELAY_ROOT points elsewhere, e.g.
// at a copy of the root whose Package.swift differs, without editing this file.
let relayRoot = ProcessInfo.processInfo.environment["RELAY_ROOT"] ?? ".."
// A path dependency's identity is its folder's name ("main", "relay", ...).
let relay = URL(fileURLWithPath: relayRoot,
                relativeTo: URL(fileURLWithPath: #filePath).deletingLastPathComponent())
    .standardizedFileURL.lastPathComponent.lowercased()

let package = Package(
    name: "relay-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: relayRoot),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "ReactorMicro",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Reactor", package: relay),
            ],
            path: "Benchmarks/ReactorMicro",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "FramingCodec",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Framing", package: relay),
            ],
            path: "Benchmarks/FramingCodec",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "reactor-echo",
            dependencies: [
                .product(name: "Reactor", package: relay),
            ],
            // Not directly in a folder named "Benchmarks": the benchmark
            // plugin would take it for a benchmark suite.
            path: "ReactorEcho/Sources"
        ),
    ],
    swiftLanguageModes: [.v6]
)
