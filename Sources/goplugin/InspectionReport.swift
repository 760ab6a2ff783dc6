import Crypto
import GoPlugin
import SwiftASN1
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What `goplugin inspect` found; its JSON form is what `--json` prints.
struct InspectionReport: Encodable {
  struct TLS: Encodable {
    /// `none` or `AutoMTLS`.
    var mode: String
    /// The certificate in the plugin's handshake, when it sent one.
    var serverCertificate: CertificateSummary?
  }

  struct CertificateSummary: Encodable {
    /// SHA-256 of the DER bytes, as `openssl x509 -fingerprint -sha256` prints it.
    var sha256: String
    var subject: String?
    var notValidAfter: String?

    init(der: [UInt8]) {
      self.sha256 = SHA256.hash(data: der).map { byte in
        let hex = String(byte, radix: 16, uppercase: true)
        return byte < 16 ? "0" + hex : hex
      }.joined(separator: ":")
      if let certificate = try? Certificate(derEncoded: der) {
        self.subject = certificate.subject.description
        self.notValidAfter = certificate.notValidAfter.formatted(.iso8601)
      }
    }
  }

  typealias Health = PluginDescription.Health

  struct Exit: Encodable {
    /// `exited`, `signalled` or `none` (the process never ran).
    var status: String
    var code: Int32?
    var signal: Int32?
    /// Why it ended: `stopped` (it exited when asked), `killed` (SIGKILL after the grace period),
    /// `exitedUnexpectedly`…
    var reason: String
    var description: String
  }

  var command: [String]
  var pid: Int32
  /// The handshake line, rebuilt from what the host parsed out of it.
  var handshake: String
  var coreProtocolVersion: Int
  var `protocol`: String
  var negotiatedVersion: Int
  var offeredVersions: [Int]
  var network: String
  var address: String
  var tls: TLS
  /// Whether the connection is multiplexed (yamux), as the plugin accepted.
  var multiplexed: Bool
  /// `available` when the services came from server reflection, `unavailable` otherwise.
  var reflection: String
  var reflectionError: String?
  var services: [String]
  var health: Health
  /// What a Swift plugin said about itself through the info service.
  var info: PluginDescription.Info?
  /// From launch until the handshake was read and the connection set up.
  var startMilliseconds: Double
  /// How long stopping took: Shutdown, the plugin's exit, and the reap.
  var shutdownMilliseconds: Double
  var exit: Exit

  init(command: [String], inspection: PluginInspection, autoMTLS: Bool) {
    let info = inspection.plugin
    let line = HandshakeLine(
      appVersion: info.negotiatedVersion,
      network: info.network,
      address: info.address,
      protocol: info.protocol,
      serverCertificate: info.serverCertificate
    )
    self.command = command
    self.pid = info.pid
    self.handshake = line.encoded
    self.coreProtocolVersion = inspection.coreProtocolVersion
    self.protocol = info.protocol.rawValue
    self.negotiatedVersion = info.negotiatedVersion
    self.offeredVersions = inspection.offeredVersions
    self.network = info.network.rawValue
    self.address = info.address
    self.tls = TLS(
      mode: autoMTLS ? "AutoMTLS" : "none",
      serverCertificate: info.serverCertificate.map(CertificateSummary.init(der:))
    )
    self.multiplexed = info.multiplexed
    self.reflection = inspection.reflection ? "available" : "unavailable"
    self.reflectionError = inspection.reflectionError
    self.services = inspection.services
    self.health = inspection.health
    self.info = inspection.info
    self.startMilliseconds = Self.milliseconds(inspection.startDuration)
    self.shutdownMilliseconds = Self.milliseconds(inspection.shutdownDuration)
    let exit = inspection.exit
    switch exit.status {
    case .exited(let code)?:
      self.exit = Exit(status: "exited", code: code, reason: "\(exit.reason)", description: exit.description)
    case .signalled(let signal)?:
      self.exit = Exit(status: "signalled", signal: signal, reason: "\(exit.reason)", description: exit.description)
    case nil:
      self.exit = Exit(status: "none", reason: "\(exit.reason)", description: exit.description)
    }
  }

  static func milliseconds(_ duration: Duration) -> Double {
    let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    return (seconds * 10_000).rounded() / 10
  }

  /// The human form.
  var text: String {
    var lines: [(String, String)] = [
      ("plugin", "\(self.command.joined(separator: " ")) (pid \(self.pid))"),
      ("handshake", self.abbreviatedHandshake),
      ("protocol", "\(self.protocol) (core protocol \(self.coreProtocolVersion))"),
      (
        "version",
        "\(self.negotiatedVersion) (offered \(self.offeredVersions.map(String.init).joined(separator: ", ")))"
      ),
      ("address", "\(self.network) \(self.address)"),
    ]
    switch (self.tls.mode, self.tls.serverCertificate) {
    case ("none", nil):
      lines.append(("tls", "none (plaintext)"))
    case ("none", _?):
      lines.append(("tls", "none (the plugin sent a certificate the host did not ask for)"))
    case (let mode, let certificate):
      lines.append(("tls", mode))
      if let certificate {
        lines.append(("  cert", "SHA-256 \(certificate.sha256)"))
        if let subject = certificate.subject { lines.append(("  subject", subject)) }
        if let notValidAfter = certificate.notValidAfter { lines.append(("  expires", notValidAfter)) }
      }
    }
    var reflection = self.reflection
    if let reflectionError { reflection += " (\(reflectionError))" }
    if self.protocol == PluginProtocol.netRPC.rawValue {
      reflection = "none (net/rpc); the control services only"
    } else if self.reflection != "available" {
      reflection += "; services from the health service"
    }
    lines.append(("reflection", reflection))
    if self.services.isEmpty {
      lines.append(("services", "(none found)"))
    } else {
      for (index, service) in self.services.enumerated() {
        lines.append((index == 0 ? "services" : "", service))
      }
    }
    lines.append(
      ("health", "\(self.health.service): " + (self.health.status ?? "check failed: \(self.health.error ?? "?")")))
    if let info {
      lines += info.textLines
    } else if self.protocol == PluginProtocol.grpc.rawValue {
      lines.append(("info", "none (not a Swift plugin)"))
    }
    lines.append(("start", "\(Self.format(self.startMilliseconds)) (launch to handshake)"))
    lines.append(("shutdown", Self.format(self.shutdownMilliseconds)))
    lines.append(("exit", self.exit.description))

    let width = lines.map(\.0.count).max() ?? 0
    return lines.map { label, value in
      let prefix = label.isEmpty ? "" : label + ":"
      return prefix + String(repeating: " ", count: width + 2 - prefix.count) + value
    }.joined(separator: "\n")
  }

  /// The handshake line with its certificate cut short: `--json` has it whole.
  private var abbreviatedHandshake: String {
    var fields = self.handshake.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
    guard fields.count > 5, fields[5].count > 16 else { return self.handshake }
    fields[5] = "\(fields[5].prefix(12))…(\(fields[5].count) base64 characters)"
    return fields.joined(separator: "|")
  }

  private static func format(_ milliseconds: Double) -> String {
    "\(milliseconds) ms"
  }
}

extension PluginDescription.Info {
  /// The info service's answer, one labelled line per field, as `inspect` prints it.
  var textLines: [(String, String)] {
    var lines: [(String, String)] = [("name", self.name + (self.version.map { " " + $0 } ?? ""))]
    if let description { lines.append(("about", description)) }
    for offer in self.versions {
      lines.append(
        ("offers", "v\(offer.version) \(offer.protocol): \(offer.plugins.joined(separator: ", "))"))
    }
    if let build {
      lines.append(("built", build.summary))
    }
    for (key, value) in self.metadata.sorted(by: { $0.key < $1.key }) {
      lines.append(("  " + key, value))
    }
    return lines
  }

  /// One line: `v2 netrpc: greeter; v3 grpc: kv`.
  var offersSummary: String {
    self.versions.map { "v\($0.version) \($0.protocol): \($0.plugins.joined(separator: ","))" }
      .joined(separator: "; ")
  }
}

extension PluginDescription.Info.Build {
  var summary: String {
    "swift-go-plugin \(self.libraryVersion)" + (self.swiftVersion.map { ", Swift \($0)" } ?? "")
      + ", \(self.os)/\(self.arch)"
  }
}
