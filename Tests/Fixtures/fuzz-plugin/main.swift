import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

// A plugin for the fuzz harness (Tests/GoPluginTests/Fuzz): it prints the first line its case
// gives it, byte for byte, and serves one misbehaviour behind it. It never speaks gRPC: every
// case is a plugin a host has to refuse, or to give up on, cleanly.
//
// The case comes from the environment, so that a line can hold any byte:
//   FUZZ_REPORT     a file to write "pid\nsocket directory\n" to, before anything else
//   FUZZ_LINE_FILE  the bytes to print on stdout; absent: print nothing. "{ADDR}" becomes the
//                   listener's address, "{DIR}" the directory PLUGIN_UNIX_SOCKET_DIR names
//   FUZZ_LISTEN     none | unix | tcp
//   FUZZ_SERVE      what the listener does with a connection (see `Behaviour`)
//   FUZZ_AFTER      stay | exit | close-stdout: what the process does once the line is out
//   FUZZ_TLS_CERT, FUZZ_TLS_KEY   PEM files the TLS behaviours serve
//   FUZZ_SEED       seeds the garbage bytes
//   FUZZ_LIFETIME   seconds after which the process ends itself (default 30), so a host that
//                   fails to stop it never leaves it running for long
#if canImport(Glibc)
import Glibc
#endif

let environment = ProcessInfo.processInfo.environment

// SIGALRM's default action ends the process, whatever state the host left it in.
alarm(UInt32(environment["FUZZ_LIFETIME"].flatMap(UInt32.init) ?? 30))

/// What the listener does with each connection it accepts.
enum Behaviour: String {
  /// Accepts and closes at once.
  case close
  /// Answers with random bytes and stays open, reading.
  case garbage
  /// Answers with random bytes and closes.
  case garbageClose = "garbage-close"
  /// Answers the first bytes it reads as an HTTP/1.1 server does a request it cannot parse.
  case http1
  /// Accepts, reads everything, answers nothing.
  case silent
  /// Sends a valid, empty HTTP/2 SETTINGS frame, then reads and answers nothing.
  case settings
  /// Completes a TLS handshake with FUZZ_TLS_CERT, then is silent.
  case tls
  /// Completes a TLS handshake with FUZZ_TLS_CERT, sends SETTINGS, then is silent.
  case tlsSettings = "tls-settings"
  /// Never accepts: connections wait in the backlog.
  case noAccept = "no-accept"
}

/// Writes all of `bytes` to `descriptor`, as raw as they come.
func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) {
  var offset = 0
  while offset < bytes.count {
    let written = bytes[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    if written < 0 && errno == EINTR { continue }
    guard written > 0 else { return }
    offset += written
  }
}

/// SplitMix64, for garbage that is the same each time a case is replayed.
struct Garbage {
  var state: UInt64
  mutating func next() -> UInt64 {
    self.state &+= 0x9E37_79B9_7F4A_7C15
    var z = self.state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
  mutating func bytes() -> [UInt8] {
    let count = Int(self.next() % 4096) + 1
    return (0..<count).map { _ in UInt8(truncatingIfNeeded: self.next()) }
  }
}

/// An empty SETTINGS frame: what an HTTP/2 server sends first (RFC 9113 §3.4).
let settingsFrame: [UInt8] = [0, 0, 0, 4, 0, 0, 0, 0, 0]

final class Misbehaviour: ChannelInboundHandler, @unchecked Sendable {
  typealias InboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer
  let behaviour: Behaviour
  var garbage: Garbage
  var answered = false

  init(behaviour: Behaviour, seed: UInt64) {
    self.behaviour = behaviour
    self.garbage = Garbage(state: seed)
  }

  func send(_ context: ChannelHandlerContext, _ bytes: [UInt8]) -> EventLoopFuture<Void> {
    context.writeAndFlush(self.wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)))
  }

  func channelActive(context: ChannelHandlerContext) {
    switch self.behaviour {
    case .close:
      context.close(promise: nil)
    case .garbage:
      _ = self.send(context, self.garbage.bytes())
    case .garbageClose:
      let channel = context.channel
      self.send(context, self.garbage.bytes()).whenComplete { _ in channel.close(promise: nil) }
    case .settings:
      _ = self.send(context, settingsFrame)
    case .http1, .silent, .tls, .tlsSettings, .noAccept:
      break
    }
    context.fireChannelActive()
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    guard self.behaviour == .http1, !self.answered else { return }
    self.answered = true
    let response = Array(
      "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"
        .utf8)
    let channel = context.channel
    self.send(context, response).whenComplete { _ in channel.close(promise: nil) }
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    // Behind TLS, "active" is when the handshake is done.
    if case .handshakeCompleted? = event as? TLSUserEvent, self.behaviour == .tlsSettings {
      _ = self.send(context, settingsFrame)
    }
    context.fireUserInboundEventTriggered(event)
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    context.close(promise: nil)
  }
}

let report = environment["FUZZ_REPORT"]
let socketDirectory = environment["PLUGIN_UNIX_SOCKET_DIR"] ?? ""
if let report {
  // Renamed into place, so that the harness never reads half a report.
  let text = "\(getpid())\n\(socketDirectory)\n"
  try? Data(text.utf8).write(to: URL(fileURLWithPath: report + ".partial"))
  rename(report + ".partial", report)
}

let behaviour = Behaviour(rawValue: environment["FUZZ_SERVE"] ?? "silent") ?? .silent
let seed = environment["FUZZ_SEED"].flatMap(UInt64.init) ?? 1
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

func makeTLSContext() throws -> NIOSSLContext {
  let certificates = try NIOSSLCertificate.fromPEMFile(environment["FUZZ_TLS_CERT"] ?? "")
  var configuration = TLSConfiguration.makeServerConfiguration(
    certificateChain: certificates.map { .certificate($0) },
    privateKey: .privateKey(try NIOSSLPrivateKey(file: environment["FUZZ_TLS_KEY"] ?? "", format: .pem))
  )
  // Any client, as a broken plugin would: the case is about what the host accepts.
  configuration.certificateVerification = .none
  return try NIOSSLContext(configuration: configuration)
}

var address = ""
let listen = environment["FUZZ_LISTEN"] ?? "none"
if listen == "unix" || listen == "tcp" {
  let tls = behaviour == .tls || behaviour == .tlsSettings ? try makeTLSContext() : nil
  let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 16)
    .serverChannelOption(.autoRead, value: behaviour != .noAccept)
    .childChannelInitializer { channel in
      channel.eventLoop.makeCompletedFuture {
        if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
        try channel.pipeline.syncOperations.addHandler(Misbehaviour(behaviour: behaviour, seed: seed))
      }
    }
  if listen == "unix" {
    let directory = socketDirectory.isEmpty ? (environment["TMPDIR"] ?? "/tmp") : socketDirectory
    address = "\(directory)/plugin\(UInt32.random(in: 0...UInt32.max)).sock"
    _ = try bootstrap.bind(unixDomainSocketPath: address).wait()
  } else {
    let channel = try bootstrap.bind(host: "127.0.0.1", port: 0).wait()
    address = "127.0.0.1:\(channel.localAddress?.port ?? 0)"
  }
}

func substituted(_ line: [UInt8], address: String) -> [UInt8] {
  var bytes = line
  for (token, value) in [("{ADDR}", address), ("{DIR}", socketDirectory)] {
    let token = Array(token.utf8)
    var result: [UInt8] = []
    var index = 0
    while index < bytes.count {
      if bytes[index] == token[0], index + token.count <= bytes.count,
        Array(bytes[index..<index + token.count]) == token
      {
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

if let path = environment["FUZZ_LINE_FILE"], let line = FileManager.default.contents(atPath: path) {
  writeAll(1, substituted(Array(line), address: address))
}

switch environment["FUZZ_AFTER"] ?? "stay" {
case "exit":
  exit(0)
case "close-stdout":
  close(1)
default:
  break
}
while true { pause() }
