// The streaming example plugin: fetches the files its host offers through the broker.
import GoPlugin
import StreamingInterface

var configuration = PluginServeConfiguration(handshake: .streaming, plugins: ["streaming": StreamingPlugin()])
// What `goplugin list` and a host's PluginDescriber show about this plugin.
configuration.info = .init(
  version: GoPluginRuntime.libraryVersion,
  description: "The streaming example: fetches the files its host offers over brokered connections.",
  metadata: ["example": "Streaming"]
)
await PluginServer.serve(configuration)
