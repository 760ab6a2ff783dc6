// The net/rpc example plugin: greeter, kv and callback over go-plugin's net/rpc protocol, under
// go-plugin's examples/basic handshake, so that a Go host built with go-plugin loads it.
import GoPlugin
import GreeterInterface

await PluginServer.serve(PluginServeConfiguration(handshake: .greeter, plugins: .greeterExample(serving: true)))
