// swift-tools-version: 6.2
import PackageDescription

// The test command (dev/test.sh) sets GOPLUGIN_WARNINGS_AS_ERRORS=1, so that a warning in the
// package's own targets fails it. SwiftPM ignores the setting when the package is a dependency.
let warningsAsErrors: [SwiftSetting] =
  Context.environment["GOPLUGIN_WARNINGS_AS_ERRORS"] == "1" ? [.treatAllWarnings(as: .error)] : []

// Every target is built the same strict way: Swift 6 mode, and imports that say who can see them.
let strictSettings: [SwiftSetting] =
  [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
  ] + warningsAsErrors

let grpcCore = Target.Dependency.product(name: "GRPCCore", package: "grpc-swift-2")
let grpcProtobuf = Target.Dependency.product(name: "GRPCProtobuf", package: "grpc-swift-protobuf")
let swiftProtobuf = Target.Dependency.product(name: "SwiftProtobuf", package: "swift-protobuf")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let argumentParser = Target.Dependency.product(
  name: "ArgumentParser",
  package: "swift-argument-parser"
)

let package = Package(
  name: "swift-go-plugin",
  platforms: [.macOS(.v15)],
  products: [
    .library(name: "GoPlugin", targets: ["GoPlugin"]),
    .library(name: "GoPluginTesting", targets: ["GoPluginTesting"]),
    .library(name: "GoPluginGob", targets: ["GoPluginGob"]),
    .library(name: "GoPluginNetRPC", targets: ["GoPluginNetRPC"]),
    .library(name: "KVInterface", targets: ["KVInterface"]),
    .executable(name: "kv", targets: ["kv"]),
    .executable(name: "kv-plugin", targets: ["kv-plugin"]),
    .executable(name: "counter", targets: ["counter"]),
    .executable(name: "counter-plugin", targets: ["counter-plugin"]),
    .executable(name: "stream-file", targets: ["stream-file"]),
    .executable(name: "streaming-plugin", targets: ["streaming-plugin"]),
    .executable(name: "greeter", targets: ["greeter"]),
    .executable(name: "greeter-plugin", targets: ["greeter-plugin"]),
    .executable(name: "goplugin", targets: ["goplugin"]),
    .executable(name: "greeter-proto", targets: ["greeter-proto"]),
    .executable(name: "greeter-proto-plugin", targets: ["greeter-proto-plugin"]),
    .plugin(name: "GoPluginProtoGenerator", targets: ["GoPluginProtoGenerator"]),
    .executable(name: "protoc-gen-swift-go-plugin", targets: ["protoc-gen-swift-go-plugin"]),
  ],
  dependencies: [
    .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
    .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
    // Without its default trait, BinaryDelimitedStreams, which imports full Foundation.
    .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0", traits: []),
    .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
    .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
    .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
    .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
    .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
    .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
  ],
  targets: [
    // The C library under one name, so that no file repeats the platform switch.
    .target(name: "GoPluginPlatform", swiftSettings: strictSettings),
    // fork and exec for plugin processes, with what the child must do in between (a
    // parent-death signal, a process group of its own).
    .target(name: "GoPluginSpawn"),
    // Generated from Protos/plugin, Protos/grpc/health and Protos/grpc/reflection by
    // dev/generate-protos.sh; never edited.
    .target(
      name: "GoPluginProtos",
      dependencies: [grpcCore, grpcProtobuf, swiftProtobuf],
      swiftSettings: strictSettings
    ),
    // Go's encoding/gob, mapped onto Codable: useful on its own, so it depends on nothing.
    .target(name: "GoPluginGob", swiftSettings: strictSettings),
    // Go's net/rpc (gob codec) over any NIO channel carrying bytes.
    .target(
      name: "GoPluginNetRPC",
      dependencies: ["GoPluginGob", .product(name: "NIOCore", package: "swift-nio")],
      swiftSettings: strictSettings
    ),
    // The gRPC transport of plugin connections (HTTP/2 on NIO), below everything that knows
    // about plugins: GoPlugin re-exports its public types.
    .target(
      name: "GoPluginTransport",
      dependencies: [
        "GoPluginPlatform",
        grpcCore,
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOTLS", package: "swift-nio"),
        .product(name: "NIOHTTP2", package: "swift-nio-http2"),
        .product(name: "NIOHPACK", package: "swift-nio-http2"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
      ],
      swiftSettings: strictSettings
    ),
    .target(
      name: "GoPlugin",
      dependencies: [
        "GoPluginPlatform",
        "GoPluginSpawn",
        "GoPluginTransport",
        "GoPluginProtos",
        "GoPluginGob",
        "GoPluginNetRPC",
        grpcCore,
        grpcProtobuf,
        swiftProtobuf,
        logging,
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOTLS", package: "swift-nio"),
        .product(name: "NIOHTTP2", package: "swift-nio-http2"),
        .product(name: "NIOHPACK", package: "swift-nio-http2"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "X509", package: "swift-certificates"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "SwiftASN1", package: "swift-asn1"),
        .product(name: "SystemPackage", package: "swift-system"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "UnixSignals", package: "swift-service-lifecycle"),
      ],
      swiftSettings: strictSettings
    ),
    .target(
      name: "GoPluginTesting",
      dependencies: [
        "GoPlugin", "GoPluginPlatform", "GoPluginSpawn", grpcCore, logging,
        .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
        .product(name: "Subprocess", package: "swift-subprocess"),
        .product(name: "SystemPackage", package: "swift-system"),
      ],
      swiftSettings: strictSettings
    ),

    // The goplugin CLI: inspects any go-plugin binary, prints plugin checksums.
    .executableTarget(
      name: "goplugin",
      dependencies: [
        "GoPlugin", "GoPluginPlatform", "GoPluginProtos", grpcCore, swiftProtobuf, argumentParser, logging,
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "X509", package: "swift-certificates"),
        .product(name: "SwiftASN1", package: "swift-asn1"),
      ],
      swiftSettings: strictSettings
    ),

    // The KV example: the interface both sides share, a plugin, and a host CLI.
    .target(
      name: "KVInterface",
      dependencies: ["GoPlugin", grpcCore, grpcProtobuf, swiftProtobuf],
      path: "Examples/KV/Sources/KVInterface",
      swiftSettings: strictSettings
    ),
    .executableTarget(
      name: "kv-plugin",
      dependencies: ["GoPlugin", "KVInterface", logging],
      path: "Examples/KV/Sources/kv-plugin",
      swiftSettings: strictSettings
    ),
    .executableTarget(
      name: "kv",
      dependencies: [
        "GoPlugin", "KVInterface", argumentParser, logging,
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "UnixSignals", package: "swift-service-lifecycle"),
      ],
      path: "Examples/KV/Sources/kv",
      swiftSettings: strictSettings
    ),

    // The bidirectional example: a counter plugin that calls back into its host.
    .target(
      name: "CounterInterface",
      dependencies: ["GoPlugin", grpcCore, grpcProtobuf, swiftProtobuf],
      path: "Examples/Counter/Sources/CounterInterface",
      swiftSettings: strictSettings
    ),
    .executableTarget(
      name: "counter-plugin",
      dependencies: ["GoPlugin", "CounterInterface"],
      path: "Examples/Counter/Sources/counter-plugin",
      swiftSettings: strictSettings
    ),
    .executableTarget(
      name: "counter",
      dependencies: ["GoPlugin", "CounterInterface", argumentParser, logging],
      path: "Examples/Counter/Sources/counter",
      swiftSettings: strictSettings
    ),

    // The streaming example: a file moved over a brokered connection.
    .target(
      name: "StreamingInterface",
      dependencies: [
        "GoPlugin", grpcCore, grpcProtobuf, swiftProtobuf, .product(name: "Crypto", package: "swift-crypto"),
      ],
      path: "Examples/Streaming/Sources/StreamingInterface",
      swiftSettings: strictSettings
    ),
    .executableTarget(
      name: "streaming-plugin",
      dependencies: ["GoPlugin", "StreamingInterface"],
      path: "Examples/Streaming/Sources/streaming-plugin",
      swiftSettings: strictSettings
    ),
    .executableTarget(
      name: "stream-file",
      dependencies: [
        "GoPlugin", "StreamingInterface", argumentParser, logging, .product(name: "Crypto", package: "swift-crypto"),
      ],
      path: "Examples/Streaming/Sources/stream-file",
      swiftSettings: strictSettings
    ),

    // The net/rpc example: go-plugin's examples/basic and the net/rpc half of examples/grpc.
    .target(
      name: "GreeterInterface",
      dependencies: ["GoPlugin"],
      path: "Examples/Greeter/Sources/GreeterInterface",
      swiftSettings: strictSettings
    ),
    .executableTarget(
      name: "greeter-plugin",
      dependencies: ["GoPlugin", "GreeterInterface"],
      path: "Examples/Greeter/Sources/greeter-plugin",
      swiftSettings: strictSettings
    ),
    .executableTarget(
      name: "greeter",
      dependencies: ["GoPlugin", "GreeterInterface", argumentParser, logging],
      path: "Examples/Greeter/Sources/greeter",
      swiftSettings: strictSettings
    ),

    // What GoPluginProtoGenerator runs for each .proto file, when the build runs: reads the
    // target's go-plugin-proto.json, finds protoc, then runs it with the two protoc plugins.
    .executableTarget(name: "goplugin-protoc", swiftSettings: strictSettings),
    // The third protoc plugin GoPluginProtoGenerator runs: per service, a client whose unary
    // calls go straight onto a plugin connection, and the methods a plugin's server answers
    // without grpc-swift's executors (dev/generate-protos.sh runs it for the examples too).
    .executableTarget(
      name: "protoc-gen-swift-go-plugin",
      dependencies: [swiftProtobuf, .product(name: "SwiftProtobufPluginLibrary", package: "swift-protobuf")],
      swiftSettings: strictSettings
    ),
    // Generates Swift from a target's .proto files at build time with the protoc installed on
    // the machine. Only the two protoc plugins (Swift) are built; grpc-swift-protobuf's own
    // build plugin also compiles protoc from C++, which a cold build pays a quarter hour for.
    .plugin(
      name: "GoPluginProtoGenerator",
      capability: .buildTool(),
      dependencies: [
        "goplugin-protoc",
        "protoc-gen-swift-go-plugin",
        .product(name: "protoc-gen-swift", package: "swift-protobuf"),
        .product(name: "protoc-gen-grpc-swift-2", package: "grpc-swift-protobuf"),
      ]
    ),

    // The GreeterProto example: a plugin interface from a .proto and a few lines of glue,
    // generated at build time by GoPluginProtoGenerator (the article PluginFromProto).
    .target(
      name: "GreeterProtoInterface",
      dependencies: ["GoPlugin", grpcCore, grpcProtobuf, swiftProtobuf],
      path: "Examples/GreeterProto/Sources/GreeterProtoInterface",
      swiftSettings: strictSettings,
      plugins: ["GoPluginProtoGenerator"]
    ),
    .executableTarget(
      name: "greeter-proto-plugin",
      dependencies: ["GoPlugin", "GreeterProtoInterface", grpcCore, swiftProtobuf],
      path: "Examples/GreeterProto/Sources/greeter-proto-plugin",
      swiftSettings: strictSettings
    ),
    .executableTarget(
      name: "greeter-proto",
      dependencies: ["GoPlugin", "GreeterProtoInterface", grpcCore, swiftProtobuf],
      path: "Examples/GreeterProto/Sources/greeter-proto",
      swiftSettings: strictSettings
    ),

    // A plugin whose misbehaviours the tests ask for by name.
    .executableTarget(
      name: "fixture-plugin",
      dependencies: [
        "GoPlugin", "KVInterface", "GreeterInterface", grpcCore, logging,
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ],
      path: "Tests/Fixtures/fixture-plugin",
      swiftSettings: strictSettings
    ),
    // A plugin that prints any first line the fuzz harness gives it and misbehaves behind it.
    .executableTarget(
      name: "fuzz-plugin",
      dependencies: [
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "NIOTLS", package: "swift-nio"),
      ],
      path: "Tests/Fixtures/fuzz-plugin",
      swiftSettings: strictSettings
    ),
    // A host that launches the plugins it is given and waits: the no-orphans tests kill it.
    .executableTarget(
      name: "orphan-host",
      dependencies: ["GoPlugin", "KVInterface", logging],
      path: "Tests/Fixtures/orphan-host",
      swiftSettings: strictSettings
    ),
    .testTarget(
      name: "GoPluginTests",
      dependencies: [
        "GoPlugin", "GoPluginProtos", "GoPluginTesting", "KVInterface", "CounterInterface", "StreamingInterface",
        "GreeterInterface", "greeter-plugin", "greeter", "fixture-plugin", "kv-plugin", "kv", "orphan-host",
        "GreeterProtoInterface", "greeter-proto-plugin", "greeter-proto", "GoPluginSpawn", "GoPluginTransport",
        "protoc-gen-swift-go-plugin",
        grpcCore, grpcProtobuf, logging,
        swiftProtobuf,
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "X509", package: "swift-certificates"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "SwiftASN1", package: "swift-asn1"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOEmbedded", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "SystemPackage", package: "swift-system"),
        .product(name: "NIOHPACK", package: "swift-nio-http2"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ],
      swiftSettings: strictSettings
    ),
    // The transport alone, on EmbeddedChannel: HTTP/2 frames in, frames out, no sockets.
    .testTarget(
      name: "GoPluginTransportTests",
      dependencies: [
        "GoPluginTransport", grpcCore,
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOEmbedded", package: "swift-nio"),
        .product(name: "NIOHTTP2", package: "swift-nio-http2"),
        .product(name: "NIOHPACK", package: "swift-nio-http2"),
      ],
      swiftSettings: strictSettings
    ),
    // encoding/gob: unit tests, the corpus written and read by real Go, and a short fuzz pass.
    .testTarget(
      name: "GoPluginGobTests",
      dependencies: ["GoPluginGob", "GoPluginTesting"],
      swiftSettings: strictSettings
    ),
    // The fuzz pass over the host's start-up (dev/fuzz.sh runs a long one).
    .testTarget(
      name: "GoPluginFuzzTests",
      dependencies: [
        "GoPlugin", "GoPluginTesting", "KVInterface", "fuzz-plugin", grpcCore, logging,
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "X509", package: "swift-certificates"),
        .product(name: "SwiftASN1", package: "swift-asn1"),
      ],
      swiftSettings: strictSettings
    ),
    .testTarget(
      name: "GoPluginCLITests",
      dependencies: ["GoPluginTesting", "goplugin", "kv-plugin"],
      exclude: ["go"],
      swiftSettings: strictSettings
    ),
    .testTarget(
      name: "InteropTests",
      dependencies: [
        "GoPlugin", "GoPluginTesting", "KVInterface", "kv-plugin", "CounterInterface", "counter-plugin", "counter",
        "kv", "StreamingInterface", "streaming-plugin", "stream-file", "orphan-host", "GoPluginSpawn",
        "GreeterInterface", "greeter-plugin", "greeter", "fixture-plugin",
        grpcCore, logging, .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "Subprocess", package: "swift-subprocess"),
        .product(name: "SystemPackage", package: "swift-system"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      swiftSettings: strictSettings
    ),
  ]
)
