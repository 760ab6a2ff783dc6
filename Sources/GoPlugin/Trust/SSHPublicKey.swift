import Crypto

/// A public key as OpenSSH writes it: a key type and the key's wire blob.
///
/// Only the key types a plugin signature is verified with are understood (Ed25519 and ECDSA on
/// the NIST curves); other keys (RSA, security keys, certificates) are still read, compared and
/// fingerprinted, so that a refusal can name them, but never verify a signature.
public struct SSHPublicKey: Sendable, Hashable, CustomStringConvertible {
  /// The key type, as the blob names it: `ssh-ed25519`, `ecdsa-sha2-nistp256`, ….
  public let keyType: String
  /// The key in OpenSSH's wire format, which is what fingerprints and comparisons use.
  public let blob: [UInt8]

  /// The key types whose signatures can be verified.
  public static let verifiableKeyTypes: [String] = [
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
  ]

  /// A key from its wire blob.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/invalidConfiguration`` when the blob does
  ///   not start with a key type, or is a key of a verifiable type whose point is malformed.
  public init(blob: [UInt8]) throws(PluginError) {
    do {
      self = try Self(wireBlob: blob)
    } catch {
      throw PluginError(code: .invalidConfiguration, message: "malformed SSH public key: \(error.reason)")
    }
  }

  /// A key as one line of `id_ed25519.pub` or `authorized_keys` writes it: `TYPE BASE64 [COMMENT]`.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/invalidConfiguration`` when the text is
  ///   not a key, or the type in front disagrees with the blob.
  public init(openSSH text: String) throws(PluginError) {
    let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
    guard fields.count >= 2 else {
      throw PluginError(code: .invalidConfiguration, message: "not an SSH public key (TYPE BASE64): \(text)")
    }
    do {
      self = try Self(type: fields[0], base64: fields[1])
    } catch {
      throw PluginError(code: .invalidConfiguration, message: "malformed SSH public key: \(error.reason)")
    }
  }

  init(type: String, base64: String) throws(SSHWireReader.Malformed) {
    guard let blob = SSHBase64.decode(base64.utf8) else {
      throw SSHWireReader.Malformed(reason: "the \(type) key is not base64")
    }
    try self.init(wireBlob: blob)
    guard self.keyType == type else {
      throw SSHWireReader.Malformed(reason: "the key is labelled \(type) but is a \(self.keyType) key")
    }
  }

  init(wireBlob blob: [UInt8]) throws(SSHWireReader.Malformed) {
    var reader = SSHWireReader(blob)
    self.keyType = try reader.text("key type")
    self.blob = blob
    // Checked now, so that an allowed-signers file with a broken key fails when it is read.
    if Self.verifiableKeyTypes.contains(self.keyType) { _ = try self.verifier() }
  }

  /// The fingerprint as `ssh-keygen -l` prints it: `SHA256:` and the unpadded base64 of the
  /// blob's SHA-256.
  public var fingerprint: String {
    "SHA256:" + SSHBase64.encode(Array(SHA256.hash(data: self.blob)), padded: false)
  }

  /// The key as a line of a `.pub` file, without a comment.
  public var openSSH: String { "\(self.keyType) \(SSHBase64.encode(self.blob))" }

  /// The name `ssh-keygen -l` prints after the fingerprint: `ED25519`, `ECDSA`, `RSA`, ….
  public var algorithmName: String {
    switch self.keyType {
    case "ssh-ed25519": "ED25519"
    case let type where type.hasPrefix("ecdsa-sha2-"): "ECDSA"
    case "ssh-rsa": "RSA"
    case let type where type.hasPrefix("sk-"): "SK"
    default: self.keyType
    }
  }

  public var description: String { "\(self.algorithmName) key \(self.fingerprint)" }

  /// How a signature by this key is checked over the signed data.
  enum Verifier {
    case ed25519(Curve25519.Signing.PublicKey)
    case p256(P256.Signing.PublicKey)
    case p384(P384.Signing.PublicKey)
    case p521(P521.Signing.PublicKey)

    /// The byte length of each of r and s in a raw ECDSA signature.
    var scalarLength: Int {
      switch self {
      case .ed25519: 32
      case .p256: 32
      case .p384: 48
      case .p521: 66
      }
    }
  }

  func verifier() throws(SSHWireReader.Malformed) -> Verifier {
    var reader = SSHWireReader(self.blob)
    _ = try reader.string("key type")
    let curve: String
    switch self.keyType {
    case "ssh-ed25519":
      let point = try reader.string("Ed25519 key")
      guard reader.isAtEnd, point.count == 32, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: point)
      else { throw SSHWireReader.Malformed(reason: "not a 32-byte Ed25519 key") }
      return .ed25519(key)
    case "ecdsa-sha2-nistp256": curve = "nistp256"
    case "ecdsa-sha2-nistp384": curve = "nistp384"
    case "ecdsa-sha2-nistp521": curve = "nistp521"
    default:
      throw SSHWireReader.Malformed(
        reason: "\(self.keyType) keys are not supported (only \(Self.verifiableKeyTypes.joined(separator: ", ")))"
      )
    }
    let named = try reader.text("curve name")
    let point = try reader.string("ECDSA point")
    guard named == curve, reader.isAtEnd else {
      throw SSHWireReader.Malformed(reason: "\(self.keyType) key names curve \(named)")
    }
    do {
      switch curve {
      case "nistp256": return .p256(try P256.Signing.PublicKey(x963Representation: point))
      case "nistp384": return .p384(try P384.Signing.PublicKey(x963Representation: point))
      default: return .p521(try P521.Signing.PublicKey(x963Representation: point))
      }
    } catch {
      throw SSHWireReader.Malformed(reason: "the \(curve) point is not on the curve")
    }
  }
}
