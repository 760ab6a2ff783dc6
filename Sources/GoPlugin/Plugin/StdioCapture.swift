import GoPluginPlatform
import GoPluginProtos
import Logging
import NIOCore
import NIOPosix
import SwiftProtobuf
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The plugin process's stdout and stderr after the handshake, captured through pipes and
/// forwarded to the host over `GRPCStdio` (spec §3.6).
///
/// The pipes are always drained, so a plugin never blocks on a write even under a host that
/// never asks for its output (go-plugin 1.0.1 hosts have no stdio service, and a Go host's
/// default sink drops it anyway). What no host has collected yet waits in a bounded buffer, oldest
/// dropped first. The log handler keeps writing to the real stderr, where hosts read logs.
final class StdioCapture: Sendable {
  /// The most one message carries. Hosts make nothing of the boundaries, and each message costs
  /// a gRPC call's worth of work on both sides: go-plugin's 1 KiB took 3,000 messages for 3 MiB
  /// of output, too many to drain in a stop's grace period on a loaded machine.
  static let chunkSize = 16 * 1024
  /// How many chunks (one per read of a pipe, or per 16 KiB of one) wait for a host before the
  /// oldest are dropped: at most 64 MiB.
  static let bufferedChunks = 4096

  private struct State {
    var consumerAttached = false
    var openPipes = 2
    var restored = false
  }

  let chunks: AsyncStream<Plugin_StdioData>
  private let continuation: AsyncStream<Plugin_StdioData>.Continuation
  private let state = Mutex(State())
  private let savedStdout: Int32
  private let savedStderr: Int32

  private init(savedStdout: Int32, savedStderr: Int32) {
    (self.chunks, self.continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(Self.bufferedChunks))
    self.savedStdout = savedStdout
    self.savedStderr = savedStderr
  }

  /// Points fds 1 and 2 at fresh pipes and starts reading them.
  static func start(logger: Logger) async throws -> StdioCapture {
    fflush(nil)
    var outPipe: [Int32] = [-1, -1]
    var errPipe: [Int32] = [-1, -1]
    guard pipe(&outPipe) == 0 else { throw Self.failure("pipe") }
    guard pipe(&errPipe) == 0 else {
      close(outPipe[0])
      close(outPipe[1])
      throw Self.failure("pipe")
    }
    let savedStdout = dup(1)
    let savedStderr = dup(2)
    guard savedStdout >= 0, savedStderr >= 0, dup2(outPipe[1], 1) >= 0, dup2(errPipe[1], 2) >= 0 else {
      throw Self.failure("dup")
    }
    close(outPipe[1])
    close(errPipe[1])
    HCLogHandler.useStandardError(savedStderr)
    // Swift's print goes through C's stdout, which a pipe would otherwise fully buffer.
    lineBufferStandardOutput()

    let capture = StdioCapture(savedStdout: savedStdout, savedStderr: savedStderr)
    for (descriptor, channel) in [(outPipe[0], Plugin_StdioData.Channel.stdout), (errPipe[0], .stderr)] {
      _ = try await NIOPipeBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .channelInitializer { pipeChannel in
          pipeChannel.eventLoop.makeCompletedFuture {
            try pipeChannel.pipeline.syncOperations.addHandler(PipeReader(capture: capture, channel: channel))
          }
        }
        .takingOwnershipOfDescriptor(input: descriptor)
        .get()
    }
    logger.trace("capturing stdout and stderr for GRPCStdio")
    return capture
  }

  /// Claims the stream of chunks; only one `StreamStdio` call gets it, as go-plugin says to
  /// call it once.
  func attachConsumer() -> Bool {
    self.state.withLock { state in
      defer { state.consumerAttached = true }
      return !state.consumerAttached
    }
  }

  /// Puts the real stdout and stderr back, which closes the pipes' write ends: what the pipes
  /// still hold is read and forwarded, then the stream of chunks ends.
  func stop() {
    let first = self.state.withLock { state in
      defer { state.restored = true }
      return !state.restored
    }
    guard first else { return }
    fflush(nil)
    dup2(self.savedStdout, 1)
    dup2(self.savedStderr, 2)
    HCLogHandler.useStandardError(2)
  }

  fileprivate func append(_ data: ByteBuffer, channel: Plugin_StdioData.Channel) {
    var data = data
    while data.readableBytes > 0, let slice = data.readSlice(length: min(Self.chunkSize, data.readableBytes)) {
      self.continuation.yield(
        .with {
          $0.channel = channel
          $0.data = Data(slice.readableBytesView)
        })
    }
  }

  fileprivate func pipeClosed() {
    let last = self.state.withLock { state in
      state.openPipes -= 1
      return state.openPipes == 0
    }
    if last { self.continuation.finish() }
  }

  private static func failure(_ call: String) -> PluginError {
    PluginError(
      code: .listenFailed, message: "could not capture stdout and stderr: \(call): \(String(cString: strerror(errno)))")
  }
}

/// Reads one pipe into the capture.
private final class PipeReader: ChannelInboundHandler {
  typealias InboundIn = ByteBuffer

  private let capture: StdioCapture
  private let channel: Plugin_StdioData.Channel

  init(capture: StdioCapture, channel: Plugin_StdioData.Channel) {
    self.capture = capture
    self.channel = channel
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    self.capture.append(self.unwrapInboundIn(data), channel: self.channel)
  }

  func channelInactive(context: ChannelHandlerContext) {
    self.capture.pipeClosed()
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    context.close(promise: nil)
  }
}
