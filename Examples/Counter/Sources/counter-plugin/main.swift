// The counter example plugin: keeps counters in memory and does its additions by calling back
// into the host, through the broker.
import CounterInterface
import GoPlugin

await PluginServer.serve(
  PluginServeConfiguration(handshake: .counter, plugins: ["counter": CounterPlugin(serving: MemoryCounter())]))
