// The KV example plugin: serves kv.proto from memory, or from files under $KV_DIR so that
// values survive from one run of the host to the next. With --debug it serves without a host
// and prints how to reattach to it (kv --reattach '<json>' get KEY).
import Foundation
import GoPlugin
import KVInterface

// Tasks run on the event loops that carry the connection: fewer thread hand-offs per call.
GoPluginRuntime.useEventLoopsAsGlobalExecutor()

let store: any KV
if let directory = ProcessInfo.processInfo.environment["KV_DIR"], !directory.isEmpty {
  store = try FileKV(directory: directory)
} else {
  store = MemoryKV()
}

let configuration = PluginServeConfiguration(handshake: .kv, plugins: ["kv": KVPlugin(serving: store)])
if CommandLine.arguments.dropFirst().contains("--debug") {
  do {
    try await PluginServer.serveDebug(configuration)
  } catch {
    FileHandle.standardError.write(Data("kv-plugin: \(error)\n".utf8))
    exit(1)
  }
} else {
  await PluginServer.serve(configuration)
}
