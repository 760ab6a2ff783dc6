import Crypto

/// A detached signature in OpenSSH's SSHSIG format, as `ssh-keygen -Y sign` writes it.
///
/// The format (OpenSSH's `PROTOCOL.sshsig`) signs not the file but a small structure holding a
/// hash of it, so a signature is verified from the file's digest alone: a plugin of any size is
/// hashed as a stream, never held in memory. The namespace is part of what is signed, so a
/// signature made for another purpose (`-n file`, `-n git`) never passes for a plugin one.
public struct SSHSignature: Sendable, Hashable {
  /// The hash the signed message is reduced to before signing.
  public enum HashAlgorithm: String, Sendable, Hashable, CaseIterable {
    case sha256, sha512
  }

  /// The key that made the signature (it still has to be an allowed one).
  public let publicKey: SSHPublicKey
  /// What the signature is for; `goplugin` for plugins.
  public let namespace: String
  /// How the signed file was hashed.
  public let hashAlgorithm: HashAlgorithm
  /// The signature's algorithm name, such as `ssh-ed25519` or `ecdsa-sha2-nistp256`.
  public let signatureAlgorithm: String
  /// The signature itself, in the key type's SSH encoding.
  let signatureBlob: [UInt8]

  private static let magic = Array("SSHSIG".utf8)
  private static let begin = "-----BEGIN SSH SIGNATURE-----"
  private static let end = "-----END SSH SIGNATURE-----"

  /// A signature from the text of a `.sig` file.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/untrustedPlugin`` and a
  ///   ``PluginTrustRefusal/malformedSignature(reason:)`` cause when the text is not an SSHSIG
  ///   signature of version 1 with a supported hash algorithm.
  public init(armored text: String) throws(PluginError) {
    let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingSSHWhitespace() }
    guard let first = lines.firstIndex(of: Self.begin), let last = lines.lastIndex(of: Self.end), first < last else {
      throw Self.malformed("no \(Self.begin) … \(Self.end) block")
    }
    guard let blob = SSHBase64.decode(lines[(first + 1)..<last].joined().utf8) else {
      throw Self.malformed("the armored block is not base64")
    }
    try self.init(blob: blob)
  }

  /// A signature from its binary blob (the armored text, decoded).
  public init(blob: [UInt8]) throws(PluginError) {
    do throws(SSHWireReader.Malformed) {
      var reader = SSHWireReader(blob)
      guard try reader.raw(6, "magic") == Self.magic else { throw SSHWireReader.Malformed(reason: "no SSHSIG magic") }
      let version = try reader.uint32("version")
      guard version == 1 else { throw SSHWireReader.Malformed(reason: "unsupported SSHSIG version \(version)") }
      let key = try SSHPublicKey(wireBlob: reader.string("public key"))
      let namespace = try reader.text("namespace")
      _ = try reader.string("reserved")
      let hash = try reader.text("hash algorithm")
      guard let hashAlgorithm = HashAlgorithm(rawValue: hash) else {
        throw SSHWireReader.Malformed(reason: "unsupported hash algorithm \"\(hash)\" (sha256 or sha512)")
      }
      var signature = SSHWireReader(try reader.string("signature"))
      guard reader.isAtEnd else { throw SSHWireReader.Malformed(reason: "trailing bytes after the signature") }
      guard !namespace.isEmpty else { throw SSHWireReader.Malformed(reason: "empty namespace") }
      self.publicKey = key
      self.namespace = namespace
      self.hashAlgorithm = hashAlgorithm
      self.signatureAlgorithm = try signature.text("signature algorithm")
      self.signatureBlob = try signature.string("signature value")
      guard signature.isAtEnd else { throw SSHWireReader.Malformed(reason: "trailing bytes in the signature value") }
    } catch {
      throw Self.malformed(error.reason)
    }
  }

  /// The bytes the key signed, for a message whose hash (with ``hashAlgorithm``) is
  /// `messageDigest`: the magic, the namespace, the reserved field, the hash's name, the hash.
  public func signedData(messageDigest: [UInt8]) -> [UInt8] {
    var writer = SSHWireWriter()
    writer.raw(Self.magic)
    writer.string(self.namespace)
    writer.string([UInt8]())
    writer.string(self.hashAlgorithm.rawValue)
    writer.string(messageDigest)
    return writer.bytes
  }

  /// Whether the signature is the key's over a message with this digest; says nothing about
  /// whether the key is one to trust (``AllowedSigners`` does).
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/untrustedPlugin`` when the key's type
  ///   cannot be verified (RSA, security keys, certificates) or the signature value is malformed.
  public func isValid(messageDigest: [UInt8]) throws(PluginError) -> Bool {
    let verifier: SSHPublicKey.Verifier
    do {
      verifier = try self.publicKey.verifier()
    } catch {
      throw PluginError(
        code: .untrustedPlugin,
        message: "cannot verify a signature by \(self.publicKey): \(error.reason)",
        cause: PluginTrustRefusal.unsupportedKey(
          fingerprint: self.publicKey.fingerprint, keyType: self.publicKey.keyType)
      )
    }
    guard self.signatureAlgorithm == self.publicKey.keyType else {
      throw Self.malformed("a \(self.signatureAlgorithm) signature by a \(self.publicKey.keyType) key")
    }
    let data = self.signedData(messageDigest: messageDigest)
    if case .ed25519(let key) = verifier {
      return self.signatureBlob.count == 64 && key.isValidSignature(self.signatureBlob, for: data)
    }
    // ECDSA: mpint r and mpint s, which the raw form wants as two fixed-width numbers.
    let raw: [UInt8]
    do throws(SSHWireReader.Malformed) {
      var reader = SSHWireReader(self.signatureBlob)
      let r = try reader.unsignedMPInt("r")
      let s = try reader.unsignedMPInt("s")
      let width = verifier.scalarLength
      guard reader.isAtEnd, r.count <= width, s.count <= width else {
        throw SSHWireReader.Malformed(reason: "ECDSA signature values do not fit the curve")
      }
      raw = [UInt8](repeating: 0, count: width - r.count) + r + [UInt8](repeating: 0, count: width - s.count) + s
    } catch {
      throw Self.malformed(error.reason)
    }
    switch verifier {
    case .ed25519: return false
    case .p256(let key):
      guard let signature = try? P256.Signing.ECDSASignature(rawRepresentation: raw) else { return false }
      return key.isValidSignature(signature, for: data)
    case .p384(let key):
      guard let signature = try? P384.Signing.ECDSASignature(rawRepresentation: raw) else { return false }
      return key.isValidSignature(signature, for: data)
    case .p521(let key):
      guard let signature = try? P521.Signing.ECDSASignature(rawRepresentation: raw) else { return false }
      return key.isValidSignature(signature, for: data)
    }
  }

  static func malformed(_ reason: String) -> PluginError {
    PluginError(
      code: .untrustedPlugin,
      message: "malformed SSH signature: \(reason)",
      cause: PluginTrustRefusal.malformedSignature(reason: reason)
    )
  }
}

extension Substring {
  /// Without the spaces, tabs and carriage returns around it (files written on Windows end
  /// lines with `\r\n`).
  func trimmingSSHWhitespace() -> String {
    let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
    return String(self.drop(while: isSpace).reversed().drop(while: isSpace).reversed())
  }
}
