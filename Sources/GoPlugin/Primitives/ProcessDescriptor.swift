import GoPluginPlatform
import GoPluginSpawn

/// A Linux pidfd: a descriptor that stays bound to one process, whether or not it is this
/// process's child. It tells when that process exits, and signals sent through it can never
/// reach another process that was given the same pid later (go-plugin #320 killed such one).
/// Both calls go through GoPluginSpawn's wrappers of the system calls, which work whatever
/// the C library exports.
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
    let descriptor = goplugin_pidfd_open(pid)
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
    return goplugin_pidfd_send_signal(self.descriptor, signal) == 0
    #else
    return false
    #endif
  }

  func close() {
    _ = GoPluginPlatform.close(self.descriptor)
  }
}
