#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The few C calls the package wraps, shared by the library and the `goplugin` command.
package enum POSIX {
  /// Writes all of `text` to a file descriptor, unbuffered: the handshake line must reach the
  /// host at once, and log lines must not wait in a buffer that a crash would lose.
  package static func writeAll(_ text: String, to descriptor: Int32) {
    Array(text.utf8).withUnsafeBytes { Self.writeAll($0, to: descriptor) }
  }

  package static func writeAll(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32) {
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

  package static func ignoreInterrupts() {
    signal(SIGINT, SIG_IGN)
  }
}
