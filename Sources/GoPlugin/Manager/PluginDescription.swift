/// What one launch of a plugin file showed, or why it is not a usable plugin: what a host shows
/// a person choosing plugins, and what ``PluginDescriptionCache`` keeps per digest so that an
/// unchanged file is described without being launched.
///
/// Its JSON form (the property names) is what `goplugin list --json` prints for each file, so
/// scripts may rely on it: fields are added, never renamed.
public struct PluginDescription: Codable, Sendable, Hashable {
  /// The answer of one health check.
  public struct Health: Codable, Sendable, Hashable {
    /// The service asked about: `plugin`, as go-plugin hosts ask; `Control.Ping` for net/rpc.
    public var service: String
    /// SERVING, NOT_SERVING, UNKNOWN or SERVICE_UNKNOWN; absent when the check failed.
    public var status: String?
    /// Why the check failed.
    public var error: String?

    public init(service: String, status: String? = nil, error: String? = nil) {
      self.service = service
      self.status = status
      self.error = error
    }
  }

  /// What a Swift plugin says about itself through swift-go-plugin's info service
  /// (``PluginServeConfiguration/info``). Go and Python plugins do not serve it.
  public struct Info: Codable, Sendable, Hashable {
    /// The plugins a plugin process serves when a host negotiates one application protocol
    /// version. A plugin offering several versions lists each, with the protocol each is
    /// served over (go-plugin's `examples/negotiated` serves net/rpc at one, gRPC at another).
    public struct Offer: Codable, Sendable, Hashable {
      public var version: Int
      /// `grpc` or `netrpc`.
      public var `protocol`: String
      /// The names a host dispenses, sorted.
      public var plugins: [String]

      public init(version: Int, protocol: String, plugins: [String]) {
        self.version = version
        self.protocol = `protocol`
        self.plugins = plugins
      }
    }

    /// What the plugin was built with and for.
    public struct Build: Codable, Sendable, Hashable {
      /// swift-go-plugin's version (``GoPluginRuntime/libraryVersion``).
      public var libraryVersion: String
      /// The Swift compiler's version, when it was known at compile time.
      public var swiftVersion: String?
      /// As Go's GOOS names it: `linux`, `darwin`…
      public var os: String
      /// `x86_64`, `arm64`…
      public var arch: String

      public init(libraryVersion: String, swiftVersion: String? = nil, os: String, arch: String) {
        self.libraryVersion = libraryVersion
        self.swiftVersion = swiftVersion
        self.os = os
        self.arch = arch
      }
    }

    public var name: String
    public var version: String?
    public var description: String?
    /// Every application protocol version the plugin offers, lowest first.
    public var versions: [Offer]
    public var build: Build?
    public var metadata: [String: String]

    public init(
      name: String, version: String? = nil, description: String? = nil, versions: [Offer] = [],
      build: Build? = nil, metadata: [String: String] = [:]
    ) {
      self.name = name
      self.version = version
      self.description = description
      self.versions = versions
      self.build = build
      self.metadata = metadata
    }
  }

  /// The file described.
  public var path: String
  /// The file's SHA-256 in lowercase hex; absent when it could not be read (or is a directory).
  public var sha256: String?
  /// Whether the plugin completed its handshake and its health check said SERVING.
  public var usable: Bool
  /// Why it is not usable.
  public var reason: String?
  /// `grpc` or `netrpc`.
  public var `protocol`: String?
  /// go-plugin's core protocol version from the handshake.
  public var coreProtocolVersion: Int?
  /// The application protocol version the plugin chose among those offered.
  public var negotiatedVersion: Int?
  /// Whether the plugin sent a certificate in its handshake (it speaks AutoMTLS; only known
  /// when the describer asked for it).
  public var autoMTLS: Bool?
  /// Whether the connection is multiplexed (yamux).
  public var multiplexed: Bool?
  /// `available` when ``services`` came from gRPC server reflection, `unavailable` otherwise.
  public var reflection: String?
  /// The services reflection lists; else what the health service knows; for net/rpc, its
  /// control services.
  public var services: [String]?
  public var health: Health?
  /// What the plugin said about itself through the info service; `nil` for plugins that do not
  /// serve it (Go, Python, net/rpc).
  public var info: Info?
  /// Whether this description came from the cache (nothing was launched). Not part of the
  /// description's JSON: it says how it was obtained, not what the file is.
  public var cached = false

  private enum CodingKeys: String, CodingKey {
    case path, sha256, usable, reason, `protocol`, coreProtocolVersion, negotiatedVersion, autoMTLS, multiplexed
    case reflection, services, health, info
  }

  /// A file that is not a usable plugin, and why.
  public init(path: String, sha256: String? = nil, unusable reason: String) {
    self.path = path
    self.sha256 = sha256
    self.usable = false
    self.reason = reason
  }

  /// What an inspection showed: usable when the health check said SERVING.
  public init(path: String, sha256: String?, inspection: PluginInspection) {
    self.path = path
    self.sha256 = sha256
    let health = inspection.health
    self.usable = health.status == "SERVING"
    if !self.usable {
      self.reason = "health check of \(health.service) failed: \(health.status ?? health.error ?? "?")"
    }
    self.protocol = inspection.plugin.protocol.rawValue
    self.coreProtocolVersion = inspection.coreProtocolVersion
    self.negotiatedVersion = inspection.plugin.negotiatedVersion
    self.autoMTLS = inspection.plugin.serverCertificate != nil
    self.multiplexed = inspection.plugin.multiplexed
    self.reflection = inspection.reflection ? "available" : "unavailable"
    self.services = inspection.services
    self.health = health
    self.info = inspection.info
  }
}
