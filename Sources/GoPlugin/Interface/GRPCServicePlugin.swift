public import GRPCCore

/// A ``GRPCPlugin`` assembled from code that `protoc-gen-grpc-swift-2` generated, so that a
/// plugin interface needs no conformance of its own.
///
/// Writing a ``GRPCPlugin`` by hand pays off when the host should see a Swift protocol of your
/// own rather than the generated stub (the KV example does that). When the generated stub is
/// the interface you want, every conformance would repeat the same two lines: register the
/// service, wrap the client. This type holds those two lines as values instead, which keeps
/// the build free of a code generator of this library's own: the generated code from
/// `grpc-swift-protobuf` is the only generated code involved.
///
/// The interface module declares the value once, for the host:
///
/// ```swift
/// public let greeterPlugin = GRPCServicePlugin(client: Greeter_V1_Greeter.Client.init(wrapping:))
/// ```
///
/// The host registers and dispenses it; the client is the generated stub, already bound to the
/// plugin's connection:
///
/// ```swift
/// let configuration = PluginClientConfiguration(
///   command: .besideThisProgram("greeter-plugin"), handshake: .greeter, plugins: ["greeter": greeterPlugin])
/// try await withPluginClient(configuration) { client in
///   let greeter = try await client.dispense("greeter", as: type(of: greeterPlugin))
///   print(try await greeter.sayHello(.with { $0.name = "Ada" }).message)
/// }
/// ```
///
/// The plugin serves the same value with its implementation attached, or, when it shares no
/// module with a host (a Swift plugin for a Go host), a value that only serves:
///
/// ```swift
/// await PluginServer.serve(.init(handshake: .greeter, plugins: ["greeter": greeterPlugin.serving(MyGreeter())]))
/// await PluginServer.serve(.init(handshake: .greeter, plugins: ["greeter": GRPCServicePlugin(serving: MyGreeter())]))
/// ```
public struct GRPCServicePlugin<Client: Sendable>: GRPCPlugin {
  private let makeServices: (@Sendable (PluginServiceContext) throws -> [any RegistrableRPCService])?
  private let makeClient: @Sendable (PluginConnection) -> Client

  /// The host's side: dispensing calls `client` with the gRPC client of the plugin's
  /// connection, which is exactly what a generated stub's `init(wrapping:)` takes.
  ///
  /// - Parameter client: usually `SomeService.Client.init(wrapping:)`; called once per
  ///   dispense, and sends nothing.
  public init(client: @escaping @Sendable (GRPCClient<PluginTransport>) -> Client) {
    self.makeServices = nil
    self.makeClient = { connection in client(connection.grpcClient) }
  }

  /// The host's side, for a client that needs more of the connection than its gRPC client:
  /// the broker, to open connections back to the plugin or to offer it services of the host's
  /// own, or the negotiated version, to pick a stub.
  public init(connection client: @escaping @Sendable (PluginConnection) -> Client) {
    self.makeServices = nil
    self.makeClient = client
  }

  /// This plugin with the plugin's side filled in: the same value then describes both sides,
  /// so the host and the plugin cannot disagree on the client that goes with the services.
  ///
  /// - Parameter services: the generated `SimpleServiceProtocol` or `ServiceProtocol`
  ///   conformances to register; every process that serves this plugin gets these same values.
  public func serving(_ services: any RegistrableRPCService...) -> Self {
    Self(makeServices: { _ in services }, makeClient: self.makeClient)
  }

  /// This plugin with services made when the plugin starts serving, for services that depend
  /// on the negotiated version, log through the plugin's logger or use the broker.
  ///
  /// - Parameter services: called before the plugin prints its handshake line; an error it
  ///   throws stops the plugin (`plugin init error`, exit status 1) before a host can call it.
  public func serving(
    _ services: @escaping @Sendable (PluginServiceContext) throws -> [any RegistrableRPCService]
  ) -> Self {
    Self(makeServices: services, makeClient: self.makeClient)
  }

  private init(
    makeServices: (@Sendable (PluginServiceContext) throws -> [any RegistrableRPCService])?,
    makeClient: @escaping @Sendable (PluginConnection) -> Client
  ) {
    self.makeServices = makeServices
    self.makeClient = makeClient
  }

  public func services(context: PluginServiceContext) throws -> [any RegistrableRPCService] {
    guard let makeServices = self.makeServices else {
      throw PluginError(
        code: .invalidConfiguration,
        message: "plugin \(context.name) describes only the host's side: serve it with .serving(…)"
      )
    }
    return try makeServices(context)
  }

  public func client(connection: PluginConnection) -> Client {
    self.makeClient(connection)
  }
}

extension GRPCServicePlugin where Client == Never {
  /// A plugin that only serves: for a plugin process that shares no interface module with its
  /// host, such as a Swift plugin loaded by a Go host, which has no client to describe.
  ///
  /// A host cannot dispense such a value (there is no client to make): describe the host's
  /// side with ``init(client:)``.
  public init(serving services: any RegistrableRPCService...) {
    self.init(makeServices: { _ in services }, makeClient: Self.noClient)
  }

  /// A plugin that only serves, with services made when it starts serving: for services that
  /// depend on the negotiated version, the plugin's logger or the broker.
  public init(services: @escaping @Sendable (PluginServiceContext) throws -> [any RegistrableRPCService]) {
    self.init(makeServices: services, makeClient: Self.noClient)
  }

  // Reached only when a host registers a serving-only value and dispenses it as
  // `GRPCServicePlugin<Never>`: a mistake in the host's code, not something a plugin can cause.
  @Sendable private static func noClient(_ connection: PluginConnection) -> Never {
    preconditionFailure(
      "plugin \(connection.name) was described with GRPCServicePlugin(serving:), which serves and has no client; "
        + "a host describes it with GRPCServicePlugin(client:)"
    )
  }
}
