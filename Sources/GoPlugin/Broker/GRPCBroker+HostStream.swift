package import GRPCCore
import GoPluginProtos
package import Logging

extension GRPCBroker {
  /// A broker without TLS whose sockets go to `socketDirectory`: the in-process test helper's,
  /// where both sides live in one process and nothing crosses a trust boundary.
  package static func plaintext(socketDirectory: String, maxMessageSize: Int, logger: Logger) -> GRPCBroker {
    GRPCBroker(
      socketDirectory: socketDirectory,
      environment: [:],
      security: ConnectionSecurity(),
      maxMessageSize: maxMessageSize,
      logger: logger
    )
  }

  /// The host's end of `GRPCBroker.StartStream`, held over `grpcClient` until either side ends
  /// it: this broker's announcements go out on it, the plugin's come back to it.
  ///
  /// - Throws: what the call ends with; a plugin without a broker answers UNIMPLEMENTED, and a
  ///   connection that goes away ends it with UNAVAILABLE or CANCELLED.
  package func holdHostStream(over grpcClient: GRPCClient<PluginTransport>) async throws {
    try await Plugin_GRPCBroker.Client(wrapping: grpcClient).startStream(
      requestProducer: { writer in
        for await info in self.outbound { try await writer.write(info) }
      },
      onResponse: { response in
        for try await info in response.messages { self.received(info) }
      }
    )
  }

  /// Stops everything served or dialled through this broker, as the end of a session does.
  package func shutDown() {
    self.close()
  }
}
