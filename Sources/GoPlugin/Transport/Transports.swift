import NIOPosix
import NIOSSL

/// How the library sets up the gRPC transports of plugin connections: from a handshake's
/// network and address, or a listener, to the transport of `GoPluginTransport` that serves it.
extension Transports {
  static func server(
    listener: SocketListener,
    maxReceiveMessageSize: Int,
    tls: ConnectionTLS?,
    handlersOnEventLoop: Bool = true,
    methods: PluginMethodTable = PluginMethodTable()
  ) -> PluginServerTransport {
    PluginServerTransport(
      listeningDescriptor: listener.descriptor,
      maxReceiveMessageSize: maxReceiveMessageSize,
      tls: tls,
      eventLoop: MultiThreadedEventLoopGroup.singleton.next(),
      handlersOnEventLoop: handlersOnEventLoop,
      methods: methods
    )
  }

  static func client(
    network: HandshakeLine.Network,
    address: String,
    maxMessageSize: Int,
    tls: ConnectionTLS? = nil,
    serverHostname: String? = nil,
    peerName: String = "the plugin",
    setupTimeout: Duration = Transports.setupTimeout,
    onConnect: @escaping @Sendable () -> Void = {}
  ) throws(PluginError) -> PluginClientTransport {
    let target: PluginClientTransport.Target
    if network == .unix {
      target = .unix(path: address)
    } else {
      let (host, port) = try Self.splitHostPort(address)
      target = .tcp(host: host, port: port)
    }
    return PluginClientTransport(
      target: target,
      maxMessageSize: maxMessageSize,
      tls: tls,
      serverHostname: serverHostname,
      peerName: peerName,
      setupTimeout: setupTimeout,
      onConnect: onConnect
    )
  }

  /// `host:port` as Go's `ResolveTCPAddr` takes it: an empty host means this machine, and IPv6
  /// hosts come in brackets.
  static func splitHostPort(_ address: String) throws(PluginError) -> (String, Int) {
    guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
      (0...65535).contains(port)
    else {
      throw PluginError(code: .unknownAddressType, message: "unknown address type: \(address)")
    }
    var host = String(address[..<colon])
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    return (host.isEmpty ? "127.0.0.1" : host, port)
  }
}
