import GoPlugin
import GoPluginPlatform
import GoPluginSpawn

/// Processes that are not this process's children, followed to their end through pidfds, opened
/// while the processes run so that a pid reused later is never mistaken for them.
public final class ProcessWatch: Sendable {
  private struct Watched: Sendable {
    var pid: Int32
    var descriptor: Int32
  }

  private let watched: [Watched]

  /// Opens a pidfd on each pid; do it while the processes surely run.
  public init(_ pids: [Int32]) {
    // A pid without a pidfd (ESRCH) has gone already.
    self.watched = pids.map { Watched(pid: $0, descriptor: goplugin_pidfd_open($0)) }
  }

  deinit {
    for watched in self.watched where watched.descriptor >= 0 { close(watched.descriptor) }
  }

  /// The pids still running once `limit` has passed, or as soon as none is. A zombie counts as
  /// gone: it runs nothing, and only its parent (init, for an orphan) can reap it.
  public func running(after limit: Duration) async -> [Int32] {
    let watched = self.watched
    return await DedicatedThread.run {
      let deadline = ContinuousClock.now + limit
      var left = watched.filter { $0.descriptor >= 0 }
      // Checked first: with nothing to watch, poll would sleep the whole limit.
      while !left.isEmpty {
        let remaining = max(deadline - ContinuousClock.now, .zero)
        var descriptors = left.map { pollfd(fd: $0.descriptor, events: Int16(POLLIN), revents: 0) }
        let timeout = Int32(min(remaining / .milliseconds(1), 60_000).rounded(.up))
        guard poll(&descriptors, nfds_t(descriptors.count), timeout) >= 0 || errno == EINTR else { break }
        left = zip(left, descriptors).filter { $0.1.revents == 0 }.map(\.0)
        if ContinuousClock.now >= deadline { break }
      }
      return left.map(\.pid)
    }
  }
}
