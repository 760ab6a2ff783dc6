/// What a client's session needs of the plugin process it talks to, whether the client
/// launched it (``PluginProcess``) or attached to one that was already running
/// (``ReattachedProcess``).
protocol PluginProcessHandle: Sendable {
  /// Fulfilled once the process has ended: with its wait status when this process reaped it,
  /// `nil` when it ended without this process learning how (it was not our child).
  var terminated: OneShot<PluginExit.Status?> { get }
  /// Sends SIGKILL if the process has not exited yet, and records that the host killed it.
  func kill()
  /// Records that the host is about to ask the process to shut down; `false` when it has
  /// exited already or is being killed.
  func beginStop() -> Bool
  /// Why the process ended, given how it ended.
  func reason(for status: PluginExit.Status?) -> PluginExit.Reason
  /// What the plugin last wrote to stderr, when the host reads its stderr.
  var lastStandardErrorLines: [String] { get }
  /// The host lets go of the process, which keeps running: whatever the handle watches it with
  /// is released.
  func release()
}

extension PluginProcessHandle {
  func release() {}
}

// A launched plugin stays this process's child after a detach, and its `run()` still reaps it.
extension PluginProcess: PluginProcessHandle {}
