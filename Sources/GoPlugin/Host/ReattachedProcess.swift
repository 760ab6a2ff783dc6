import GoPluginPlatform
import Synchronization

/// A plugin process this host did not launch, watched through a pidfd: it tells when the
/// process exits (go-plugin 1.0.1 polls `kill(pid, 0)` every second instead), and SIGKILL goes
/// through it, so that it can only ever reach that process, never one that took its pid later.
///
/// The process is not our child: its exit status goes to its parent, and ``terminated`` is
/// fulfilled with `nil`.
final class ReattachedProcess: PluginProcessHandle {
  let pid: Int32
  let terminated = OneShot<PluginExit.Status?>()

  private enum Ending {
    case none
    case askedToStop
    case killed
  }

  private struct State {
    var ending = Ending.none
    /// The pidfd and the wake-up pipe are closed: the watch is over.
    var closed = false
  }

  private let process: ProcessDescriptor
  /// Written to end the watch early, when the host lets go of a process that keeps running.
  private let wakeRead: Int32
  private let wakeWrite: Int32
  private let state = Mutex(State())

  /// Takes ownership of `process`.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/processNotFound`` if the process has
  ///   exited already.
  init(_ process: ProcessDescriptor) throws(PluginError) {
    guard !process.hasExited else {
      process.close()
      throw PluginError(
        code: .processNotFound, message: "Reattachment process not found: process \(process.pid) has exited",
        pid: process.pid)
    }
    var ends: [Int32] = [-1, -1]
    // No plugin launched later may inherit either end.
    guard pipe(&ends) == 0, fcntl(ends[0], F_SETFD, FD_CLOEXEC) == 0, fcntl(ends[1], F_SETFD, FD_CLOEXEC) == 0 else {
      let code = errno
      process.close()
      throw PluginError(
        code: .connectionFailed,
        message: "cannot watch process \(process.pid): pipe: \(String(cString: strerror(code)))",
        pid: process.pid)
    }
    self.pid = process.pid
    self.process = process
    (self.wakeRead, self.wakeWrite) = (ends[0], ends[1])
  }

  /// Waits, on a thread of its own, until the process exits or ``release()`` is called, then
  /// closes the descriptors. Call it once; the client's run keeps it as a child task.
  func watch() async {
    let (pidfd, wake) = (self.process.descriptor, self.wakeRead)
    let exited = await DedicatedThread.run { () -> Bool in
      var entries = [
        pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0),
        pollfd(fd: wake, events: Int16(POLLIN), revents: 0),
      ]
      while true {
        let ready = poll(&entries, 2, -1)
        if ready < 0 && errno == EINTR { continue }
        // A failed poll cannot tell an exit; the session then ends as if the host let go.
        return ready > 0 && entries[0].revents != 0
      }
    }
    self.state.withLock { state in
      state.closed = true
      self.process.close()
      close(self.wakeRead)
      close(self.wakeWrite)
    }
    if exited {
      self.terminated.fulfil(nil)
    }
  }

  func release() {
    self.state.withLock { state in
      guard !state.closed else { return }
      var byte: UInt8 = 1
      _ = write(self.wakeWrite, &byte, 1)
    }
  }

  func kill() {
    self.state.withLock { state in
      guard !state.closed, !self.process.hasExited else { return }
      state.ending = .killed
      self.process.send(signal: SIGKILL)
    }
  }

  func beginStop() -> Bool {
    self.state.withLock { state in
      guard !state.closed, !self.process.hasExited, state.ending != .killed else { return false }
      state.ending = .askedToStop
      return true
    }
  }

  func reason(for status: PluginExit.Status?) -> PluginExit.Reason {
    switch self.state.withLock({ $0.ending }) {
    case .none: .exitedUnexpectedly
    case .killed: .killed
    case .askedToStop: .stopped
    }
  }

  /// Its stderr goes wherever whoever launched it sent it.
  var lastStandardErrorLines: [String] { [] }
}
