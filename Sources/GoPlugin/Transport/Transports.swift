import NIOPosix
import NIOSSL

/// How the library sets up the gRPC transports of plugin connections.
enum Transports {
  /// go-plugin hosts accept messages up to 2 GiB; so do we, by default, in both directions.
  static let defaultMaxMessageSize = Int(Int32.max)
  /// The HTTP/2 receive window each side grants. grpc-swift's default, 64 KiB, caps a stream at
  /// one window per round trip (about 80 MiB/s over a unix socket, far less when the round trip
  /// crosses yamux and TLS); 8 MiB keeps a local pipe full.
  static let windowSize = 8 << 20
  /// Shared by all of a connection's streams, so room for two of them at full speed.
  static let connectionWindowSize = 16 << 20
  /// How long a connection may take from dialling to the peer's HTTP/2 SETTINGS (TLS included)
  /// where no start timeout says otherwise: brokered connections and reattached plugins.
  static let setupTimeout: Duration = .seconds(10)

  static func server(
    listener: SocketListener,
    maxReceiveMessageSize: Int,
    tls: ConnectionTLS?
  ) -> PluginServerTransport {
    PluginServerTransport(
      listeningDescriptor: listener.descriptor,
      maxReceiveMessageSize: maxReceiveMessageSize,
      tls: tls,
      eventLoop: MultiThreadedEventLoopGroup.singleton.next()
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
