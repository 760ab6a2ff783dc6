#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// A file read or written a chunk at a time, through the C library: FoundationEssentials has
/// no `FileHandle`, and full Foundation would cost every binary of the example ICU, megabytes
/// and milliseconds of start-up. The descriptor is closed when the value goes away.
public struct LocalFile: ~Copyable, Sendable {
  public let path: String
  private let descriptor: Int32

  /// Opens an existing file for reading.
  public init(reading path: String) throws(LocalFileError) {
    self.path = path
    self.descriptor = try Self.openDescriptor(path, O_RDONLY | O_CLOEXEC)
  }

  /// Creates a file for writing, or empties the one at `path`; only its owner may read it.
  public init(creating path: String) throws(LocalFileError) {
    self.path = path
    self.descriptor = try Self.openDescriptor(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode: 0o600)
  }

  deinit {
    close(self.descriptor)
  }

  /// Up to `count` bytes from where the last read ended; empty at the end of the file.
  public func readChunk(upTo count: Int) throws(LocalFileError) -> Data {
    var data = Data(count: count)
    let result = data.withUnsafeMutableBytes { buffer in
      Self.retryingInterrupts { read(self.descriptor, buffer.baseAddress, buffer.count) }
    }
    guard result >= 0 else { throw LocalFileError(path: self.path, operation: "read", code: errno) }
    data.count = result
    return data
  }

  /// Writes all of `data`.
  public func writeAll(_ data: Data) throws(LocalFileError) {
    var offset = 0
    while offset < data.count {
      let result = data.withUnsafeBytes { buffer in
        Self.retryingInterrupts { write(self.descriptor, buffer.baseAddress! + offset, buffer.count - offset) }
      }
      guard result >= 0 else { throw LocalFileError(path: self.path, operation: "write", code: errno) }
      offset += result
    }
  }

  private static func openDescriptor(_ path: String, _ flags: Int32, mode: mode_t = 0) throws(LocalFileError) -> Int32 {
    let descriptor = Int32(Self.retryingInterrupts { Int(open(path, flags, mode)) })
    guard descriptor >= 0 else { throw LocalFileError(path: path, operation: "open", code: errno) }
    return descriptor
  }

  private static func retryingInterrupts(_ call: () -> Int) -> Int {
    while true {
      let result = call()
      if result >= 0 || errno != EINTR { return result }
    }
  }
}

/// A file that could not be opened, read or written, with the C library's reason.
public struct LocalFileError: Error, CustomStringConvertible {
  public var path: String
  public var operation: String
  public var code: Int32

  public var description: String {
    "cannot \(self.operation) \(self.path): \(String(cString: strerror(self.code)))"
  }
}
