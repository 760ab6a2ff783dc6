import GRPCCore
import GRPCNIOTransportHTTP2Posix
import NIOCore
import NIOSSL

/// How the library configures grpc-swift's HTTP/2 transports for plugin connections.
enum Transports {
  /// go-plugin hosts accept messages up to 2 GiB; so do we, by default, in both directions.
  static let defaultMaxMessageSize = Int(Int32.max)
  /// The HTTP/2 receive window each side grants. grpc-swift's default, 64 KiB, caps a stream at
  /// one window per round trip (about 80 MiB/s over a unix socket, far less when the round trip
  /// crosses yamux and TLS); 8 MiB keeps a local pipe full.
  static let windowSize = 8 << 20
  /// Writes made in one event-loop turn still go out in one flush, but nothing waits for more:
  /// grpc-swift's default 100 µs delay is a fifth of a Go plugin's whole call.
  static let serverFlushCoalescing = HTTP2ServerTransport.Config.Connection.FlushCoalescing(maxFlushDelay: Duration.zero, maxBytes: 64 * 1024)
  static let clientFlushCoalescing = HTTP2ClientTransport.Config.Connection.FlushCoalescing(maxFlushDelay: Duration.zero, maxBytes: 64 * 1024)

  static func server(
    listener: PluginListener,
    maxReceiveMessageSize: Int,
    tls: NIOSSLContext?
  ) -> HTTP2ServerTransport.Posix {
    HTTP2ServerTransport.Posix(
      listeningSocketDescriptor: Int(listener.descriptor),
      transportSecurity: .plaintext,
      config: .defaults { config in
        config.rpc.maxRequestPayloadSize = maxReceiveMessageSize
        config.http2.targetWindowSize = Self.windowSize
        config.connection.flushCoalescing = Self.serverFlushCoalescing
        config.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
          Self.secure(channel) { tls.map { NIOSSLServerHandler(context: $0) } }
            .flatMap { PingResponder.install(on: channel, isServer: true) }
        }
      }
    )
  }

  static func client(
    network: HandshakeLine.Network,
    address: String,
    maxMessageSize: Int,
    tls: NIOSSLContext? = nil,
    serverHostname: String? = nil,
    onConnect: @escaping @Sendable () -> Void = {}
  ) throws -> HTTP2ClientTransport.Posix {
    let target: any ResolvableTarget
    if network == .unix {
      target = .unixDomainSocket(path: address)
    } else {
      let (host, port) = try Self.splitHostPort(address)
      target = .dns(host: host, port: port)
    }
    // One method config for every service: go-plugin hosts lift the message size limits.
    var methodConfig = MethodConfig(names: [MethodConfig.Name(service: "")])
    methodConfig.maxRequestMessageBytes = maxMessageSize
    methodConfig.maxResponseMessageBytes = maxMessageSize
    return try HTTP2ClientTransport.Posix(
      target: target,
      transportSecurity: .plaintext,
      config: .defaults { config in
        // go-plugin hosts send "unused" as the authority; plugins must not look at it.
        config.http2.authority = "unused"
        config.http2.targetWindowSize = Self.windowSize
        config.connection.flushCoalescing = Self.clientFlushCoalescing
        config.channelDebuggingCallbacks.onCreateTCPConnection = { channel in
          onConnect()
          return Self.secure(channel) { try tls.map { try NIOSSLClientHandler(context: $0, serverHostname: serverHostname) } }
            .flatMap { PingResponder.install(on: channel, isServer: false) }
        }
      },
      serviceConfig: ServiceConfig(methodConfig: [methodConfig])
    )
  }

  /// Puts TLS beneath everything gRPC configured. The transport itself is told it is plaintext:
  /// its own TLS options cannot verify the P-521 certificates go-plugin uses (BoringSSL's
  /// default list lacks the algorithm) and are not open to a configuration built here. Both
  /// callbacks run before the channel is active, so the HTTP/2 preface is already encrypted.
  private static func secure(
    _ channel: any Channel,
    handler makeHandler: @escaping () throws -> (any ChannelHandler)?
  ) -> EventLoopFuture<Void> {
    channel.eventLoop.makeCompletedFuture {
      if let handler = try makeHandler() {
        try channel.pipeline.syncOperations.addHandler(handler, position: .first)
      }
    }
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
