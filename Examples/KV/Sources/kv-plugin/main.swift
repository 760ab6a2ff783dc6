// The KV example plugin: serves kv.proto from memory, or from files under $KV_DIR so that
// values survive from one run of the host to the next. With --debug it serves without a host
// and prints how to reattach to it (kv --reattach '<json>' get KEY). KV_DIRECT_METHODS=0 answers
// every call through grpc-swift's server, which dev/bench.sh compares with the direct methods.
import GoPlugin
import KVInterface

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

let store: any KV
if let directory = ProcessInfo.processInfo.environment["KV_DIR"], !directory.isEmpty {
  store = try FileKV(directory: directory)
} else {
  store = MemoryKV()
}

var configuration = PluginServeConfiguration(handshake: .kv, plugins: ["kv": KVPlugin(serving: store)])
// What `goplugin list` and a host's PluginDescriber show about this plugin.
configuration.info = .init(
  version: GoPluginRuntime.libraryVersion,
  description: "The KV example: kvbench.KV's Get, Put and Upload, in memory or in files under $KV_DIR.",
  metadata: ["example": "KV", "storage": store is MemoryKV ? "memory" : "files"]
)
if ProcessInfo.processInfo.environment["KV_DIRECT_METHODS"] == "0" {
  configuration.directMethods = false
}
if CommandLine.arguments.dropFirst().contains("--debug") {
  do {
    try await PluginServer.serveDebug(configuration)
  } catch {
    let message = Array("kv-plugin: \(error)\n".utf8)
    _ = write(2, message, message.count)
    exit(1)
  }
} else {
  await PluginServer.serve(configuration)
}
