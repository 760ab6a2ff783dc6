// The GreeterProto example's host: launches the greeter-proto-plugin built beside it, greets
// the name given on the command line once, then three times over a stream.
import GRPCCore
import GoPlugin
import GreeterProtoInterface
import SwiftProtobuf

let name = CommandLine.arguments.dropFirst().first ?? "world"
let configuration = PluginClientConfiguration(
  command: .besideThisProgram("greeter-proto-plugin"), handshake: .greeterProto, plugins: ["greeter": greeterPlugin]
)
try await withPluginClient(configuration) { client in
  let greeter = try await client.dispense("greeter", as: GreeterPlugin.self)
  let reply = try await greeter.sayHello(.with { $0.name = name })
  print(reply.message)
  try await greeter.sayHelloRepeatedly(
    .with {
      $0.name = name
      $0.count = 3
    }
  ) { response in
    for try await reply in response.messages {
      print(reply.message)
    }
  }
}
