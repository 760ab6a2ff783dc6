import NIOCore
package import NIOSSL

/// One side's TLS for plugin connections: the context, and under AutoMTLS the exact certificate
/// the other side must present.
///
/// go-plugin trusts the certificate it was handed (in the handshake, or in
/// `PLUGIN_CLIENT_CERT`) by putting it alone in the trust pool, and Go accepts a certificate
/// that is itself in the pool whatever its CA bit or key usage say. BoringSSL would still want a
/// CA that may sign, and refuses the self-signed leaf other implementations (pyvider-rpcplugin)
/// answer with; comparing the peer's certificate with the one announced, byte for byte, is what
/// Go's check amounts to, and no weaker.
package struct ConnectionTLS: Sendable {
  package let context: NIOSSLContext
  /// The DER of the only certificate accepted from the peer, or `nil` to verify as `context`
  /// says (custom TLS, with its own trust roots).
  package let pinnedPeerCertificate: [UInt8]?
  /// Who is expected to present it, for the refusal: "the plugin", "the host".
  package let pinnedPeerName: String

  package init(context: NIOSSLContext, pinnedPeerCertificate: [UInt8]? = nil, pinnedPeerName: String = "the peer") {
    self.context = context
    self.pinnedPeerCertificate = pinnedPeerCertificate
    self.pinnedPeerName = pinnedPeerName
  }

  /// The TLS handler of a connection this side dials; `onRefused` hears why a pinned
  /// certificate was refused, on the event loop, before the handshake fails.
  package func clientHandler(
    serverHostname: String?,
    onRefused: @escaping (String) -> Void
  ) throws -> NIOSSLClientHandler {
    guard let pinned = self.pinnedPeerCertificate else {
      return try NIOSSLClientHandler(context: self.context, serverHostname: serverHostname)
    }
    let name = self.pinnedPeerName
    return try NIOSSLClientHandler(context: self.context, serverHostname: serverHostname) { certificates, promise in
      promise.succeed(Self.verify(certificates, pinned: pinned, name: name, onRefused: onRefused))
    }
  }

  /// The TLS handler of a connection this side accepts.
  package func serverHandler(onRefused: @escaping (String) -> Void) -> NIOSSLServerHandler {
    guard let pinned = self.pinnedPeerCertificate else {
      return NIOSSLServerHandler(context: self.context)
    }
    let name = self.pinnedPeerName
    return NIOSSLServerHandler(context: self.context) { certificates, promise in
      promise.succeed(Self.verify(certificates, pinned: pinned, name: name, onRefused: onRefused))
    }
  }

  private static func verify(
    _ certificates: [NIOSSLCertificate],
    pinned: [UInt8],
    name: String,
    onRefused: (String) -> Void
  ) -> NIOSSLVerificationResult {
    guard let leaf = certificates.first else {
      onRefused("certificate verification failed: \(name) presented no certificate")
      return .failed
    }
    guard let der = try? leaf.toDERBytes(), der == pinned else {
      onRefused("certificate verification failed: \(name) presented a certificate other than the one it announced")
      return .failed
    }
    return .certificateVerified
  }
}
