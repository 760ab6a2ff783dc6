/// An error raised while launching, handshaking with, serving or stopping a plugin.
///
/// Failures of individual RPCs are not wrapped: they stay gRPC's `RPCError`, so the code that
/// made the call sees exactly what the plugin answered.
///
/// Where go-plugin has a well-known text for a failure, ``message`` carries that text (people
/// search for it), and ``description`` adds which plugin and which process it was about. When
/// the failure came from somewhere else — the operating system, NIO, TLS — ``cause`` keeps that
/// error as it was thrown, for code that wants more than the words.
public struct PluginError: Error, Sendable, Hashable, CustomStringConvertible {
  /// What went wrong, as a value to switch on.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Wrapped: Hashable, Sendable {
      case invalidConfiguration
      case launchFailed
      case malformedHandshake
      case incompatibleCoreVersion
      case incompatibleAppVersion
      case unknownAddressType
      case unsupportedProtocol
      case invalidServerCertificate
      case multiplexingNotSupported
      case exitedBeforeHandshake
      case startTimeout
      case unknownPlugin
      case pluginTypeMismatch
      case notRunning
      case unhealthy
      case magicCookieMismatch
      case checksumMismatch
      case brokerTimeout
      case listenFailed
      case connectionFailed
      case knockFailed
      case processNotFound
      case unavailable
      case exitedDuringCall
      case restartLimitReached
      case dispenseFailed
      case untrustedPlugin
    }

    private let wrapped: Wrapped
    private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

    /// The configuration cannot work; nothing was launched.
    public static let invalidConfiguration = Code(.invalidConfiguration)
    /// The operating system could not start the plugin's executable.
    public static let launchFailed = Code(.launchFailed)
    /// The plugin's first line on stdout is not a handshake.
    public static let malformedHandshake = Code(.malformedHandshake)
    /// The plugin speaks another core protocol version than 1.
    public static let incompatibleCoreVersion = Code(.incompatibleCoreVersion)
    /// The plugin chose an application protocol version the host did not offer.
    public static let incompatibleAppVersion = Code(.incompatibleAppVersion)
    /// The handshake names a network other than `unix` or `tcp`.
    public static let unknownAddressType = Code(.unknownAddressType)
    /// The plugin speaks a protocol (such as `netrpc`) that the host does not allow.
    public static let unsupportedProtocol = Code(.unsupportedProtocol)
    /// The handshake's certificate field cannot be decoded.
    public static let invalidServerCertificate = Code(.invalidServerCertificate)
    /// The host asked for broker multiplexing and the plugin does not offer it.
    public static let multiplexingNotSupported = Code(.multiplexingNotSupported)
    /// The plugin exited (or closed stdout) before it printed a handshake.
    public static let exitedBeforeHandshake = Code(.exitedBeforeHandshake)
    /// The plugin printed no handshake within the start timeout.
    public static let startTimeout = Code(.startTimeout)
    /// No plugin of that name is in the negotiated plugin set.
    public static let unknownPlugin = Code(.unknownPlugin)
    /// A plugin of that name exists but is of another type than the one asked for.
    public static let pluginTypeMismatch = Code(.pluginTypeMismatch)
    /// The plugin is not running (it was stopped, it exited, or it never started).
    public static let notRunning = Code(.notRunning)
    /// The plugin runs but its health service reports something other than SERVING.
    public static let unhealthy = Code(.unhealthy)
    /// The executable's digest is not the one the configuration requires; it was not run.
    public static let checksumMismatch = Code(.checksumMismatch)
    /// The other side did not announce a brokered connection for the ID in time.
    public static let brokerTimeout = Code(.brokerTimeout)
    /// Plugin side: the process was not launched by a host that knows the magic cookie.
    public static let magicCookieMismatch = Code(.magicCookieMismatch)
    /// Plugin side: no listener could be opened.
    public static let listenFailed = Code(.listenFailed)
    /// The connection to the other side could not be set up (dialled, its TLS handshake
    /// completed, its HTTP/2 SETTINGS received in time), or, multiplexed, is gone.
    public static let connectionFailed = Code(.connectionFailed)
    /// A multiplexed broker dial's knock was refused or not acknowledged in time.
    public static let knockFailed = Code(.knockFailed)
    /// A reattach found no running plugin: the process has exited (or never existed), or
    /// nothing listens at its address (go-plugin's "Reattachment process not found").
    public static let processNotFound = Code(.processNotFound)
    /// A supervised plugin is down (crashed, restarting, or given up on) and the call was not
    /// sent; it may be made again once the plugin is ready.
    public static let unavailable = Code(.unavailable)
    /// The plugin process ended while the call was in flight; whether the plugin acted on it
    /// is unknown, so it was not retried.
    public static let exitedDuringCall = Code(.exitedDuringCall)
    /// A supervisor restarted the plugin as often as its restart policy allows within its
    /// window, and gave up.
    public static let restartLimitReached = Code(.restartLimitReached)
    /// A net/rpc plugin refused to dispense a plugin (its `Server` failed), or the stream for
    /// it could not be set up; the message carries the plugin's text.
    public static let dispenseFailed = Code(.dispenseFailed)
    /// The plugin's executable is not trusted (``PluginTrust``): the lock file does not hold
    /// its digest, or it is not signed by an allowed key. It was not run; the cause is a
    /// ``PluginTrustRefusal`` saying why.
    public static let untrustedPlugin = Code(.untrustedPlugin)

    public var description: String { String(describing: self.wrapped) }
  }

  /// What went wrong.
  public var code: Code
  /// What went wrong, in words; go-plugin's own text where it has one.
  public var message: String
  /// The executable of the plugin this is about, when known.
  public var pluginPath: String?
  /// The process ID of the plugin this is about, when it was running.
  public var pid: Int32?
  /// The error this one was raised for, when another error caused it: a `PluginError` from a
  /// lower layer, or one from the system, NIO or TLS.
  ///
  /// It is not part of equality or hashing: two errors with the same code, message, plugin and
  /// process are the same failure whatever raised them, and most causes are not `Equatable`.
  public var cause: (any Error)?

  /// An error with go-plugin's text for `code`, about the plugin at `pluginPath` (process `pid`),
  /// raised because of `cause` when there is one.
  public init(code: Code, message: String, pluginPath: String? = nil, pid: Int32? = nil, cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.pluginPath = pluginPath
    self.pid = pid
    self.cause = cause
  }

  public static func == (lhs: PluginError, rhs: PluginError) -> Bool {
    lhs.code == rhs.code && lhs.message == rhs.message && lhs.pluginPath == rhs.pluginPath && lhs.pid == rhs.pid
  }

  public func hash(into hasher: inout Hasher) {
    hasher.combine(self.code)
    hasher.combine(self.message)
    hasher.combine(self.pluginPath)
    hasher.combine(self.pid)
  }

  public var description: String {
    var where_: [String] = []
    if let pluginPath { where_.append("plugin \(pluginPath)") }
    if let pid { where_.append("pid \(pid)") }
    if where_.isEmpty { return "\(self.code): \(self.message)" }
    return "\(self.code) (\(where_.joined(separator: ", "))): \(self.message)"
  }

  func about(path: String?, pid: Int32?) -> PluginError {
    var copy = self
    copy.pluginPath = copy.pluginPath ?? path
    copy.pid = copy.pid ?? pid
    return copy
  }
}
