// The streaming example plugin: fetches the files its host offers through the broker.
import GoPlugin
import StreamingInterface

await PluginServer.serve(PluginServeConfiguration(handshake: .streaming, plugins: ["streaming": StreamingPlugin()]))
