import Foundation
import KVInterface
import NIOSSL
import SystemPackage
import Testing

@testable import GoPlugin

/// ``PluginError/cause``: the error a failure came from stays reachable, typed, instead of being
/// flattened into the message.
@Suite("Plugin errors")
struct PluginErrorTests {
  @Test("a checksum file that does not exist keeps the system's error as the cause")
  func missingChecksumFile() throws {
    let path = "/nonexistent/\(UUID().uuidString)"
    let error = #expect(throws: PluginError.self) { try PluginChecksum(ofFile: path) }
    #expect(error?.code == .invalidConfiguration)
    #expect(error?.message == "cannot read \(path): No such file or directory")
    #expect(error?.cause as? Errno == .noSuchFileOrDirectory)
  }

  @Test("a checksum file that cannot be read keeps the read's error, not a wrapper of it")
  func unreadableChecksumFile() throws {
    // A directory opens, and fails at the first read.
    let error = #expect(throws: PluginError.self) { try PluginChecksum(ofFile: "/") }
    #expect(error?.code == .invalidConfiguration)
    #expect(error?.cause as? Errno == .isDirectory)
  }

  @Test("a host certificate that does not parse keeps the TLS library's error")
  func badClientCertificate() throws {
    let environment = [PluginEnvironment.clientCertificate: "not a certificate"]
    let error = #expect(throws: PluginError.self) { try ConnectionSecurity.plugin(tls: nil, environment: environment) }
    #expect(error?.code == .invalidConfiguration)
    #expect(error?.cause is NIOSSLError)
  }

  @Test("a socket directory that cannot be made says why, as the cause")
  func socketDirectory() throws {
    let error = #expect(throws: PluginError.self) {
      try SocketDirectory.makePrivate(in: "/nonexistent/\(UUID().uuidString)", prefix: "plugin")
    }
    #expect(error?.code == .listenFailed)
    #expect(error?.cause as? Errno == .noSuchFileOrDirectory)
  }

  @Test("an executable the host may not run keeps the system's answer as the cause")
  func notExecutable() async throws {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("not-executable-\(UUID().uuidString)")
    try Data("#!/bin/sh\n".utf8).write(to: file)
    defer { try? FileManager.default.removeItem(at: file) }
    let configuration = PluginClientConfiguration(
      command: PluginCommand(file.path),
      handshake: .kv,
      plugins: ["kv": KVPlugin()]
    )
    let (error, _) = try await failedStart(configuration)
    #expect(error.code == .launchFailed)
    #expect(error.cause as? Errno == .permissionDenied)
  }

  @Test("an executable the system cannot start keeps the launcher's error as the cause")
  func cannotExecute() async throws {
    // Marked executable, but neither a binary nor a script: the exec itself fails.
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("not-a-program-\(UUID().uuidString)")
    try Data([0, 1, 2, 3]).write(to: file)
    defer { try? FileManager.default.removeItem(at: file) }
    try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: file.path)
    let configuration = PluginClientConfiguration(
      command: PluginCommand(file.path),
      handshake: .kv,
      plugins: ["kv": KVPlugin()]
    )
    let (error, _) = try await failedStart(configuration)
    #expect(error.code == .launchFailed)
    let cause = try #require(error.cause)
    #expect(!(cause is PluginError))
    #expect(error.message.hasSuffix(String(describing: cause)))
  }

  @Test("the cause is left out of equality and hashing")
  func equality() {
    let plain = PluginError(code: .listenFailed, message: "bind /x: Permission denied")
    let caused = PluginError(code: .listenFailed, message: "bind /x: Permission denied", cause: Errno.permissionDenied)
    #expect(plain == caused)
    #expect(Set([plain, caused]).count == 1)
    #expect(plain != PluginError(code: .connectionFailed, message: "bind /x: Permission denied"))
  }
}
