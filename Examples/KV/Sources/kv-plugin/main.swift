// The KV example plugin: serves kv.proto from memory, or from files under $KV_DIR so that
// values survive from one run of the host to the next.
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

await PluginServer.serve(PluginServeConfiguration(handshake: .kv, plugins: ["kv": KVPlugin(serving: store)]))
