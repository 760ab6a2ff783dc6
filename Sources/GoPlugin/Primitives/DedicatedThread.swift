import GoPluginPlatform

/// Runs blocking work on a thread of its own, outside Swift concurrency's pool.
///
/// A test process on a 2-core machine has two concurrency threads, and a blocking wait on one
/// of them (for a process, a descriptor) stalls everything else. Some waits also have to run on
/// a thread that lives exactly as long as they do: Linux's parent-death signal follows the
/// thread that forked a child, not its process.
package enum DedicatedThread {
  /// Runs `body` on a new thread and returns its result. The thread ends when `body` returns;
  /// cancelling the caller does not interrupt `body`, so `body` must end by itself (a wake-up
  /// descriptor, a process exit).
  package static func run<Result: Sendable>(
    _ body: @escaping @Sendable () -> Result
  ) async -> Result {
    await withCheckedContinuation { (continuation: CheckedContinuation<Result, Never>) in
      let work = Work {
        continuation.resume(returning: body())
      }
      if !work.start() {
        // No thread to be had (the process is at its limit): the work still has to happen.
        continuation.resume(returning: body())
      }
    }
  }

  private final class Work: Sendable {
    let body: @Sendable () -> Void

    init(_ body: @escaping @Sendable () -> Void) {
      self.body = body
    }

    func start() -> Bool {
      var attributes = pthread_attr_t()
      pthread_attr_init(&attributes)
      defer { pthread_attr_destroy(&attributes) }
      pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
      // The work is a loop around a system call; the default 8 MiB would only be address space.
      pthread_attr_setstacksize(&attributes, 256 * 1024)
      let context = Unmanaged.passRetained(self).toOpaque()
      #if canImport(Darwin)
      var thread: pthread_t?
      #else
      var thread = pthread_t()
      #endif
      let result = pthread_create(
        &thread, &attributes,
        { context in
          Unmanaged<Work>.fromOpaque(context!).takeRetainedValue().body()
          return nil
        }, context)
      if result != 0 {
        Unmanaged<Work>.fromOpaque(context).release()
        return false
      }
      return true
    }
  }
}
