public import NIOSSL

/// How a host secures its connection to a plugin.
public struct PluginTLS: Sendable {
  enum Mode: Sendable {
    case autoMTLS
    case custom(TLSConfiguration, serverHostname: String?)
  }

  let mode: Mode

  /// go-plugin's automatic mutual TLS: the host and the plugin each make a certificate for this
  /// launch and trust only the other's, so nothing else on the machine can connect to the
  /// plugin or pose as it. The host's goes to the plugin in `PLUGIN_CLIENT_CERT`; the plugin's
  /// comes back in the handshake.
  public static let autoMTLS = PluginTLS(mode: .autoMTLS)

  /// Your own client-side TLS configuration (certificates, trust roots), for a plugin that was
  /// given a matching server configuration — go-plugin's `TLSConfig`. ALPN `h2` is added if the
  /// configuration names no protocols, because grpc-go refuses TLS without it.
  ///
  /// - Parameter serverHostname: the name to ask for (SNI) and verify.
  public static func custom(_ configuration: TLSConfiguration, serverHostname: String? = "localhost") -> PluginTLS {
    PluginTLS(mode: .custom(configuration, serverHostname: serverHostname))
  }
}

/// The NIOSSL side of both ends.
enum TLSContexts {
  /// BoringSSL leaves ECDSA P-521 with SHA-512 out of its default verification list, but that
  /// is what go-plugin's AutoMTLS certificates are signed with; so the list is given in full.
  static let signatureAlgorithms: [SignatureAlgorithm] = [
    .ecdsaSecp256R1Sha256, .ecdsaSecp384R1Sha384, .ecdsaSecp521R1Sha512, .ed25519,
    .rsaPssRsaeSha256, .rsaPssRsaeSha384, .rsaPssRsaeSha512,
    .rsaPkcs1Sha256, .rsaPkcs1Sha384, .rsaPkcs1Sha512,
  ]

  /// The host's side of AutoMTLS: present our certificate and trust only the plugin's. The
  /// trust roots are for a context used without ``ConnectionTLS``'s pinning; with it, the
  /// plugin's exact certificate is what is checked.
  static func autoMTLSClient(own: AutoMTLSCertificate, peer: NIOSSLCertificate) throws -> NIOSSLContext {
    var configuration = TLSConfiguration.makeClientConfiguration()
    configuration.certificateChain = [.certificate(own.certificate)]
    configuration.privateKey = .privateKey(own.privateKey)
    configuration.trustRoots = .certificates([peer])
    configuration.certificateVerification = .fullVerification
    return try NIOSSLContext(configuration: Self.hardened(configuration))
  }

  /// The plugin's side of AutoMTLS: present our certificate and require the host's.
  static func autoMTLSServer(own: AutoMTLSCertificate, peer: NIOSSLCertificate) throws -> NIOSSLContext {
    var configuration = TLSConfiguration.makeServerConfiguration(
      certificateChain: [.certificate(own.certificate)],
      privateKey: .privateKey(own.privateKey)
    )
    configuration.trustRoots = .certificates([peer])
    configuration.certificateVerification = .noHostnameVerification
    return try NIOSSLContext(configuration: Self.hardened(configuration))
  }

  /// A user's configuration, with what gRPC to Go needs added where it says nothing, and no
  /// protocol older than TLS 1.2 (NIOSSL's default floor is 1.0; no go-plugin peer needs it).
  static func custom(_ configuration: TLSConfiguration) throws -> NIOSSLContext {
    var configuration = configuration
    switch configuration.minimumTLSVersion {
    case .tlsv1, .tlsv11: configuration.minimumTLSVersion = .tlsv12
    default: break
    }
    if configuration.applicationProtocols.isEmpty { configuration.applicationProtocols = ["h2"] }
    if configuration.verifySignatureAlgorithms == nil {
      configuration.verifySignatureAlgorithms = Self.signatureAlgorithms
    }
    return try NIOSSLContext(configuration: configuration)
  }

  private static func hardened(_ configuration: TLSConfiguration) -> TLSConfiguration {
    var configuration = configuration
    configuration.minimumTLSVersion = .tlsv12
    configuration.applicationProtocols = ["h2"]
    configuration.verifySignatureAlgorithms = Self.signatureAlgorithms
    return configuration
  }
}
