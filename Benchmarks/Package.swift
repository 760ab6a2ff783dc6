// swift-tools-version: 6.1
import PackageDescription

// The same strict settings as the root package: Swift 6 mode, and imports that say who sees them.
let strictSettings: [SwiftSetting] = [
  .swiftLanguageMode(.v6),
  .enableUpcomingFeature("ExistentialAny"),
  .enableUpcomingFeature("InternalImportsByDefault"),
  .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
  name: "swift-go-plugin-benchmarks",
  platforms: [.macOS(.v15)],
  dependencies: [
    .package(name: "swift-go-plugin", path: ".."),
    .package(url: "https://github.com/ordo-one/benchmark.git", exact: "1.38.1", traits: ["MallocInterposer"]),
    .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
    // Without its default trait, BinaryDelimitedStreams, which imports full Foundation.
    .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0", traits: []),
    .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
  ],
  targets: [
    // The Swift host of the cross-language harness: the same workloads against any KV plugin.
    .executableTarget(
      name: "plugin-bench",
      dependencies: [
        .product(name: "GoPlugin", package: "swift-go-plugin"),
        .product(name: "KVInterface", package: "swift-go-plugin"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ],
      path: "Sources/plugin-bench",
      swiftSettings: strictSettings
    ),
    // Micro-benchmarks (ordo-one/benchmark): run with `swift package benchmark`.
    .executableTarget(
      name: "GoPluginBenchmarks",
      dependencies: [
        .product(name: "Benchmark", package: "benchmark"),
        .product(name: "GoPlugin", package: "swift-go-plugin"),
        .product(name: "KVInterface", package: "swift-go-plugin"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "Logging", package: "swift-log"),
      ],
      path: "Benchmarks/GoPluginBenchmarks",
      swiftSettings: strictSettings,
      plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    ),
  ]
)
