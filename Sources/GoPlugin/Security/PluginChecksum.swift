import Crypto
import GoPluginPlatform
import SystemPackage

/// The digest a plugin executable must have before a host runs it — go-plugin's `SecureConfig`.
///
/// The host hashes the file it is about to execute (the plugin itself, never a shell in front
/// of it) and refuses to start it if the digest differs. On Linux it also executes exactly the
/// file it hashed: it opens the file once, hashes that descriptor, and launches the descriptor
/// through `/proc/<host pid>/fd/<n>`, so replacing the file at its path between the check and
/// the launch does not get a different program run. Elsewhere the file is opened again by path
/// to launch it, which leaves that window open.
public struct PluginChecksum: Sendable, Hashable, CustomStringConvertible {
  /// The hash function; SHA-256 unless a manifest says otherwise.
  public enum Algorithm: String, Sendable, Hashable, CaseIterable {
    case sha256, sha384, sha512

    var digestLength: Int {
      switch self {
      case .sha256: 32
      case .sha384: 48
      case .sha512: 64
      }
    }
  }

  /// The hash function the digest was made with.
  public var algorithm: Algorithm
  /// The expected digest, as raw bytes.
  public var digest: [UInt8]

  /// A checksum from raw digest bytes.
  public init(_ algorithm: Algorithm = .sha256, digest: [UInt8]) {
    self.algorithm = algorithm
    self.digest = digest
  }

  /// A digest written in hex, as `sha256sum` prints it.
  public init(_ algorithm: Algorithm = .sha256, hex: String) throws(PluginError) {
    func nibble(_ character: UInt8) -> UInt8? {
      switch character {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
      case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
      default: nil
      }
    }
    let characters = Array(hex.utf8)
    let nibbles = characters.compactMap(nibble)
    guard nibbles.count == characters.count, nibbles.count == algorithm.digestLength * 2 else {
      throw PluginError(
        code: .invalidConfiguration,
        message: "not a \(algorithm.rawValue) digest (\(algorithm.digestLength * 2) hex digits): \(hex)"
      )
    }
    self.init(algorithm, digest: stride(from: 0, to: nibbles.count, by: 2).map { nibbles[$0] << 4 | nibbles[$0 + 1] })
  }

  public var description: String {
    "\(self.algorithm.rawValue):" + self.digest.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
  }

  /// The digest of the file at `path`, as ``PluginClientConfiguration/checksum`` would compute
  /// it for an executable there; what a build step records for the host to pin.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/invalidConfiguration`` if the file cannot
  ///   be opened or read.
  public init(ofFile path: String, algorithm: Algorithm = .sha256) throws(PluginError) {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else {
      let code = errno
      throw PluginError(
        code: .invalidConfiguration,
        message: "cannot read \(path): \(String(cString: strerror(code)))",
        cause: Errno(rawValue: code)
      )
    }
    defer { close(descriptor) }
    do {
      self = try Self.digest(of: descriptor, algorithm: algorithm)
    } catch {
      // The cause is what the system said, not the digest's wording of it.
      throw PluginError(
        code: .invalidConfiguration,
        message: "cannot read \(path): \(error.message)",
        cause: error.cause ?? error
      )
    }
  }

  /// The digest of everything readable from `descriptor`, from where it stands.
  static func digest(of descriptor: Int32, algorithm: Algorithm) throws(PluginError) -> PluginChecksum {
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    func feed(_ update: (UnsafeRawBufferPointer) -> Void) throws(PluginError) {
      while true {
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if count < 0, errno == EINTR { continue }
        guard count >= 0 else {
          let code = errno
          throw PluginError(
            code: .launchFailed,
            message: "error verifying checksum: \(String(cString: strerror(code)))",
            cause: Errno(rawValue: code)
          )
        }
        if count == 0 { return }
        buffer.withUnsafeBytes { update(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
      }
    }
    switch algorithm {
    case .sha256:
      var hash = SHA256()
      try feed { hash.update(bufferPointer: $0) }
      return PluginChecksum(algorithm, digest: Array(hash.finalize()))
    case .sha384:
      var hash = SHA384()
      try feed { hash.update(bufferPointer: $0) }
      return PluginChecksum(algorithm, digest: Array(hash.finalize()))
    case .sha512:
      var hash = SHA512()
      try feed { hash.update(bufferPointer: $0) }
      return PluginChecksum(algorithm, digest: Array(hash.finalize()))
    }
  }

  /// Compares without an early exit, so timing says nothing about where digests differ.
  func matches(_ other: PluginChecksum) -> Bool {
    guard self.algorithm == other.algorithm, self.digest.count == other.digest.count else { return false }
    return zip(self.digest, other.digest).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
  }
}

/// An executable opened once, verified (by checksum, by a trust policy, or both), and launched
/// through its descriptor where possible.
final class VerifiedExecutable {
  /// What to hand to the process launcher.
  let launchPath: String
  private let descriptor: Int32

  /// Opens `path` once, and checks it against `expected` when there is a checksum and with
  /// `check` (which reads the descriptor it is given, from its start) when there is one; the
  /// descriptor is closed if either refuses it.
  init(
    path: String, checksum expected: PluginChecksum?, check: ((Int32) throws(PluginError) -> Void)? = nil
  ) throws(PluginError) {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else {
      throw PluginError(
        code: .launchFailed, message: "error verifying checksum: \(path): \(String(cString: strerror(errno)))",
        pluginPath: path)
    }
    if let expected {
      let actual: PluginChecksum
      do {
        actual = try PluginChecksum.digest(of: descriptor, algorithm: expected.algorithm)
      } catch {
        close(descriptor)
        throw error.about(path: path, pid: nil)
      }
      guard actual.matches(expected) else {
        close(descriptor)
        throw PluginError(
          code: .checksumMismatch,
          message: "checksums did not match: expected \(expected), got \(actual)",
          pluginPath: path
        )
      }
    }
    do {
      try check?(descriptor)
    } catch {
      close(descriptor)
      throw error
    }
    self.descriptor = descriptor
    #if os(Linux)
    // The child resolves this in the host's descriptor table, which holds the verified file.
    self.launchPath = "/proc/\(getpid())/fd/\(descriptor)"
    #else
    self.launchPath = path
    #endif
  }

  deinit {
    close(self.descriptor)
  }
}
