import GoPluginPlatform

/// A Linux pidfd: a descriptor that stays bound to one process, whether or not it is this
/// process's child. It tells when that process exits, and signals sent through it can never
/// reach another process that was given the same pid later (go-plugin #320 killed such one).
///
/// The C library declares `pidfd_open` and `pidfd_send_signal` in a header the Swift module
/// does not include, and `syscall` is variadic, which Swift cannot call; so both are looked up
/// by name (glibc 2.36 and later, musl 1.2.4 and later export them).
struct ProcessDescriptor: Sendable {
  enum OpenError: Error, Sendable {
    /// No process has that pid.
    case noSuchProcess
    /// The system has no pidfds (not Linux, a kernel before 5.3, or an older C library).
    case unsupported
    case failed(errno: Int32)
  }

  let pid: Int32
  let descriptor: Int32

  /// Opens a pidfd on `pid`; close it with ``close()``.
  static func open(pid: Int32) throws(OpenError) -> ProcessDescriptor {
    #if os(Linux)
    guard pid > 0 else { throw .noSuchProcess }
    guard let open = Functions.open else { throw .unsupported }
    let descriptor = open(pid, 0)
    guard descriptor >= 0 else {
      switch errno {
      case ESRCH: throw .noSuchProcess
      case ENOSYS: throw .unsupported
      case let code: throw .failed(errno: code)
      }
    }
    // pidfds are close-on-exec from birth: no plugin launched later inherits one.
    return ProcessDescriptor(pid: pid, descriptor: descriptor)
    #else
    throw .unsupported
    #endif
  }

  /// Whether the process has exited. A zombie has: its pid is only held until its parent reaps it.
  var hasExited: Bool {
    var entry = pollfd(fd: self.descriptor, events: Int16(POLLIN), revents: 0)
    return poll(&entry, 1, 0) != 0
  }

  /// Sends `signal` to the process itself; `false` if it has exited (or the call failed).
  @discardableResult
  func send(signal: Int32) -> Bool {
    #if os(Linux)
    guard let send = Functions.sendSignal else { return false }
    return send(self.descriptor, signal, nil, 0) == 0
    #else
    return false
    #endif
  }

  func close() {
    _ = GoPluginPlatform.close(self.descriptor)
  }

  #if os(Linux)
  private enum Functions {
    typealias Open = @convention(c) (pid_t, UInt32) -> Int32
    typealias SendSignal = @convention(c) (Int32, Int32, UnsafeMutableRawPointer?, UInt32) -> Int32

    static let open: Open? = Self.symbol("pidfd_open")
    static let sendSignal: SendSignal? = Self.symbol("pidfd_send_signal")

    private static func symbol<Function>(_ name: String) -> Function? {
      // RTLD_DEFAULT: the C library is already loaded.
      guard let address = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
      return unsafeBitCast(address, to: Function.self)
    }
  }
  #endif
}
