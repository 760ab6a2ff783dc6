import GoPluginPlatform

/// Where a plugin's forwarded stdout or stderr goes on the host (go-plugin's `SyncStdout` and
/// `SyncStderr`).
///
/// Bytes arrive as the plugin wrote them, in chunks (up to 1 KiB from a Go plugin, 16 KiB from a
/// Swift one) whose boundaries mean nothing: a line may be split across two chunks.
public struct PluginOutput: Sendable {
  enum Kind: Sendable {
    case discard
    case fileDescriptor(Int32)
    case handler(@Sendable ([UInt8]) -> Void)
  }

  let kind: Kind

  /// Drop it, as go-plugin does by default.
  public static let discard = PluginOutput(kind: .discard)
  /// The host's own standard output.
  public static let standardOutput = PluginOutput(kind: .fileDescriptor(1))
  /// The host's own standard error.
  public static let standardError = PluginOutput(kind: .fileDescriptor(2))

  /// Hands each chunk to `body`, in order, from one task at a time.
  public static func handler(_ body: @escaping @Sendable ([UInt8]) -> Void) -> PluginOutput {
    PluginOutput(kind: .handler(body))
  }

  func write(_ bytes: [UInt8]) {
    switch self.kind {
    case .discard:
      break
    case .fileDescriptor(let fd):
      bytes.withUnsafeBytes { POSIX.writeAll($0, to: fd) }
    case .handler(let body):
      body(bytes)
    }
  }
}
