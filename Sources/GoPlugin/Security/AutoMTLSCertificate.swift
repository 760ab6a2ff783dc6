import Crypto
import NIOSSL
import SwiftASN1
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A certificate and key made for one process start, as go-plugin's AutoMTLS makes them
/// (spec §6.1): ECDSA P-521, self-signed with SHA-512, CN and SAN `localhost`, a CA that may
/// authenticate servers and clients, valid from 30 s ago for about 30 years.
///
/// Both sides make one; each trusts exactly the other's, so nothing else can connect.
struct AutoMTLSCertificate: Sendable {
  /// The certificate, DER-encoded; the plugin sends it in the handshake.
  let der: [UInt8]
  /// The certificate as PEM; the host sends it in `PLUGIN_CLIENT_CERT`.
  let pem: String
  let certificate: NIOSSLCertificate
  let privateKey: NIOSSLPrivateKey
  /// The key as PKCS#8 PEM, for tests that hand a pair to a custom TLS configuration.
  let privateKeyPEM: String

  static func generate() throws -> AutoMTLSCertificate {
    let key = P521.Signing.PrivateKey()
    let name = try DistinguishedName {
      CommonName("localhost")
      OrganizationName("HashiCorp")
    }
    let now = Date()
    let certificate = try Certificate(
      version: .v3,
      serialNumber: Certificate.SerialNumber(bytes: (0..<16).map { _ in UInt8.random(in: 0...255) }),
      publicKey: .init(key.publicKey),
      notValidBefore: now.addingTimeInterval(-30),
      notValidAfter: now.addingTimeInterval(262_980 * 3600),
      issuer: name,
      subject: name,
      signatureAlgorithm: .ecdsaWithSHA512,
      extensions: try Certificate.Extensions {
        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
        Critical(KeyUsage(digitalSignature: true, keyEncipherment: true, keyAgreement: true, keyCertSign: true))
        try ExtendedKeyUsage([.clientAuth, .serverAuth])
        SubjectAlternativeNames([.dnsName("localhost")])
      },
      issuerPrivateKey: .init(key)
    )
    var serializer = DER.Serializer()
    try serializer.serialize(certificate)
    let der = serializer.serializedBytes
    return AutoMTLSCertificate(
      der: der,
      pem: try certificate.serializeAsPEM().pemString + "\n",
      certificate: try NIOSSLCertificate(bytes: der, format: .der),
      privateKey: try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem),
      privateKeyPEM: key.pemRepresentation
    )
  }
}
