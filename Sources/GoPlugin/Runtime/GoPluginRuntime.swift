import NIOCore
import NIOPosix

/// Process-wide tuning for programs built on this library.
public enum GoPluginRuntime {
  /// This library's version, as `CHANGELOG.md` lists it and as a host may log it next to the
  /// plugins it loads.
  public static let libraryVersion = "0.1.0"

  /// Makes the event loops that carry plugin connections Swift concurrency's global executor
  /// too, so that a call's bytes and the tasks that make and handle calls run on the same
  /// threads.
  ///
  /// A call already runs on its connection's event loop while it is on the wire, and a plugin's
  /// handlers run there too (see ``PluginServeConfiguration/handlerExecution``). What is left is
  /// a host's caller: a task on the cooperative pool switches to the loop and back once per
  /// call, and on a small machine each switch costs tens of microseconds. With this, the caller
  /// already runs on an event loop, often the connection's. ``PluginClient/callExecutor`` does
  /// the same for one task without changing the whole process.
  ///
  /// It affects the whole process, so it is the program's choice, not the library's. Call it
  /// first thing in `main`, before any task has started.
  ///
  /// It needs the Swift runtime's global-executor hook, which a program linked with
  /// `--static-swift-stdlib` does not export; there it returns `false` and tasks stay on Swift's
  /// default executor. On the project's 2-core machine a dynamically linked host and plugin
  /// with the hook had a 3–17 % lower sequential-call p50 than static ones without it, and no
  /// clear difference in concurrent calls; static linking starts a plugin about 4 ms sooner
  /// (see <doc:WritingPlugins>).
  ///
  /// - Returns: whether it took effect: `false` if tasks had already run, or if the runtime's
  ///   hook cannot be found.
  @discardableResult
  public static func useEventLoopsAsGlobalExecutor() -> Bool {
    NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
  }
}
