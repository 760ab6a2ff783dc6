import GRPCCore

extension PluginClientTransport {
  /// A plaintext connection to a plugin that is already running at `address`, such as one a
  /// previous host started (go-plugin's reattach) or one served in this process. Its
  /// connections are dialled on first use; no process is managed.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/unknownAddressType`` for a network other
  ///   than `unix` and `tcp`, or a TCP address that is not `host:port`.
  public convenience init(
    network: HandshakeLine.Network = .unix,
    address: String,
    maxMessageSize: Int = Int(Int32.max)
  ) throws {
    let target: Target
    switch network {
    case .unix:
      target = .unix(path: address)
    case .tcp:
      let (host, port) = try Transports.splitHostPort(address)
      target = .tcp(host: host, port: port)
    default:
      throw PluginError(code: .unknownAddressType, message: "unknown address type: \(network)")
    }
    self.init(target: target, maxMessageSize: maxMessageSize, tls: nil, serverHostname: nil, onConnect: {})
  }

  /// Dials now rather than on the first call, and returns once the peer's HTTP/2 SETTINGS
  /// have arrived: a start reports a plugin started only when it can take calls.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/connectionFailed`` saying what did not
  ///   happen: the dial, the TLS handshake, the SETTINGS within the set-up timeout.
  func establish() async throws(PluginError) {
    do {
      _ = try await self.readyConnection()
    } catch let error as RPCError {
      throw PluginError(code: .connectionFailed, message: error.message)
    } catch {
      throw PluginError(code: .connectionFailed, message: "\(error)")
    }
  }
}
