import Crypto
import Foundation
import GRPCCore
import GoPluginProtos
import GoPluginTesting
import KVInterface
import NIOSSL
import SwiftASN1
import SwiftProtobuf
import Testing
import X509

@testable import GoPlugin

@Suite("AutoMTLS and TLS", .timeLimit(.minutes(2)))
struct TLSTests {
  @Test("certificates are go-plugin's: P-521, SHA-512, localhost, a CA for both ends")
  func certificateShape() throws {
    let certificate = try AutoMTLSCertificate.generate()
    #expect(certificate.pem.hasPrefix("-----BEGIN CERTIFICATE-----\n"))
    #expect(certificate.pem.hasSuffix("-----END CERTIFICATE-----\n"))
    // A P-521 certificate's DER is about 600 bytes: ~800 base64 characters in the handshake.
    #expect((560...660).contains(certificate.der.count))
    let parsed = try Certificate(derEncoded: certificate.der)
    #expect(parsed.signatureAlgorithm == .ecdsaWithSHA512)
    #expect(P521.Signing.PublicKey(parsed.publicKey) != nil)
    #expect(parsed.subject.description.contains("CN=localhost"))
    #expect(parsed.subject == parsed.issuer)
    #expect(try parsed.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: nil))
    #expect(try parsed.extensions.subjectAlternativeNames?.contains(.dnsName("localhost")) == true)
    let usages = try #require(try parsed.extensions.extendedKeyUsage)
    #expect(usages.contains(.serverAuth) && usages.contains(.clientAuth))
    // go-plugin's validity: from 30 s ago, for 262,980 hours.
    let lifetime = parsed.notValidAfter.timeIntervalSince(parsed.notValidBefore)
    #expect(abs(lifetime - (262_980 * 3600 + 30)) < 2)
  }

  @Test("Swift host and Swift plugin talk over AutoMTLS")
  func autoMTLS() async throws {
    var configuration = try fixture()
    configuration.tls = .autoMTLS
    try await withPluginClient(configuration) { client in
      let info = try await client.info
      let certificate = try #require(info.serverCertificate)
      #expect(certificate.count > 500)
      #expect(
        HandshakeLine(appVersion: 1, network: .unix, address: "/p", serverCertificate: certificate).encoded.count > 700)
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      try await kv.put("secret", value: [4, 2])
      #expect(try await kv.get("secret") == [4, 2])
      try await client.ping()

      // Anyone else on the machine: no certificate, or a certificate the plugin does not know.
      let pluginCertificate = try NIOSSLCertificate(bytes: certificate, format: .der)
      let stranger = try AutoMTLSCertificate.generate()
      let strangerTLS = ConnectionTLS(
        context: try TLSContexts.autoMTLSClient(own: stranger, peer: pluginCertificate),
        pinnedPeerCertificate: certificate
      )
      for tls in [nil, strangerTLS] {
        let transport = try Transports.client(
          network: info.network,
          address: info.address,
          maxMessageSize: 1 << 20,
          tls: tls,
          serverHostname: "localhost"
        )
        try await withGRPCClient(transport: transport) { intruder in
          var options = CallOptions.defaults
          options.timeout = .seconds(2)
          options.waitForReady = false
          await #expect(throws: RPCError.self) {
            _ = try await Grpc_Health_V1_Health.Client(wrapping: intruder).check(
              .with { $0.service = "plugin" }, options: options)
          }
        }
      }
    }
  }

  @Test("custom TLS: the host's configuration and the plugin's, with certificates of their own")
  func customTLS() async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "goplugin-tls-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let server = try AutoMTLSCertificate.generate()
    let client = try AutoMTLSCertificate.generate()
    try Data(server.pem.utf8).write(to: directory.appendingPathComponent("server.pem"))
    try Data(server.privateKeyPEM.utf8).write(to: directory.appendingPathComponent("server.key"))
    try Data(client.pem.utf8).write(to: directory.appendingPathComponent("client.pem"))

    func configuration(presenting certificate: AutoMTLSCertificate) throws -> PluginClientConfiguration {
      var tls = TLSConfiguration.makeClientConfiguration()
      tls.certificateChain = [.certificate(certificate.certificate)]
      tls.privateKey = .privateKey(certificate.privateKey)
      tls.trustRoots = .certificates([server.certificate])
      var configuration = try fixture("serve-tls", environment: ["FIXTURE_TLS_DIR": directory.path])
      configuration.tls = .custom(tls)
      return configuration
    }

    try await withPluginClient(try configuration(presenting: client)) { plugin in
      #expect(try await plugin.info.serverCertificate == nil)
      let kv = try await plugin.dispense("kv", as: KVPlugin.self)
      try await kv.put("custom", value: [7])
      #expect(try await kv.get("custom") == [7])
    }
    // A client certificate the plugin was not given is turned away, and the start says so
    // with the plugin's TLS alert.
    let (error, _) = try await failedStart(try configuration(presenting: try AutoMTLSCertificate.generate()))
    #expect(error.code == .connectionFailed)
    #expect(error.message.contains("TLS handshake with the plugin at"), "\(error)")
  }

  @Test("an unreadable PLUGIN_CLIENT_CERT stops the plugin with a reason")
  func badClientCertificate() async throws {
    let capture = LogCapture()
    let client = PluginClient(
      configuration: try fixture(environment: ["PLUGIN_CLIENT_CERT": "not a certificate"]), logger: capture.logger)
    await #expect { try await client.run() } throws: { ($0 as? PluginError)?.code == .exitedBeforeHandshake }
    #expect(await client.exit.status == .exited(1))
    #expect(capture.records.contains { $0.message.contains("client cert provided but failed to parse") })
  }

  @Test("a plugin that ignores AutoMTLS is refused before any call")
  func pluginWithoutCertificate() async throws {
    var configuration = try fixture("serve-five-fields")
    configuration.tls = .autoMTLS
    let (error, exit) = try await failedStart(configuration)
    #expect(error.code == .invalidServerCertificate)
    #expect(exit.reason == .killed)
  }
}
