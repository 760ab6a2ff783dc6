import GRPCCore
import GoPluginPlatform
import GoPluginProtos
import Logging
import NIOSSL
import SwiftProtobuf
import Synchronization

extension PluginClient {
  /// Opens `GRPCBroker.StartStream` and keeps it open for the session, as go-plugin hosts do:
  /// the broker's announcements go out on it, the plugin's come back.
  func holdBrokerStream(_ grpcClient: GRPCClient<PluginTransport>, broker: GRPCBroker) async {
    do {
      try await broker.holdHostStream(over: grpcClient)
    } catch let error as RPCError where [.unimplemented, .unavailable, .cancelled].contains(error.code) {
      self.logger.trace("broker stream ended", metadata: ["code": "\(error.code)"])
    } catch {
      self.logger.debug("broker stream ended", metadata: ["error": "\(error)"])
    }
  }

  /// How long the stdio stream may take to deliver its last bytes once the plugin has exited.
  static let stdioDrainTime: Duration = .milliseconds(500)

  /// Opens `GRPCStdio.StreamStdio` so that the plugin's forwarded stdout and stderr reach the
  /// configured sinks (go-plugin's default drops both), and so that a Go plugin's writes never
  /// block on a full pipe. Plugins built before the service existed answer UNIMPLEMENTED.
  func drainStdio(_ grpcClient: GRPCClient<PluginTransport>) async {
    let stdio = Plugin_GRPCStdio.Client(wrapping: grpcClient)
    let (stdout, stderr) = (self.configuration.syncStdout, self.configuration.syncStderr)
    do {
      try await stdio.streamStdio(Google_Protobuf_Empty()) { response in
        for try await chunk in response.messages {
          switch chunk.channel {
          case .stdout: stdout.write(Array(chunk.data))
          case .stderr: stderr.write(Array(chunk.data))
          default: self.logger.warning("unknown channel, dropping", metadata: ["channel": "\(chunk.channel.rawValue)"])
          }
        }
      }
    } catch let error as RPCError where [.unimplemented, .unavailable].contains(error.code) {
      self.logger.debug("stdio service not available, stdout/stderr syncing unavailable")
    } catch {
      self.logger.trace("stdio stream ended", metadata: ["error": "\(error)"])
    }
  }
}
