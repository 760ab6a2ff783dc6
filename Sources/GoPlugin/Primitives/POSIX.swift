import GoPluginPlatform

enum POSIX {
  /// Writes all of `text` to a file descriptor, unbuffered: the handshake line must reach the
  /// host at once, and log lines must not wait in a buffer that a crash would lose.
  static func writeAll(_ text: String, to descriptor: Int32) {
    Array(text.utf8).withUnsafeBytes { Self.writeAll($0, to: descriptor) }
  }

  static func writeAll(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32) {
    guard let base = bytes.baseAddress else { return }
    var offset = 0
    while offset < bytes.count {
      let written = write(descriptor, base + offset, bytes.count - offset)
      if written < 0 {
        if errno == EINTR { continue }
        return
      }
      offset += written
    }
  }

  static func ignoreInterrupts() {
    signal(SIGINT, SIG_IGN)
  }
}
