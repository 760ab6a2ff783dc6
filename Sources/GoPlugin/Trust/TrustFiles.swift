import Crypto
import GoPluginPlatform
import SystemPackage

/// The file work of trust checks: small files read whole, the lock file written atomically,
/// and plugin files hashed as a stream.
enum TrustFiles {
  /// The contents of a small file, or `nil` when it does not exist.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/invalidConfiguration`` when it exists
  ///   but cannot be read, or is larger than `limit` (a signature or a list of keys never is).
  static func readSmallFileIfPresent(_ path: String, limit: Int, what: String) throws(PluginError) -> [UInt8]? {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else {
      let code = errno
      if code == ENOENT { return nil }
      throw Self.failure("cannot read \(what) \(path)", code)
    }
    defer { close(descriptor) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 16 * 1024)
    while true {
      let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
      if count < 0, errno == EINTR { continue }
      guard count >= 0 else { throw Self.failure("cannot read \(what) \(path)", errno) }
      if count == 0 { return bytes }
      bytes.append(contentsOf: buffer[..<count])
      guard bytes.count <= limit else {
        throw PluginError(code: .invalidConfiguration, message: "\(what) \(path) is larger than \(limit) bytes")
      }
    }
  }

  static func readSmallFile(_ path: String, limit: Int, what: String) throws(PluginError) -> [UInt8] {
    guard let bytes = try Self.readSmallFileIfPresent(path, limit: limit, what: what) else {
      throw Self.failure("cannot read \(what) \(path)", ENOENT)
    }
    return bytes
  }

  /// Replaces the file at `path` with `bytes` so that a reader sees the old file or the new
  /// one, never a part: a temporary file beside it (its name starting with a dot, which plugin
  /// discovery skips), flushed to disk, then renamed over it.
  static func writeAtomically(_ bytes: [UInt8], to path: String, what: String) throws(PluginError) {
    let slash = path.lastIndex(of: "/")
    let directory = slash.map { String(path[..<$0]) } ?? "."
    let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
    var template = Array("\(directory.isEmpty ? "" : directory)/.\(name).XXXXXX".utf8CString)
    let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard descriptor >= 0 else { throw Self.failure("cannot write \(what) \(path)", errno) }
    _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
    let temporary = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var written = false
    defer {
      close(descriptor)
      if !written { unlink(temporary) }
    }
    var offset = 0
    while offset < bytes.count {
      let count = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
      if count < 0, errno == EINTR { continue }
      guard count > 0 else { throw Self.failure("cannot write \(what) \(path)", errno) }
      offset += count
    }
    // mkostemp makes the file 0600; a lock file is for reading by whoever reads the directory.
    guard fchmod(descriptor, 0o644) == 0, fsync(descriptor) == 0, rename(temporary, path) == 0 else {
      throw Self.failure("cannot write \(what) \(path)", errno)
    }
    written = true
  }

  /// SHA-256 of everything in `descriptor` from its start, and the other hash a signature asks
  /// for, in one pass (`pread`, so the descriptor's offset does not matter and does not move).
  static func digests(
    of descriptor: Int32, path: String, signatureHash: SSHSignature.HashAlgorithm?
  ) throws(PluginError) -> (sha256: [UInt8], signature: [UInt8]?) {
    var sha256 = SHA256()
    var sha512 = signatureHash == .sha512 ? SHA512() : nil
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    var offset: off_t = 0
    while true {
      let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, offset) }
      if count < 0, errno == EINTR { continue }
      guard count >= 0 else {
        var failure = Self.failure("cannot read \(path)", errno)
        failure.code = .launchFailed
        failure.pluginPath = path
        throw failure
      }
      if count == 0 { break }
      buffer.withUnsafeBytes {
        let chunk = UnsafeRawBufferPointer(rebasing: $0[..<count])
        sha256.update(bufferPointer: chunk)
        sha512?.update(bufferPointer: chunk)
      }
      offset += off_t(count)
    }
    let first = Array(sha256.finalize())
    switch signatureHash {
    case nil: return (first, nil)
    case .sha256: return (first, first)
    case .sha512: return (first, sha512.map { Array($0.finalize()) })
    }
  }

  static func failure(_ message: String, _ code: Int32) -> PluginError {
    PluginError(
      code: .invalidConfiguration, message: "\(message): \(String(cString: strerror(code)))",
      cause: Errno(rawValue: code)
    )
  }
}
