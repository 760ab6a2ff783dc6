public import GoPluginGob

/// A failed net/rpc call.
///
/// An error the server's method returned arrives as text, as Go's `rpc.ServerError`: its
/// ``message`` is exactly what the Go server sent (`key not found: nope`, `rpc: can't find
/// method Plugin.Nope`), so a host can compare it with what a Go client would have seen.
public struct NetRPCError: Error, Sendable, Hashable, CustomStringConvertible {
  /// What kind of failure this is.
  public struct Code: Sendable, Hashable, CustomStringConvertible {
    private let name: String
    public var description: String { self.name }

    /// The server answered the call with an error; ``NetRPCError/message`` is its text.
    public static let server = Code(name: "server")
    /// The connection closed, or was closed, before the answer came (Go's `rpc.ErrShutdown`).
    public static let shutdown = Code(name: "shutdown")
    /// The arguments or the reply could not be encoded or decoded.
    public static let encoding = Code(name: "encoding")
    /// The calling task was cancelled; a late answer is read and dropped.
    public static let cancelled = Code(name: "cancelled")
  }

  /// What kind of failure this is.
  public var code: Code
  /// For ``Code/server``, the server's text as it sent it; otherwise a description.
  public var message: String
  /// The codec's error, for ``Code/encoding``.
  public var gobError: GobError?

  public init(code: Code, message: String, gobError: GobError? = nil) {
    self.code = code
    self.message = message
    self.gobError = gobError
  }

  /// An error a method of a ``NetRPCService`` throws to answer with exactly `message`.
  public static func server(_ message: String) -> NetRPCError {
    NetRPCError(code: .server, message: message)
  }

  /// Go's `rpc.ErrShutdown`.
  static let shutdownError = NetRPCError(code: .shutdown, message: "connection is shut down")

  public var description: String { self.message }
}
