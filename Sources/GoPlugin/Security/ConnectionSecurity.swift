import Logging
import NIOSSL

/// The TLS of one side of a plugin connection, worked out once at start-up: the main
/// connection uses one role, and brokered connections may need either, because either side may
/// serve them.
struct ConnectionSecurity: Sendable {
  var server: ConnectionTLS?
  var client: ConnectionTLS?
  var serverHostname: String?
  /// Set when the main connection uses TLS that cannot play the role asked for.
  var unsupported: String?

  /// The host's side, from its configuration and the certificate the plugin's handshake carried.
  static func host(
    tls: PluginTLS?,
    serverCertificate: [UInt8]?,
    ownCertificate: AutoMTLSCertificate?,
    logger: Logger
  ) throws(PluginError) -> ConnectionSecurity {
    do {
      switch tls?.mode {
      case nil:
        // A plugin that inherited another host's PLUGIN_CLIENT_CERT may answer with a
        // certificate nobody asked for; go-plugin hosts crash on that, this one ignores it.
        if serverCertificate != nil {
          logger.debug("ignoring a server certificate the host did not ask for")
        }
        return ConnectionSecurity()
      case .autoMTLS?:
        guard let der = serverCertificate, let ownCertificate else {
          throw PluginError(
            code: .invalidServerCertificate,
            message: "the host asked for AutoMTLS, but the plugin's handshake carries no certificate"
          )
        }
        let peer: NIOSSLCertificate
        do {
          peer = try NIOSSLCertificate(bytes: der, format: .der)
        } catch {
          throw PluginError(
            code: .invalidServerCertificate,
            message: "error parsing server cert: \(error)",
            cause: error
          )
        }
        return ConnectionSecurity(
          server: ConnectionTLS(
            context: try TLSContexts.autoMTLSServer(own: ownCertificate, peer: peer),
            pinnedPeerCertificate: der,
            pinnedPeerName: "the plugin"
          ),
          client: ConnectionTLS(
            context: try TLSContexts.autoMTLSClient(own: ownCertificate, peer: peer),
            pinnedPeerCertificate: der,
            pinnedPeerName: "the plugin"
          ),
          serverHostname: "localhost"
        )
      case .custom(let configuration, let serverHostname)?:
        return ConnectionSecurity(
          client: ConnectionTLS(context: try TLSContexts.custom(configuration)),
          serverHostname: serverHostname,
          unsupported: "the host's custom TLS configuration is a client configuration, so it cannot serve"
        )
      }
    } catch let error as PluginError {
      throw error
    } catch {
      throw PluginError(code: .invalidConfiguration, message: "TLS configuration: \(error)", cause: error)
    }
  }

  /// The plugin's side: the main server's TLS, the certificate to announce in the handshake
  /// under AutoMTLS, and the broker's TLS for both roles.
  static func plugin(
    tls custom: TLSConfiguration?,
    environment: [String: String]
  ) throws -> (server: ConnectionTLS?, announced: [UInt8]?, broker: ConnectionSecurity) {
    if let custom {
      let context = ConnectionTLS(context: try TLSContexts.custom(custom))
      let broker = ConnectionSecurity(
        server: context,
        unsupported: "the plugin's custom TLS configuration is a server configuration, so it cannot dial the host"
      )
      return (context, nil, broker)
    }
    guard let pem = environment[PluginEnvironment.clientCertificate], !pem.isEmpty else {
      return (nil, nil, ConnectionSecurity())
    }
    let hostCertificate: NIOSSLCertificate
    do {
      hostCertificate = try NIOSSLCertificate(bytes: Array(pem.utf8), format: .pem)
    } catch {
      // go-plugin carries on here with a pool that trusts nothing; failing says why at once.
      throw PluginError(
        code: .invalidConfiguration,
        message: "client cert provided but failed to parse: \(error)",
        cause: error
      )
    }
    let own = try AutoMTLSCertificate.generate()
    // The host's certificate is pinned by its bytes, as a Go plugin trusts exactly that one.
    let hostDER = try hostCertificate.toDERBytes()
    let server = ConnectionTLS(
      context: try TLSContexts.autoMTLSServer(own: own, peer: hostCertificate),
      pinnedPeerCertificate: hostDER,
      pinnedPeerName: "the host"
    )
    // The host may serve brokered connections too; then the plugin is the TLS client.
    let client = ConnectionTLS(
      context: try TLSContexts.autoMTLSClient(own: own, peer: hostCertificate),
      pinnedPeerCertificate: hostDER,
      pinnedPeerName: "the host"
    )
    return (server, own.der, ConnectionSecurity(server: server, client: client, serverHostname: "localhost"))
  }
}
