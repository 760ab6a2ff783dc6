import GoPluginPlatform
import GoPluginSpawn

/// Tells a plugin manager when its directories may have changed, so that it rescans them: by
/// inotify, or by a timer.
///
/// It never says what changed. A rescan compares every file's identity (device, inode, size,
/// modification time) with what it saw before, which is cheap, and reads only the files whose
/// identity changed; so a spurious wake-up costs a directory listing, and a missed detail of an
/// event costs nothing.
enum DirectoryWatcher {
  /// How long the directories must be quiet after an event before the rescan: a copy or an
  /// unpacked archive is many events, and a half-written file is not worth a launch.
  static let settleDelay: Duration = .milliseconds(50)
  /// The longest a stream of events can put the rescan off.
  static let longestSettle: Duration = .seconds(1)
  /// How often directories that could not be watched (missing, say) are tried again.
  static let retryInterval: Duration = .seconds(1)

  /// Calls `changed` after every settled batch of changes in `directories` until the task is
  /// cancelled; every `interval` when polling.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/invalidConfiguration`` when inotify was
  ///   asked for and cannot be had.
  static func run(
    directories: [String], mode: PluginManager.Watching, changed: @escaping @Sendable () -> Void
  ) async throws(PluginError) {
    switch mode.resolved {
    case .polling(let interval):
      while !Task.isCancelled {
        do {
          try await Task.sleep(for: interval)
        } catch {
          return
        }
        changed()
      }
    case .inotify, .automatic:
      try await self.watchWithInotify(directories, changed: changed)
    }
  }

  private static func watchWithInotify(
    _ directories: [String], changed: @escaping @Sendable () -> Void
  ) async throws(PluginError) {
    let inotify = goplugin_inotify_open()
    guard inotify >= 0 else {
      let code = errno
      throw PluginError(
        code: .invalidConfiguration, message: "cannot watch plugin directories with inotify: \(Self.text(code))")
    }
    defer { close(inotify) }
    // A pipe whose read end becomes readable when the watch is to end: the thread waiting in
    // poll(2) cannot be cancelled otherwise.
    var wake: [Int32] = [-1, -1]
    guard pipe(&wake) == 0 else {
      let code = errno
      throw PluginError(code: .invalidConfiguration, message: "cannot make a wake-up pipe: \(Self.text(code))")
    }
    defer {
      close(wake[0])
      close(wake[1])
    }
    _ = fcntl(wake[0], F_SETFD, FD_CLOEXEC)
    _ = fcntl(wake[1], F_SETFD, FD_CLOEXEC)
    let (readEnd, writeEnd) = (wake[0], wake[1])
    await withTaskCancellationHandler {
      await DedicatedThread.run {
        Self.loop(inotify: inotify, wake: readEnd, directories: directories, changed: changed)
      }
    } onCancel: {
      var byte: UInt8 = 1
      _ = write(writeEnd, &byte, 1)
    }
  }

  /// The watching thread: returns when woken through `wake`, or when inotify fails.
  private static func loop(
    inotify: Int32, wake: Int32, directories: [String], changed: @Sendable () -> Void
  ) {
    var unwatched = directories.filter { goplugin_inotify_watch_directory(inotify, $0) < 0 }
    // The manager's first scan may have run before these watches existed: a file put in place
    // in between would have no event and stay unseen until the next one. A scan now, with the
    // watches in place, sees it.
    changed()
    let settle = Int32(Self.settleDelay / .milliseconds(1))
    while true {
      let timeout = unwatched.isEmpty ? -1 : Int32(Self.retryInterval / .milliseconds(1))
      var lost: Int32 = 0
      let events = goplugin_inotify_wait(inotify, wake, timeout, &lost)
      if events == -2 || events == -1 { return }
      if lost != 0 {
        // A directory went: watched again when it is back (watching one still watched is a
        // no-op that returns its watch).
        unwatched = directories.filter { goplugin_inotify_watch_directory(inotify, $0) < 0 }
      }
      if events == 0 {
        // A directory that appeared since is watched from now on, and scanned.
        let before = unwatched.count
        unwatched = unwatched.filter { goplugin_inotify_watch_directory(inotify, $0) < 0 }
        if unwatched.count < before { changed() }
        continue
      }
      let deadline = ContinuousClock.now + Self.longestSettle
      while ContinuousClock.now < deadline {
        let more = goplugin_inotify_wait(inotify, wake, settle, &lost)
        if more == -2 || more == -1 { return }
        if more == 0 { break }
      }
      if lost != 0 { unwatched = directories.filter { goplugin_inotify_watch_directory(inotify, $0) < 0 } }
      changed()
    }
  }

  private static func text(_ code: Int32) -> String {
    String(cString: strerror(code))
  }
}
