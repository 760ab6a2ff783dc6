import GoPluginPlatform
import SystemPackage

/// The keys trusted to sign plugins, in the format of OpenSSH's allowed-signers file
/// (`ssh-keygen(1)`, "ALLOWED SIGNERS"): one key a line,
///
/// ```
/// # principals  [options]                 keytype      base64-key               [comment]
/// alice@example.com namespaces="goplugin" ssh-ed25519  AAAAC3NzaC1lZDI1NTE5AAAA… alice's laptop
/// ci@example.com,release@example.com      ecdsa-sha2-nistp256 AAAAE2VjZHNh…
/// ```
///
/// so that the file a team already keeps for `git` commit signing or `ssh-keygen -Y verify` is
/// also the file a host trusts plugins from. Of the options, `namespaces` (a pattern list such as
/// `"goplugin,file"`), `valid-after` and `valid-before` (`YYYYMMDD[HHMM[SS]]`, UTC with a
/// trailing `Z`, local time without) are honoured. `cert-authority` lines are kept but match no
/// signature: they trust certificates, and plugin signatures made with certificates are not
/// supported; a signature by such a key is refused with that reason.
public struct AllowedSigners: Sendable, Hashable {
  /// One line of the file.
  public struct Entry: Sendable, Hashable {
    /// The principals field as written (comma-separated patterns), which is what a successful
    /// verification reports as the signer, as `ssh-keygen -Y find-principals` does.
    public var principals: String
    /// The trusted key.
    public var key: SSHPublicKey
    /// The namespace patterns the key may sign for; `nil` means any.
    public var namespaces: String?
    /// Whether the line is a `cert-authority` line (which trusts certificates, not the key's
    /// own signatures).
    public var certificateAuthority: Bool
    /// Seconds since 1970 before which the key is not yet trusted.
    public var validAfter: Int64?
    /// Seconds since 1970 from which the key is no longer trusted.
    public var validBefore: Int64?
    /// Where the line is, `FILE:LINE`, for messages.
    public var source: String

    public init(
      principals: String, key: SSHPublicKey, namespaces: String? = nil, certificateAuthority: Bool = false,
      validAfter: Int64? = nil, validBefore: Int64? = nil, source: String = ""
    ) {
      self.principals = principals
      self.key = key
      self.namespaces = namespaces
      self.certificateAuthority = certificateAuthority
      self.validAfter = validAfter
      self.validBefore = validBefore
      self.source = source
    }
  }

  /// The lines, in file order.
  public var entries: [Entry]

  public init(entries: [Entry]) {
    self.entries = entries
  }

  /// Parses the text of an allowed-signers file; `source` names it in messages.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/invalidConfiguration`` naming the file
  ///   and line of the first line that is not an allowed signer.
  public init(parsing text: String, source: String = "allowed signers") throws(PluginError) {
    var entries: [Entry] = []
    for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let where_ = "\(source):\(index + 1)"
      do {
        if let entry = try Self.parse(line: line.trimmingSSHWhitespace(), source: where_) { entries.append(entry) }
      } catch {
        throw PluginError(code: .invalidConfiguration, message: "\(where_): \(error.reason)")
      }
    }
    self.entries = entries
  }

  /// Reads and parses the allowed-signers file at `path`.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/invalidConfiguration`` when the file
  ///   cannot be read or a line is not an allowed signer.
  public init(contentsOf path: String) throws(PluginError) {
    let bytes = try TrustFiles.readSmallFile(path, limit: 16 << 20, what: "allowed signers file")
    try self.init(parsing: String(decoding: bytes, as: UTF8.self), source: path)
  }

  /// Why a signature's key is not accepted for a namespace.
  public enum Rejection: Error, Sendable, Hashable, CustomStringConvertible {
    /// No line holds the key.
    case notListed
    /// The key is on `cert-authority` lines only.
    case certificateAuthorityOnly
    /// The key's lines allow other namespaces only (the patterns of the first).
    case namespaceNotAllowed(patterns: String)
    /// The key's `valid-after` time has not come yet.
    case notYetValid(validAfter: Int64)
    /// The key's `valid-before` time has passed.
    case expired(validBefore: Int64)

    public var description: String {
      switch self {
      case .notListed: "the key is not in the allowed signers"
      case .certificateAuthorityOnly:
        "the key is listed only as a cert-authority, which trusts certificates (not supported), not the key's own signatures"
      case .namespaceNotAllowed(let patterns): "the key is allowed to sign only for namespaces \"\(patterns)\""
      case .notYetValid(let time): "the key is not valid before \(TrustTime.format(time))"
      case .expired(let time): "the key expired at \(TrustTime.format(time))"
      }
    }
  }

  /// The first line that trusts `key` to sign for `namespace` at `time` (seconds since 1970),
  /// or why none does (the reason the first line listing the key gave).
  public func signer(
    for key: SSHPublicKey, namespace: String, at time: Int64 = TrustTime.now()
  ) -> Result<Entry, Rejection> {
    var rejection: Rejection?
    for entry in self.entries where entry.key == key {
      let reason: Rejection?
      if entry.certificateAuthority {
        reason = .certificateAuthorityOnly
      } else if let patterns = entry.namespaces, !SSHPattern.matchesList(namespace, patterns) {
        reason = .namespaceNotAllowed(patterns: patterns)
      } else if let after = entry.validAfter, time < after {
        reason = .notYetValid(validAfter: after)
      } else if let before = entry.validBefore, time >= before {
        reason = .expired(validBefore: before)
      } else {
        return .success(entry)
      }
      // A plain line's reason says more than a cert-authority line's.
      if rejection == nil || rejection == .certificateAuthorityOnly { rejection = reason }
    }
    return .failure(rejection ?? .notListed)
  }

  private static func parse(line: String, source: String) throws(SSHWireReader.Malformed) -> Entry? {
    guard !line.isEmpty, !line.hasPrefix("#") else { return nil }
    var scanner = FieldScanner(line)
    guard let principals = try scanner.field(), !principals.isEmpty else {
      throw SSHWireReader.Malformed(reason: "no principals")
    }
    guard var field = try scanner.field() else { throw SSHWireReader.Malformed(reason: "no key after the principals") }
    var options = Options()
    // OpenSSH tells options from a key by whether the field reads as a key type.
    let looksLikeKeyType = ["ssh-", "ecdsa-", "sk-"].contains { field.hasPrefix($0) }
    if !looksLikeKeyType {
      try Self.apply(options: field, to: &options)
      guard let next = try scanner.field() else { throw SSHWireReader.Malformed(reason: "no key after the options") }
      field = next
    }
    guard let base64 = try scanner.field() else {
      throw SSHWireReader.Malformed(reason: "no base64 key after \(field)")
    }
    return Entry(
      principals: principals, key: try SSHPublicKey(type: field, base64: base64), namespaces: options.namespaces,
      certificateAuthority: options.certificateAuthority, validAfter: options.validAfter,
      validBefore: options.validBefore, source: source
    )
  }

  private struct Options {
    var namespaces: String?
    var certificateAuthority = false
    var validAfter: Int64?
    var validBefore: Int64?
  }

  private static func apply(options: String, to entry: inout Options) throws(SSHWireReader.Malformed) {
    for option in SSHPattern.splitOutsideQuotes(options) {
      let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
      let name = parts[0].lowercased()
      var value: String?
      if parts.count == 2 {
        guard parts[1].count >= 2, parts[1].hasPrefix("\""), parts[1].hasSuffix("\"") else {
          throw SSHWireReader.Malformed(reason: "option \(name) needs a quoted value")
        }
        value = String(parts[1].dropFirst().dropLast())
      }
      switch (name, value) {
      case ("cert-authority", nil): entry.certificateAuthority = true
      case ("namespaces", let value?): entry.namespaces = value
      case ("valid-after", let value?): entry.validAfter = try TrustTime.parse(value, option: name)
      case ("valid-before", let value?): entry.validBefore = try TrustTime.parse(value, option: name)
      default: throw SSHWireReader.Malformed(reason: "unsupported option \(option)")
      }
    }
  }
}

/// Splits a line into whitespace-separated fields, a field in double quotes keeping its spaces
/// (principals may be quoted; options hold quoted values).
private struct FieldScanner {
  private let characters: [Character]
  private var index = 0

  init(_ line: String) { self.characters = Array(line) }

  mutating func field() throws(SSHWireReader.Malformed) -> String? {
    while self.index < self.characters.count, self.characters[self.index] == " " || self.characters[self.index] == "\t"
    {
      self.index += 1
    }
    guard self.index < self.characters.count else { return nil }
    var field = ""
    var quoted = false
    while self.index < self.characters.count {
      let character = self.characters[self.index]
      if !quoted, character == " " || character == "\t" { break }
      if character == "\"" { quoted.toggle() }
      field.append(character)
      self.index += 1
    }
    guard !quoted else { throw SSHWireReader.Malformed(reason: "unterminated quote") }
    // A quoted principals field stands for its contents.
    if field.count >= 2, field.first == "\"", field.last == "\"", !field.dropFirst().dropLast().contains("\"") {
      return String(field.dropFirst().dropLast())
    }
    return field
  }
}

/// OpenSSH's pattern lists: comma-separated patterns with `*` and `?`, a `!` in front negating.
enum SSHPattern {
  static func matchesList(_ text: String, _ list: String) -> Bool {
    var matched = false
    for pattern in list.split(separator: ",").map({ $0.trimmingSSHWhitespace() }) {
      if pattern.hasPrefix("!") {
        if Self.matches(Array(text), Array(pattern.dropFirst())) { return false }
      } else if Self.matches(Array(text), Array(pattern)) {
        matched = true
      }
    }
    return matched
  }

  static func matches(_ text: [Character], _ pattern: [Character]) -> Bool {
    guard let first = pattern.first else { return text.isEmpty }
    switch first {
    case "*":
      let rest = Array(pattern.dropFirst())
      return (0...text.count).contains { Self.matches(Array(text[$0...]), rest) }
    case "?":
      return !text.isEmpty && Self.matches(Array(text.dropFirst()), Array(pattern.dropFirst()))
    default:
      return text.first == first && Self.matches(Array(text.dropFirst()), Array(pattern.dropFirst()))
    }
  }

  static func splitOutsideQuotes(_ text: String) -> [String] {
    var parts: [String] = []
    var current = ""
    var quoted = false
    for character in text {
      if character == "\"" { quoted.toggle() }
      if character == ",", !quoted {
        parts.append(current)
        current = ""
      } else {
        current.append(character)
      }
    }
    parts.append(current)
    return parts
  }
}

/// Times as allowed-signers files write them, and the clock they are compared with.
public enum TrustTime: Sendable {
  /// Now, in seconds since 1970.
  public static func now() -> Int64 { Int64(time(nil)) }

  /// `YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`, UTC with a trailing `Z`, local time without.
  static func parse(_ text: String, option: String) throws(SSHWireReader.Malformed) -> Int64 {
    var digits = Array(text.utf8)
    let utc = digits.last == UInt8(ascii: "Z")
    if utc { digits.removeLast() }
    guard [8, 12, 14].contains(digits.count),
      digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
    else { throw SSHWireReader.Malformed(reason: "\(option)=\"\(text)\" is not YYYYMMDD[HHMM[SS]][Z]") }
    func number(_ range: Range<Int>) -> Int32 {
      range.reduce(Int32(0)) { $0 * 10 + Int32(digits[$1] - UInt8(ascii: "0")) }
    }
    var fields = tm()
    fields.tm_year = number(0..<4) - 1900
    fields.tm_mon = number(4..<6) - 1
    fields.tm_mday = number(6..<8)
    if digits.count >= 12 {
      fields.tm_hour = number(8..<10)
      fields.tm_min = number(10..<12)
    }
    if digits.count == 14 { fields.tm_sec = number(12..<14) }
    fields.tm_isdst = -1
    guard (0...11).contains(fields.tm_mon), (1...31).contains(fields.tm_mday), fields.tm_hour < 24, fields.tm_min < 60,
      fields.tm_sec < 61
    else { throw SSHWireReader.Malformed(reason: "\(option)=\"\(text)\" is not a valid time") }
    return Int64(utc ? timegm(&fields) : mktime(&fields))
  }

  /// `seconds` as `YYYY-MM-DDTHH:MM:SSZ`.
  static func format(_ seconds: Int64) -> String {
    var value = time_t(seconds)
    var fields = tm()
    gmtime_r(&value, &fields)
    func two(_ number: Int32) -> String { number < 10 ? "0\(number)" : "\(number)" }
    return "\(fields.tm_year + 1900)-\(two(fields.tm_mon + 1))-\(two(fields.tm_mday))T"
      + "\(two(fields.tm_hour)):\(two(fields.tm_min)):\(two(fields.tm_sec))Z"
  }
}
