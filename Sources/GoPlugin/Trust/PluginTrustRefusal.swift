/// Why a plugin was not trusted: the ``PluginError/cause`` of every
/// ``PluginError/Code/untrustedPlugin`` error, for a host (or a plugin manager) that reacts to
/// the reason rather than shows it.
public enum PluginTrustRefusal: Error, Sendable, Hashable, CustomStringConvertible {
  /// The lock file does not name the plugin and its policy is ``PluginLockFile/Policy/refuse``.
  case notLocked(name: String, lockFile: String, found: PluginChecksum)
  /// The plugin's digest is not the one the lock file holds for it.
  case changed(name: String, lockFile: String, expected: PluginChecksum, found: PluginChecksum)
  /// A signature is required and there is no signature file.
  case unsigned(signatureFile: String)
  /// The signature file is not an SSHSIG signature the verifier understands.
  case malformedSignature(reason: String)
  /// The signature was made for another namespace (`ssh-keygen -Y sign -n …`).
  case wrongNamespace(expected: String, found: String)
  /// The signing key is of a type whose signatures are not verified (RSA, security keys,
  /// certificates).
  case unsupportedKey(fingerprint: String, keyType: String)
  /// The signature is not the key's signature over this file: the file (or the signature)
  /// changed since it was signed.
  case badSignature(fingerprint: String, found: PluginChecksum)
  /// The signature is good but the key is not allowed to sign plugins.
  case signerNotAllowed(fingerprint: String, rejection: AllowedSigners.Rejection)

  public var description: String {
    switch self {
    case .notLocked(let name, let lockFile, let found):
      "plugin \"\(name)\" is not in the lock file \(lockFile) (found \(found))"
    case .changed(let name, let lockFile, let expected, let found):
      "plugin \"\(name)\" changed: the lock file \(lockFile) expects \(expected), found \(found)"
    case .unsigned(let signatureFile):
      "not signed: no signature file \(signatureFile)"
    case .malformedSignature(let reason):
      "malformed SSH signature: \(reason)"
    case .wrongNamespace(let expected, let found):
      "the signature is for namespace \"\(found)\", not \"\(expected)\""
    case .unsupportedKey(let fingerprint, let keyType):
      "signed by \(keyType) key \(fingerprint), whose signatures are not supported (only Ed25519 and ECDSA keys)"
    case .badSignature(let fingerprint, let found):
      "the signature by key \(fingerprint) does not match the file (found \(found)): it changed since it was signed"
    case .signerNotAllowed(let fingerprint, let rejection):
      "signed by key \(fingerprint), which is not allowed: \(rejection)"
    }
  }

  /// The error a host sees: ``PluginError/Code/untrustedPlugin``, naming the file.
  func error(pluginPath: String) -> PluginError {
    PluginError(
      code: .untrustedPlugin, message: "refusing \(pluginPath): \(self)", pluginPath: pluginPath, cause: self
    )
  }
}
