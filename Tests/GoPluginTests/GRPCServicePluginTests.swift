import GRPCCore
import GoPlugin
import GoPluginTesting
import GreeterProtoInterface
import Logging
import SwiftProtobuf
import Testing

/// A greeter whose replies say which plugin name served them.
private struct TestGreeter: Greeter_V1_Greeter.SimpleServiceProtocol {
  var prefix = "Hi"

  func sayHello(request: Greeter_V1_HelloRequest, context: ServerContext) async throws -> Greeter_V1_HelloReply {
    .with { $0.message = "\(self.prefix) \(request.name)" }
  }

  func sayHelloRepeatedly(
    request: Greeter_V1_RepeatedHelloRequest, response: RPCWriter<Greeter_V1_HelloReply>, context: ServerContext
  ) async throws {
    for number in 0..<request.count {
      try await response.write(.with { $0.message = "\(self.prefix) \(request.name) \(number)" })
    }
  }
}

/// Collects a server stream's messages, as the host of the example prints them.
private func greetings(_ greeter: GreeterPlugin.Client, name: String, count: Int32) async throws -> [String] {
  try await greeter.sayHelloRepeatedly(
    .with {
      $0.name = name
      $0.count = count
    }
  ) { response in
    var messages: [String] = []
    for try await reply in response.messages {
      messages.append(reply.message)
    }
    return messages
  }
}

/// GRPCServicePlugin on the GreeterProto example, whose code GoPluginProtoGenerator generated
/// at build time: in this process, then as real processes.
@Suite("GRPCServicePlugin and the GreeterProto example", .timeLimit(.minutes(2)))
struct GRPCServicePluginTests {
  @Test("a generated service and its generated client make a plugin: unary and server-streaming calls")
  func inProcess() async throws {
    try await withInProcessPlugin(greeterPlugin.serving(TestGreeter()), name: "greeter") { greeter, _ in
      let reply = try await greeter.sayHello(.with { $0.name = "Ada" })
      #expect(reply.message == "Hi Ada")
      let replies = try await greetings(greeter, name: "Ada", count: 3)
      #expect(replies == ["Hi Ada 0", "Hi Ada 1", "Hi Ada 2"])
    }
  }

  @Test("services made from the context see the name the plugin is served under")
  func servicesFromContext() async throws {
    let plugin = greeterPlugin.serving { context in [TestGreeter(prefix: context.name)] }
    try await withInProcessPlugin(plugin, name: "welcome") { greeter, _ in
      let reply = try await greeter.sayHello(.with { $0.name = "Ada" })
      #expect(reply.message == "welcome Ada")
    }
  }

  @Test("a client made from the whole connection sees its name and version as well")
  func clientFromConnection() async throws {
    let plugin = GRPCServicePlugin(connection: { connection in
      (
        name: connection.name, version: connection.negotiatedVersion,
        stub: Greeter_V1_Greeter.Client(wrapping: connection.grpcClient)
      )
    }).serving(TestGreeter())
    try await withInProcessPlugin(plugin, name: "greeter", negotiatedVersion: 3) { client, _ in
      #expect(client.name == "greeter")
      #expect(client.version == 3)
      let reply = try await client.stub.sayHello(.with { $0.name = "Ada" })
      #expect(reply.message == "Hi Ada")
    }
  }

  @Test("a value that only serves (for a Go host, say) registers its services, given or made from the context")
  func servingOnly() throws {
    let pair = try InProcessPluginPair(maxMessageSize: 1 << 20, logger: Logger(label: "test"))
    defer { pair.finish() }
    let context = PluginServiceContext(
      name: "greeter", negotiatedVersion: 1, logger: Logger(label: "test"), broker: pair.pluginBroker)
    let given = try GRPCServicePlugin(serving: TestGreeter()).services(context: context)
    #expect(given.count == 1)
    #expect(given.first is TestGreeter)
    let made = try GRPCServicePlugin(services: { context in [TestGreeter(prefix: context.name)] })
      .services(context: context)
    #expect((made.first as? TestGreeter)?.prefix == "greeter")
  }

  @Test("a value that describes only the host's side refuses to serve, and says how to fix it")
  func hostSideRefusesToServe() async throws {
    let error = await #expect(throws: PluginError.self) {
      try await withInProcessPlugin(greeterPlugin, name: "greeter") { _, _ in }
    }
    #expect(error?.code == .invalidConfiguration)
    #expect(error?.message.contains(".serving(") == true, "\(String(describing: error))")
  }

  @Test("a host dispenses the generated client from the example's plugin process")
  func realProcess() async throws {
    var configuration = PluginClientConfiguration(
      command: try BuildProducts.command("greeter-proto-plugin"), handshake: .greeterProto,
      plugins: ["greeter": greeterPlugin])
    configuration.standardInput = .none
    // On a loaded machine a debug build may need more than the default 2 s to stop.
    configuration.gracefulStopTimeout = .seconds(20)
    try await withPluginClient(configuration) { client in
      let greeter = try await client.dispense("greeter", as: GreeterPlugin.self)
      let reply = try await greeter.sayHello(.with { $0.name = "Grace" })
      #expect(reply.message == "Hello, Grace!")
      let replies = try await greetings(greeter, name: "Grace", count: 2)
      #expect(replies == ["Hello #1, Grace!", "Hello #2, Grace!"])
    }
  }

  @Test("the example's host launches its plugin and prints the greetings")
  func exampleEndToEnd() async throws {
    let run = try await ExternalProgram.run(try BuildProducts.path("greeter-proto"), arguments: ["Ada"])
    #expect(run.status == 0, "\(run.errorText)")
    let lines = run.outputText.split(separator: "\n").map(String.init)
    #expect(lines == ["Hello, Ada!", "Hello #1, Ada!", "Hello #2, Ada!", "Hello #3, Ada!"], "\(run.errorText)")
  }
}
