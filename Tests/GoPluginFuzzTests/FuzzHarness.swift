import Crypto
import Foundation
import GRPCCore
import GoPluginTesting
import KVInterface
import Logging
import SwiftASN1
import X509

@testable import GoPlugin

#if canImport(Glibc)
import Glibc
#endif

/// What one run of the fuzz harness shares between its cases: a directory, the certificates
/// lines may carry and listeners may present, and the time limits.
struct FuzzHarness: Sendable {
  struct Served: Sendable {
    var certificatePath: String
    var keyPath: String
  }

  let directory: String
  let served: [FuzzCase.ServedCertificate: Served]
  /// `{CERT_…}` placeholders and what they stand for.
  let certificateFields: [(String, String)]
  let startTimeout: Duration
  /// How long past the start timeout a case may take before it counts as a hang. A started
  /// plugin gets one call and a stop on top of its start, each bounded well inside this.
  let margin: Duration
  let logger = Logger(label: "fuzz") { _ in SwiftLogNoOpLogHandler() }

  init(startTimeout: Duration, margin: Duration) throws {
    var template = Array("\(NSTemporaryDirectory())/gopluginfuzz-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
      throw PluginError(code: .invalidConfiguration, message: "cannot make the fuzz directory")
    }
    self.directory = String(cString: made)
    self.startTimeout = startTimeout
    self.margin = margin

    // The one a line names, another of the same kind (a plugin serving the wrong one), and a
    // self-signed P-384 leaf that is no CA, as some non-Go plugins serve.
    let pinned = try AutoMTLSCertificate.generate()
    let other = try AutoMTLSCertificate.generate()
    let leaf = try Self.leafCertificate()
    var served: [FuzzCase.ServedCertificate: Served] = [:]
    for (kind, pem, key) in [
      (FuzzCase.ServedCertificate.pinned, pinned.pem, pinned.privateKeyPEM), (.other, other.pem, other.privateKeyPEM),
      (.leaf, leaf.pem, leaf.key),
    ] {
      let paths = Served(
        certificatePath: "\(self.directory)/\(kind.rawValue).pem", keyPath: "\(self.directory)/\(kind.rawValue).key")
      try pem.write(toFile: paths.certificatePath, atomically: true, encoding: .utf8)
      try key.write(toFile: paths.keyPath, atomically: true, encoding: .utf8)
      served[kind] = paths
    }
    self.served = served
    let pinnedField = Base64.encodeUnpadded(pinned.der)
    self.certificateFields = [
      ("{CERT_PINNED}", pinnedField),
      ("{CERT_OTHER}", Base64.encodeUnpadded(other.der)),
      ("{CERT_LEAF}", Base64.encodeUnpadded(leaf.der)),
      ("{CERT_HALF}", String(pinnedField.prefix(pinnedField.count / 2))),
      ("{CERT_GARBAGE}", String(repeating: "!*%", count: 40)),
    ]
  }

  static func leafCertificate() throws -> (der: [UInt8], pem: String, key: String) {
    let key = P384.Signing.PrivateKey()
    let name = try DistinguishedName { CommonName("localhost") }
    let now = Date()
    let certificate = try Certificate(
      version: .v3,
      serialNumber: Certificate.SerialNumber(),
      publicKey: .init(key.publicKey),
      notValidBefore: now.addingTimeInterval(-60),
      notValidAfter: now.addingTimeInterval(24 * 3600),
      issuer: name,
      subject: name,
      signatureAlgorithm: .ecdsaWithSHA384,
      extensions: try Certificate.Extensions {
        KeyUsage(digitalSignature: true)
        try ExtendedKeyUsage([.serverAuth, .clientAuth])
        SubjectAlternativeNames([.dnsName("localhost")])
      },
      issuerPrivateKey: .init(key)
    )
    var serializer = DER.Serializer()
    try serializer.serialize(certificate)
    return (serializer.serializedBytes, try certificate.serializeAsPEM().pemString + "\n", key.pemRepresentation)
  }

  func removeDirectory() {
    try? FileManager.default.removeItem(atPath: self.directory)
  }
}

/// How a case ended.
enum FuzzOutcome: Sendable {
  /// The plugin started; it was called once (with what result) and stopped.
  case started(call: String)
  /// The start failed with a typed error.
  case refused(PluginError)
  /// Something other than a `PluginError` came out.
  case untyped(String)
  /// The case did not end within the start timeout plus the margin.
  case hang
}

/// What a case left wrong, by category; each category is one line of the report.
enum FuzzProblem: String, Sendable, CaseIterable {
  case hang = "hangs"
  case untyped = "untyped errors"
  case emptyMessage = "errors with an empty message"
  case processLeft = "plugin processes left running"
  case directoryLeft = "private directories left behind"
  case decoyTouched = "decoy sockets deleted or replaced"
  case unverified = "cases without a report from the plugin (not all checks ran)"
}

struct FuzzResult: Sendable {
  var fuzzCase: FuzzCase
  var outcome: FuzzOutcome
  var duration: Duration
  var problems: [FuzzProblem: String]
}

/// Real listening sockets in a case's own directory, standing for sockets of other programs of
/// the same user: a host must never remove them, whatever a plugin's line names.
final class DecoySockets {
  struct Decoy {
    var path: String
    var descriptor: Int32
    var inode: Int
  }

  private(set) var decoys: [Decoy] = []

  init(directory: String, count: Int) throws {
    for index in 0..<count {
      let path = "\(directory)/decoy\(index).sock"
      // Close-on-exec, or every plugin launched meanwhile would hold the decoy open.
      #if os(Linux)
      let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
      #else
      let descriptor = socket(AF_UNIX, SOCK_STREAM, 0)
      _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
      #endif
      var address = sockaddr_un()
      address.sun_family = sa_family_t(AF_UNIX)
      withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (offset, byte) in path.utf8.enumerated() { raw[offset] = byte }
      }
      let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
      }
      guard descriptor >= 0, bound == 0, listen(descriptor, 64) == 0 else {
        throw PluginError(
          code: .listenFailed, message: "cannot make decoy \(path): \(String(cString: strerror(errno)))")
      }
      self.decoys.append(Decoy(path: path, descriptor: descriptor, inode: Self.socketInode(path) ?? -1))
    }
  }

  /// The decoys that are no longer the sockets this made.
  var touched: [String] {
    self.decoys.compactMap { decoy in Self.socketInode(decoy.path) == decoy.inode ? nil : decoy.path }
  }

  /// The inode of the socket at `path` (not of what a link there points to); `nil` if it is gone
  /// or no longer a socket.
  static func socketInode(_ path: String) -> Int? {
    guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
      attributes[.type] as? FileAttributeType == .typeSocket
    else { return nil }
    return (attributes[.systemFileNumber] as? NSNumber)?.intValue
  }

  func remove() {
    for decoy in self.decoys {
      _ = close(decoy.descriptor)
      unlink(decoy.path)
    }
  }
}

extension FuzzHarness {
  /// Runs one case and checks what it left.
  func run(_ fuzzCase: FuzzCase) async throws -> FuzzResult {
    let caseDirectory = "\(self.directory)/case\(fuzzCase.index)"
    try FileManager.default.createDirectory(atPath: caseDirectory, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: caseDirectory) }
    let decoys = try DecoySockets(directory: caseDirectory, count: 2)
    defer { decoys.remove() }
    let report = "\(caseDirectory)/report"
    let configuration = try self.configuration(for: fuzzCase, in: caseDirectory, report: report, decoys: decoys)

    // A server that stays silent after a valid SETTINGS frame may rightly leave a call waiting
    // forever, so that call gets a deadline. Behind any other server, a call's connection ends
    // or never gets set up, so the call must fail by itself: it gets no deadline, as `kv demo`'s
    // calls have none, and a call nothing fails is a hang.
    let deadline: Duration? = [.settings, .tlsSettings].contains(fuzzCase.behaviour) ? .seconds(1) : nil
    let clock = ContinuousClock()
    let start = clock.now
    // Unstructured on purpose: a host that hangs must fail its case, not the whole run, and a
    // task group would wait for the hung child forever.
    let attempt = Task { [logger] in await Self.attempt(configuration, callDeadline: deadline, logger: logger) }
    let outcome = await Self.value(of: attempt, within: self.startTimeout + self.margin) ?? .hang
    let duration = clock.now - start
    var problems: [FuzzProblem: String] = [:]
    switch outcome {
    case .hang:
      problems[.hang] = "did not end within \(self.startTimeout + self.margin)"
      // Cancelling a start kills the plugin at once; a host that does not listen is abandoned.
      attempt.cancel()
      if let late = await Self.value(of: attempt, within: .seconds(3)) {
        problems[.hang]! += "; ended \(Self.name(late)) once cancelled"
      } else {
        problems[.hang]! += "; still running after cancellation"
      }
    case .untyped(let text):
      problems[.untyped] = text
    case .refused(let error) where error.message.isEmpty:
      problems[.emptyMessage] = "\(error.code)"
    case .started, .refused:
      break
    }
    problems.merge(Self.leftovers(outcome: outcome, report: report, decoys: decoys)) { first, _ in first }
    return FuzzResult(fuzzCase: fuzzCase, outcome: outcome, duration: duration, problems: problems)
  }

  /// A host configured as the case says, launching `fuzz-plugin` with the case in its environment.
  func configuration(
    for fuzzCase: FuzzCase,
    in caseDirectory: String,
    report: String,
    decoys: DecoySockets
  ) throws -> PluginClientConfiguration {
    var environment = [
      "FUZZ_REPORT": report,
      "FUZZ_LISTEN": fuzzCase.listener.rawValue,
      "FUZZ_SERVE": fuzzCase.behaviour.rawValue,
      "FUZZ_AFTER": fuzzCase.after.rawValue,
      "FUZZ_SEED": String(fuzzCase.garbageSeed),
      "FUZZ_TLS_CERT": self.served[fuzzCase.served]!.certificatePath,
      "FUZZ_TLS_KEY": self.served[fuzzCase.served]!.keyPath,
    ]
    if let line = fuzzCase.line {
      let path = "\(caseDirectory)/line"
      try Data(self.filledIn(line, decoys: decoys)).write(to: URL(fileURLWithPath: path))
      environment["FUZZ_LINE_FILE"] = path
    }
    var configuration = PluginClientConfiguration(
      command: try BuildProducts.command("fuzz-plugin", environment: environment),
      handshake: .kv,
      plugins: ["kv": KVPlugin()]
    )
    configuration.standardInput = .none
    configuration.startTimeout = self.startTimeout
    configuration.gracefulStopTimeout = .milliseconds(500)
    configuration.tls = fuzzCase.autoMTLS ? .autoMTLS : nil
    configuration.multiplexBroker = fuzzCase.multiplex
    if fuzzCase.netRPC { configuration.allowedProtocols = [.grpc, .netRPC] }
    return configuration
  }

  /// What the case left behind: its plugin process, its private directory, touched decoys.
  /// Whatever is left is cleaned up here, so that one failed case does not weigh on the next.
  static func leftovers(outcome: FuzzOutcome, report: String, decoys: DecoySockets) -> [FuzzProblem: String] {
    var problems: [FuzzProblem: String] = [:]
    // What the plugin said of itself: its pid and the private directory it was given.
    var pid: Int32?
    var privateDirectory: String?
    if let text = try? String(contentsOfFile: report, encoding: .utf8) {
      let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
      pid = lines.first.flatMap { Int32($0) }
      privateDirectory = lines.count > 1 && !lines[1].isEmpty ? String(lines[1]) : nil
    }
    if pid == nil, case .refused(let error) = outcome { pid = error.pid }
    if pid == nil || privateDirectory == nil {
      problems[.unverified] = "pid \(pid.map(String.init) ?? "?"), directory \(privateDirectory ?? "?")"
    }
    if let pid, kill(pid, 0) == 0 {
      // Alive, or a zombie nobody reaped: either way the host left it.
      problems[.processLeft] = "pid \(pid) \(Self.isFuzzPlugin(pid) ? "still running" : "not reaped")"
      if Self.isFuzzPlugin(pid) { kill(pid, SIGKILL) }
    }
    if let privateDirectory, FileManager.default.fileExists(atPath: privateDirectory) {
      let left = (try? FileManager.default.contentsOfDirectory(atPath: privateDirectory)) ?? []
      problems[.directoryLeft] = "\(privateDirectory) holds \(left)"
      try? FileManager.default.removeItem(atPath: privateDirectory)
    }
    let touched = decoys.touched
    if !touched.isEmpty {
      problems[.decoyTouched] = touched.map { ($0 as NSString).lastPathComponent }.joined(separator: ", ")
    }
    return problems
  }

  /// The line with the harness's placeholders filled in; the plugin fills in its own.
  func filledIn(_ line: [UInt8], decoys: DecoySockets) -> [UInt8] {
    var replacements = self.certificateFields
    for (index, decoy) in decoys.decoys.enumerated() { replacements.append(("{DECOY\(index)}", decoy.path)) }
    var bytes = line
    for (token, value) in replacements {
      let token = Array(token.utf8)
      var result: [UInt8] = []
      result.reserveCapacity(bytes.count)
      var index = 0
      while index < bytes.count {
        if bytes[index] == token[0], bytes[index...].starts(with: token) {
          result += Array(value.utf8)
          index += token.count
        } else {
          result.append(bytes[index])
          index += 1
        }
      }
      bytes = result
    }
    return bytes
  }

  /// Starts the plugin; if it starts, calls it once and stops it.
  static func attempt(
    _ configuration: PluginClientConfiguration,
    callDeadline: Duration?,
    logger: Logger
  ) async -> FuzzOutcome {
    do {
      let call = try await withPluginClient(configuration, logger: logger) { client in
        do {
          if let callDeadline {
            try await client.ping(timeout: callDeadline)
            return "ping answered"
          }
          _ = try await client.dispense("kv", as: KVPlugin.self).get("fuzz")
          return "get answered"
        } catch let error as RPCError {
          return "call failed: \(error.code)"
        } catch let error as PluginError {
          return "call failed: \(error.code)"
        }
      }
      return .started(call: call)
    } catch let error as PluginError {
      return .refused(error)
    } catch {
      return .untyped("\(type(of: error)): \(error)")
    }
  }

  /// The task's value if it has one within `limit`, else `nil`; the task is left running.
  static func value<Value: Sendable>(of task: Task<Value, Never>, within limit: Duration) async -> Value? {
    let (stream, continuation) = AsyncStream<Value?>.makeStream()
    let waiter = Task { continuation.yield(await task.value) }
    let timer = Task {
      try? await Task.sleep(for: limit)
      continuation.yield(nil)
    }
    defer {
      waiter.cancel()
      timer.cancel()
      continuation.finish()
    }
    for await first in stream { return first }
    return nil
  }

  static func name(_ outcome: FuzzOutcome) -> String {
    switch outcome {
    case .started(let call): "started (\(call))"
    case .refused(let error): "refused (\(error.code))"
    case .untyped(let text): "with an untyped error (\(text))"
    case .hang: "hung"
    }
  }

  /// Whether `pid` is a live `fuzz-plugin`: a zombie or a recycled pid is not a plugin left running.
  static func isFuzzPlugin(_ pid: Int32) -> Bool {
    guard kill(pid, 0) == 0 else { return false }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
    // "pid (comm) state …": the state follows the last ')'.
    guard let close = stat.lastIndex(of: ")") else { return false }
    let state = stat[stat.index(after: close)...].dropFirst().first
    return stat.contains("(fuzz-plugin)") && state != "Z"
  }
}
