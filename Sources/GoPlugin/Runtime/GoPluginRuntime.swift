import NIOCore
import NIOPosix

/// Process-wide tuning for programs built on this library.
public enum GoPluginRuntime {
  /// This library's version, as `CHANGELOG.md` lists it and as a host may log it next to the
  /// plugins it loads.
  public static let libraryVersion = "0.1.0"

  /// Makes the event loops that carry plugin connections Swift concurrency's global executor
  /// too.
  ///
  /// It was this library's advice while a call hopped between the cooperative pool and the
  /// connection's event loop several times. Calls now run on their connection's loop on both
  /// sides without it, and ``PluginClient/callExecutor`` puts one task there when its calls are
  /// sequential. With the hook on top, every other task of the process competes for the loop
  /// that carries the connection: on the project's 2-core machine, 8 concurrent callers of a
  /// Swift plugin made 9,200–9,800 calls a second with it and 11,400–11,900 without it, and
  /// sequential calls gained nothing (`Benchmarks/results/2026-12-07-event-loop-calls-dynamic.md`).
  ///
  /// It affects the whole process and must run before any task has started. It needs the Swift
  /// runtime's global-executor hook, which a program linked with `--static-swift-stdlib` does not
  /// export.
  ///
  /// - Returns: whether it took effect: `false` if tasks had already run, or if the runtime's
  ///   hook cannot be found.
  @available(
    *,
    deprecated,
    message: """
      calls run on their connection's event loop without it, and it slows concurrent callers; \
      use PluginClient.callExecutor for sequential callers
      """
  )
  @discardableResult
  public static func useEventLoopsAsGlobalExecutor() -> Bool {
    NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
  }
}
