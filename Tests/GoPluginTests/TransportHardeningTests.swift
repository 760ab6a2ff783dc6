import Crypto
import Foundation
import GRPCCore
import KVInterface
import NIOCore
import NIOHPACK
import NIOSSL
import SwiftASN1
import Synchronization
import Testing
import X509

@testable import GoPlugin
@testable import GoPluginTransport

/// Runs `body`, and records a hang if it has not finished after `seconds`: what these tests
/// guard against is a call or a start that never returns, which must show as a failure with a
/// name, not as the whole suite's time limit.
func withHangGuard<T: Sendable>(
  _ what: String,
  seconds: Int = 30,
  _ body: @escaping @Sendable () async throws -> T
) async throws -> T? {
  try await withThrowingTaskGroup(of: T?.self) { group in
    group.addTask { try await body() }
    group.addTask {
      try await Task.sleep(for: .seconds(seconds))
      return nil
    }
    defer { group.cancelAll() }
    guard let first = try await group.next(), let value = first else {
      Issue.record("\(what) hung for \(seconds) s")
      return nil
    }
    return value
  }
}

/// A self-signed leaf as pyvider-rpcplugin's Python plugins make one: P-384, not a CA, no
/// certSign usage. BoringSSL's own verification refuses it as a trust anchor; Go accepts it
/// because it is exactly the certificate it was given.
struct LeafCertificate {
  let der: [UInt8]
  let pem: String
  let keyPEM: String

  init() throws {
    let key = P384.Signing.PrivateKey()
    let name = try DistinguishedName { CommonName("localhost") }
    let now = Date()
    let certificate = try Certificate(
      version: .v3,
      serialNumber: Certificate.SerialNumber(),
      publicKey: .init(key.publicKey),
      notValidBefore: now.addingTimeInterval(-60),
      notValidAfter: now.addingTimeInterval(3600),
      issuer: name,
      subject: name,
      signatureAlgorithm: .ecdsaWithSHA384,
      extensions: try Certificate.Extensions {
        Critical(BasicConstraints.notCertificateAuthority)
        Critical(KeyUsage(digitalSignature: true, keyAgreement: true))
        try ExtendedKeyUsage([.serverAuth, .clientAuth])
        SubjectAlternativeNames([.dnsName("localhost")])
      },
      issuerPrivateKey: .init(key)
    )
    var serializer = DER.Serializer()
    try serializer.serialize(certificate)
    self.der = serializer.serializedBytes
    self.pem = try certificate.serializeAsPEM().pemString + "\n"
    self.keyPEM = key.pemRepresentation
  }
}

/// What the callers of ``TransportHardeningTests/killedUnderCalls()`` saw, by code.
final class ErrorCounts: Sendable {
  let counts = Mutex<[String: Int]>([:])
}

final class CallCount: Sendable {
  let count = Atomic(0)
}

@Suite("Connection hardening", .timeLimit(.minutes(3)))
struct TransportHardeningTests {
  static let misbehaviours = ["close", "garbage", "http1", "silent"]

  @Test(
    "an address that misbehaves after a valid handshake fails the start, naming what was missing",
    arguments: Self.misbehaviours, ["unix", "tcp"]
  )
  func misbehavingAddress(how: String, network: String) async throws {
    var configuration = try fixture("misbehave", how, network)
    configuration.startTimeout = .seconds(3)
    let what = "a plugin whose listener does \(how) over \(network)"
    let failure = try await withHangGuard(what) { [configuration] () -> PluginError? in
      do {
        try await withPluginClient(configuration) { client in
          _ = try await client.dispense("kv", as: KVPlugin.self).get("k")
        }
      } catch let error as PluginError {
        return error
      } catch {
        Issue.record("not a PluginError: \(error)")
      }
      return nil
    }
    let error = try #require(failure ?? nil)
    #expect(error.code == .connectionFailed, "\(error)")
    #expect(error.pid != nil)
    #expect(error.message.contains(network == "tcp" ? "127.0.0.1:" : "unix:/"), "\(error)")
    #expect(!error.message.contains("notFound"), "\(error)")
    switch how {
    case "close":
      #expect(error.message.contains("closed the connection before sending its HTTP/2 SETTINGS"), "\(error)")
    case "silent": #expect(error.message.contains("no HTTP/2 SETTINGS from the plugin at"), "\(error)")
    default: #expect(error.message.contains("HTTP/2"), "\(error)")
    }
  }

  @Test("a call whose connection closed before its HEADERS fails instead of waiting forever")
  func callOnClosedConnection() async throws {
    try await withPluginClient(try fixture()) { client in
      let info = try await client.info
      let transport = try Transports.client(network: info.network, address: info.address, maxMessageSize: 1 << 20)
      try await withGRPCClient(transport: PluginTransport(transport)) { grpcClient in
        // A real connection, closed under a call that has its stream but has not sent its HEADERS.
        _ = try await KVClient(grpcClient: grpcClient).get("version")
        let handler = try await transport.readyConnection()
        let stream = try await handler.eventLoop.submit {
          let stream = handler.makeClientStream()
          handler.closeNow()
          return stream
        }.get()
        _ = try await handler.closed.futureResult.get()
        let outbound = ClientOutbound(stream: stream, headers: ["content-type": "application/grpc"])
        // Off the event loop, as a caller's first write is.
        try? await outbound.write(.metadata([:]))
        let result = try await withHangGuard("a call on a closed connection", seconds: 10) { () -> Bool in
          do {
            for try await _ in ClientInbound(stream: stream) {}
            return false
          } catch {
            return true
          }
        }
        #expect(result == true, "the call ended without an error")
      }
    }
  }

  @Test("a plugin killed under a stream of calls never leaves a caller waiting")
  func killedUnderCalls() async throws {
    // Each iteration: one plugin, many concurrent callers, and SIGKILL from whichever caller
    // finishes the chosen call, so the kill lands before, during and after calls' HEADERS.
    let iterations = 200
    let callers = 24
    var configuration = try fixture()
    configuration.gracefulStopTimeout = .milliseconds(200)
    let errors = ErrorCounts()
    for iteration in 0..<iterations {
      let killAfter = iteration % 40
      let what = "iteration \(iteration) (kill after \(killAfter) calls)"
      let ended = try await withHangGuard(what) { [configuration] () -> Int in
        try await withPluginClient(configuration) { client in
          let pid = try await client.info.pid
          let kv = try await client.dispense("kv", as: KVPlugin.self)
          let completed = CallCount()
          if killAfter == 0 { kill(pid, SIGKILL) }
          return await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<callers {
              group.addTask {
                // Bounded: once the plugin is gone every call must fail, long before this.
                for _ in 0..<10_000 {
                  do {
                    _ = try await kv.get("version")
                  } catch {
                    let kind = (error as? RPCError).map { "\($0.code)" } ?? "\(type(of: error))"
                    errors.counts.withLock { $0[kind, default: 0] += 1 }
                    return true
                  }
                  if completed.count.add(1, ordering: .relaxed).newValue == killAfter { kill(pid, SIGKILL) }
                }
                return false
              }
            }
            var failed = 0
            for await ended in group where ended { failed += 1 }
            return failed
          }
        }
      }
      guard let ended else { break }
      #expect(ended == callers, "iteration \(iteration): only \(ended) of \(callers) callers saw an error")
    }
    let counts = errors.counts.withLock { $0 }
    #expect(counts.values.reduce(0, +) == iterations * callers, "\(counts)")
  }

  @Test("AutoMTLS pins the plugin's certificate: a self-signed P-384 leaf that is no CA works")
  func pinnedLeafCertificate() async throws {
    let leaf = try LeafCertificate()
    let directory = try Self.tlsDirectory(serving: leaf, announcing: leaf.der)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var configuration = try fixture("serve-announcing", environment: ["FIXTURE_TLS_DIR": directory])
    configuration.tls = .autoMTLS
    let answer = try await withHangGuard("a call to a plugin with a leaf certificate") { [configuration] in
      try await withPluginClient(configuration) { client in
        #expect(try await client.info.serverCertificate == leaf.der)
        let kv = try await client.dispense("kv", as: KVPlugin.self)
        try await kv.put("pinned", value: [1, 2, 3])
        return try await kv.get("pinned")
      }
    }
    #expect(answer == [1, 2, 3])
  }

  @Test("a plugin serving another certificate than it announced is refused with a TLS error")
  func wrongCertificate() async throws {
    let served = try LeafCertificate()
    let announced = try LeafCertificate()
    let directory = try Self.tlsDirectory(serving: served, announcing: announced.der)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var configuration = try fixture("serve-announcing", environment: ["FIXTURE_TLS_DIR": directory])
    configuration.tls = .autoMTLS
    configuration.startTimeout = .seconds(10)
    let what = "a plugin with the wrong certificate"
    let result = try await withHangGuard(what) { [configuration] () -> (PluginError, PluginExit)? in
      try await failedStart(configuration)
    }
    let (error, exit) = try #require(result ?? nil)
    #expect(error.code == .connectionFailed)
    #expect(error.message.contains("TLS handshake with the plugin at unix:/"), "\(error)")
    #expect(error.message.contains("presented a certificate other than the one it announced"), "\(error)")
    #expect(exit.reason == .killed)
  }

  static func tlsDirectory(serving served: LeafCertificate, announcing announced: [UInt8]) throws -> String {
    let directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("goplugin-pin-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    try Data(served.pem.utf8).write(to: directory.appendingPathComponent("server.pem"))
    try Data(served.keyPEM.utf8).write(to: directory.appendingPathComponent("server.key"))
    try Data(announced).write(to: directory.appendingPathComponent("announced.der"))
    return directory.path
  }
}
