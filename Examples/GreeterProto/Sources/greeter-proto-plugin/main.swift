// The GreeterProto example's plugin: implements the service generated from greeter.proto and
// serves it until the host shuts it down.
import GRPCCore
import GoPlugin
import GreeterProtoInterface
import SwiftProtobuf

// PluginDirectService: the plugin's server answers SayHello, a unary method, itself, with the
// registerDirectMethods(with:) generated from greeter.proto.
struct Greeter: Greeter_V1_Greeter.SimpleServiceProtocol, PluginDirectService {
  func sayHello(request: Greeter_V1_HelloRequest, context: ServerContext) async throws -> Greeter_V1_HelloReply {
    .with { $0.message = "Hello, \(request.name)!" }
  }

  func sayHelloRepeatedly(
    request: Greeter_V1_RepeatedHelloRequest, response: RPCWriter<Greeter_V1_HelloReply>, context: ServerContext
  ) async throws {
    for number in 0..<max(request.count, 0) {
      try await response.write(.with { $0.message = "Hello #\(number + 1), \(request.name)!" })
    }
  }
}

await PluginServer.serve(
  PluginServeConfiguration(handshake: .greeterProto, plugins: ["greeter": greeterPlugin.serving(Greeter())])
)
