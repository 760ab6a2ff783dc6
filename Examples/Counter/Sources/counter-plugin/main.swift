// The counter example plugin: keeps counters in memory and does its additions by calling back
// into the host, through the broker.
import CounterInterface
import GoPlugin

var configuration = PluginServeConfiguration(
  handshake: .counter, plugins: ["counter": CounterPlugin(serving: MemoryCounter())])
// What `goplugin list` and a host's PluginDescriber show about this plugin.
configuration.info = .init(
  version: GoPluginRuntime.libraryVersion,
  description: "The bidirectional example: counters in memory, added up by calling back into the host.",
  metadata: ["example": "Counter"]
)
await PluginServer.serve(configuration)
