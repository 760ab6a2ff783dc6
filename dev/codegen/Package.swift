// swift-tools-version: 6.1
// Builds the two protoc plugins that dev/generate-protos.sh runs. Kept apart from the root
// package so that neither users nor CI pay for compiling code generators.
import PackageDescription

let package = Package(
  name: "codegen",
  dependencies: [
    .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
    .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", exact: "2.4.1"),
  ],
  targets: [
    // SwiftPM needs one target of the package's own before it builds products of dependencies.
    .executableTarget(name: "codegen-placeholder", path: "Placeholder")
  ]
)
