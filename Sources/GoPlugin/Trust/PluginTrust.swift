import GoPluginPlatform
import GoPluginSpawn
import SystemPackage

/// Which signatures make a plugin trusted: OpenSSH signatures (`ssh-keygen -Y sign -n goplugin
/// -f KEY PLUGIN`, written to `PLUGIN.sig`) by a key in an allowed-signers file.
public struct PluginSignatureRequirement: Sendable, Hashable {
  /// The keys allowed to sign plugins.
  public var allowedSigners: AllowedSigners
  /// The namespace the signature must have been made for.
  public var namespace: String
  /// What is appended to a plugin's path to find its signature.
  public var signatureSuffix: String
  /// When to check `valid-after` and `valid-before` against, in seconds since 1970; `nil` is
  /// the time of the check.
  public var verificationTime: Int64?

  /// The namespace plugin signatures are made for unless a host chooses its own.
  public static let defaultNamespace = "goplugin"

  public init(
    allowedSigners: AllowedSigners, namespace: String = Self.defaultNamespace, signatureSuffix: String = ".sig",
    verificationTime: Int64? = nil
  ) {
    self.allowedSigners = allowedSigners
    self.namespace = namespace
    self.signatureSuffix = signatureSuffix
    self.verificationTime = verificationTime
  }

  /// Checks `signature` over a file whose digest (with the signature's hash algorithm) is
  /// `messageDigest` and whose SHA-256 is `sha256`: the namespace, the signature itself, then
  /// whether its key is allowed.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/untrustedPlugin`` and a
  ///   ``PluginTrustRefusal`` cause, naming `pluginPath`.
  public func verify(
    _ signature: SSHSignature, messageDigest: [UInt8], sha256: PluginChecksum, pluginPath: String
  ) throws(PluginError) -> PluginSigner {
    let key = signature.publicKey
    guard signature.namespace == self.namespace else {
      throw PluginTrustRefusal.wrongNamespace(expected: self.namespace, found: signature.namespace)
        .error(pluginPath: pluginPath)
    }
    let valid: Bool
    do {
      valid = try signature.isValid(messageDigest: messageDigest)
    } catch {
      throw ((error.cause as? PluginTrustRefusal) ?? .malformedSignature(reason: error.message))
        .error(pluginPath: pluginPath)
    }
    guard valid else {
      throw PluginTrustRefusal.badSignature(fingerprint: key.fingerprint, found: sha256).error(pluginPath: pluginPath)
    }
    switch self.allowedSigners.signer(for: key, namespace: self.namespace, at: self.verificationTime ?? TrustTime.now())
    {
    case .success(let entry):
      return PluginSigner(principals: entry.principals, key: key, namespace: signature.namespace)
    case .failure(let rejection):
      throw PluginTrustRefusal.signerNotAllowed(fingerprint: key.fingerprint, rejection: rejection)
        .error(pluginPath: pluginPath)
    }
  }
}

/// Who signed a plugin that verified.
public struct PluginSigner: Sendable, Hashable, CustomStringConvertible {
  /// The principals of the allowed-signers line that trusts the key.
  public var principals: String
  /// The key that made the signature.
  public var key: SSHPublicKey
  /// The namespace the signature was made for.
  public var namespace: String

  public init(principals: String, key: SSHPublicKey, namespace: String) {
    self.principals = principals
    self.key = key
    self.namespace = namespace
  }

  public var description: String { "\(self.principals) (\(self.key))" }
}

/// A plugin file that passed every check of a ``PluginTrust``.
public struct TrustedPlugin: Sendable, Hashable {
  /// The file that was checked.
  public var path: String
  /// Its name in the lock file.
  public var name: String
  /// Its SHA-256, computed from the descriptor that was checked.
  public var sha256: PluginChecksum
  /// Who signed it, when signatures are required.
  public var signer: PluginSigner?
  /// How it passed the lock file, when there is one.
  public var lock: PluginLockFile.Outcome?

  public init(
    path: String, name: String, sha256: PluginChecksum, signer: PluginSigner? = nil, lock: PluginLockFile.Outcome? = nil
  ) {
    self.path = path
    self.name = name
    self.sha256 = sha256
    self.signer = signer
    self.lock = lock
  }
}

/// What makes a host trust a plugin binary enough to run it: a lock file of digests, signatures
/// by allowed keys, or both (both must then pass). A trust with neither accepts every file and
/// only computes its digest.
///
/// A host sets it on ``PluginClientConfiguration/trust``, and the file is checked through the
/// descriptor that is then executed, before the plugin starts; a refused plugin never runs.
/// A plugin manager checks files itself with ``check(path:name:)``.
///
/// ```swift
/// let trust = PluginTrust(
///   lockFile: try PluginLockFile(path: "/etc/myapp/plugins.lock", policy: .trustOnFirstUse),
///   signatures: PluginSignatureRequirement(allowedSigners: try AllowedSigners(contentsOf: "/etc/myapp/allowed_signers"))
/// )
/// configuration.trust = trust
/// ```
public struct PluginTrust: Sendable {
  /// The digests plugins must have; `nil` for no lock.
  public var lockFile: PluginLockFile?
  /// The signatures plugins must carry; `nil` for none.
  public var signatures: PluginSignatureRequirement?

  public init(lockFile: PluginLockFile? = nil, signatures: PluginSignatureRequirement? = nil) {
    self.lockFile = lockFile
    self.signatures = signatures
  }

  /// Checks the plugin file at `path`, reading it once.
  ///
  /// - Parameters:
  ///   - name: the plugin's name in the lock file; the file name when `nil`.
  /// - Throws: ``PluginError`` with ``PluginError/Code/untrustedPlugin`` and a
  ///   ``PluginTrustRefusal`` cause when it is refused, naming the file and the expected and
  ///   found digest or the key; ``PluginError/Code/invalidConfiguration`` when it is not a
  ///   readable regular file or the lock file cannot be written.
  public func check(path: String, name: String? = nil) throws(PluginError) -> TrustedPlugin {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else {
      var failure = TrustFiles.failure("cannot read plugin \(path)", errno)
      failure.pluginPath = path
      throw failure
    }
    defer { close(descriptor) }
    return try self.check(descriptor: descriptor, path: path, name: name)
  }

  /// Checks the plugin open at `descriptor`, which was opened from `path`: the digest is of
  /// what the descriptor reads (from its start, whatever its offset), so a host that executes
  /// this descriptor runs exactly what was checked.
  public func check(descriptor: Int32, path: String, name: String? = nil) throws(PluginError) -> TrustedPlugin {
    let regular = goplugin_is_regular_file(descriptor)
    guard regular >= 0 else {
      var failure = TrustFiles.failure("cannot read plugin \(path)", errno)
      failure.pluginPath = path
      throw failure
    }
    guard regular == 1 else {
      throw PluginError(
        code: .invalidConfiguration, message: "refusing \(path): not a regular file", pluginPath: path
      )
    }
    let name = name ?? Self.fileName(path)
    // The signature is read first, so that its hash is computed in the same pass as SHA-256.
    let signature = try self.signatures.map { requirement throws(PluginError) in
      try Self.readSignature(path + requirement.signatureSuffix, pluginPath: path)
    }
    let digests = try TrustFiles.digests(of: descriptor, path: path, signatureHash: signature?.hashAlgorithm)
    let sha256 = PluginChecksum(.sha256, digest: digests.sha256)
    var signer: PluginSigner?
    if let requirement = self.signatures, let signature, let messageDigest = digests.signature {
      // Before the lock: trust on first use must never record a file whose signature fails.
      signer = try requirement.verify(signature, messageDigest: messageDigest, sha256: sha256, pluginPath: path)
    }
    let lock = try self.lockFile.map { lockFile throws(PluginError) in
      try lockFile.check(name: name, digest: sha256, pluginPath: path)
    }
    return TrustedPlugin(path: path, name: name, sha256: sha256, signer: signer, lock: lock)
  }

  private static func readSignature(_ signaturePath: String, pluginPath: String) throws(PluginError) -> SSHSignature {
    let bytes: [UInt8]?
    do {
      bytes = try TrustFiles.readSmallFileIfPresent(signaturePath, limit: 1 << 20, what: "signature file")
    } catch {
      throw PluginTrustRefusal.malformedSignature(reason: error.message).error(pluginPath: pluginPath)
    }
    guard let bytes else {
      throw PluginTrustRefusal.unsigned(signatureFile: signaturePath).error(pluginPath: pluginPath)
    }
    do {
      return try SSHSignature(armored: String(decoding: bytes, as: UTF8.self))
    } catch {
      let refusal = (error.cause as? PluginTrustRefusal) ?? .malformedSignature(reason: error.message)
      var failure = refusal.error(pluginPath: pluginPath)
      failure.message = "refusing \(pluginPath): \(signaturePath): \(refusal)"
      throw failure
    }
  }

  static func fileName(_ path: String) -> String {
    path.split(separator: "/").last.map(String.init) ?? path
  }
}
