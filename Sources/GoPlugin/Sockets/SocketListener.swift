import GoPluginPlatform
import GoPluginSpawn
import SystemPackage

/// A listening socket opened by hand before handing it to gRPC.
///
/// Binding it here, rather than letting the transport bind a path, means an existing file is
/// never replaced (the transport unlinks whatever is at the path first), the mode is set before
/// anyone can connect, and the port scan of go-plugin's TCP listener can be reproduced.
struct SocketListener: Sendable {
  enum Kind: Sendable, Hashable {
    /// A unix socket in `directory`, or in `PLUGIN_UNIX_SOCKET_DIR`, `TMPDIR` or `/tmp`.
    case unix(directory: String?)
    /// TCP on 127.0.0.1, on the first free port of `PLUGIN_MIN_PORT`...`PLUGIN_MAX_PORT`.
    case tcp
  }

  let descriptor: Int32
  let network: HandshakeLine.Network
  let address: String

  /// Opens a listener as go-plugin's plugins do (spec §2.2, §2.3).
  static func open(_ kind: Kind, environment: [String: String]) throws(PluginError) -> SocketListener {
    switch kind {
    case .unix(let directory):
      let base = directory ?? SocketDirectory.base(environment: environment)
      let group = environment[PluginEnvironment.unixSocketGroup].flatMap { $0.isEmpty ? nil : $0 }
      return try Self.openUnix(in: base, socketGroup: group)
    case .tcp:
      return try Self.openTCP(environment: environment)
    }
  }

  /// Removes the socket file, if this is a unix listener.
  func removeSocketFile() {
    if self.network == .unix { unlink(self.address) }
  }

  private static func openUnix(in directory: String, socketGroup: String?) throws(PluginError) -> SocketListener {
    // go-plugin names sockets "plugin" followed by random digits; a name taken by something
    // else is skipped, never replaced.
    for _ in 0..<32 {
      let path = "\(directory)/plugin\(UInt32.random(in: 0...UInt32.max))"
      guard path.utf8.count < 104 else {
        throw PluginError(code: .listenFailed, message: "unix socket path too long: \(path)")
      }
      let fd = Self.makeSocket(AF_UNIX)
      guard fd >= 0 else { throw Self.failure("socket", path) }
      var address = sockaddr_un()
      address.sun_family = sa_family_t(AF_UNIX)
      withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: path.utf8)
        raw[path.utf8.count] = 0
      }
      let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
      }
      if bound != 0 {
        let bindErrno = errno
        close(fd)
        if bindErrno == EADDRINUSE { continue }
        throw Self.failure("bind", path, bindErrno)
      }
      // Only the owner (or, when the host asks, a group) may connect: the socket carries an
      // unauthenticated gRPC server. Nobody can connect before listen(), so setting ownership
      // and mode here leaves no window.
      do throws(PluginError) {
        if let group = socketGroup {
          let gid = try Self.groupID(group)
          guard chown(path, uid_t.max, gid) == 0 else { throw Self.failure("chown", path) }
        }
        guard chmod(path, socketGroup == nil ? 0o600 : 0o660) == 0 else { throw Self.failure("chmod", path) }
        guard listen(fd, 128) == 0 else { throw Self.failure("listen", path) }
      } catch {
        close(fd)
        unlink(path)
        throw error
      }
      return SocketListener(descriptor: fd, network: .unix, address: path)
    }
    throw PluginError(code: .listenFailed, message: "no free socket name in \(directory)")
  }

  private static func openTCP(environment: [String: String]) throws(PluginError) -> SocketListener {
    func port(_ key: String) throws(PluginError) -> Int {
      guard let text = environment[key], !text.isEmpty else { return 0 }
      guard let value = Int(text), (0...65535).contains(value) else {
        throw PluginError(
          code: .listenFailed,
          message: "couldn't get value from \(key): strconv.Atoi: parsing \"\(text)\": invalid syntax"
        )
      }
      return value
    }
    let minPort = try port(PluginEnvironment.minPort)
    let maxPort = try port(PluginEnvironment.maxPort)
    guard minPort <= maxPort else {
      throw PluginError(
        code: .listenFailed,
        message: "PLUGIN_MIN_PORT value of \(minPort) is greater than PLUGIN_MAX_PORT value of \(maxPort)"
      )
    }
    for candidate in minPort...maxPort {
      let fd = Self.makeSocket(AF_INET)
      guard fd >= 0 else { throw Self.failure("socket", "127.0.0.1") }
      guard goplugin_bind_loopback(fd, UInt16(candidate)) == 0, listen(fd, 128) == 0 else {
        close(fd)
        continue
      }
      let boundPort = goplugin_bound_port(fd)
      return SocketListener(descriptor: fd, network: .tcp, address: "127.0.0.1:\(boundPort)")
    }
    throw PluginError(code: .listenFailed, message: "couldn't bind plugin TCP listener")
  }

  private static func makeSocket(_ domain: Int32) -> Int32 {
    #if canImport(Glibc)
    let fd = socket(domain, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let fd = socket(domain, SOCK_STREAM, 0)
    #endif
    // Plugins launch their own children; the listener must not leak into them.
    if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    return fd
  }

  /// A group name or a numeric gid, as `PLUGIN_UNIX_SOCKET_GROUP` may hold either.
  static func groupID(_ group: String) throws(PluginError) -> gid_t {
    if let gid = gid_t(group) { return gid }
    guard let entry = getgrnam(group) else {
      throw PluginError(code: .listenFailed, message: "failed to find gid from \"\(group)\": unknown group")
    }
    return entry.pointee.gr_gid
  }

  private static func failure(_ call: String, _ target: String, _ code: Int32 = errno) -> PluginError {
    PluginError(
      code: .listenFailed,
      message: "\(call) \(target): \(String(cString: strerror(code)))",
      cause: Errno(rawValue: code)
    )
  }
}
