import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Termination signals as an async value, so that the harness can cancel its work (and with it
/// stop the plugin it runs) when it is interrupted, instead of dying with a plugin left behind.
enum Signals {
  /// Waits for the first of `signals` and returns it; `nil` if the waiting task is cancelled.
  /// The signals' default actions are off while it waits.
  static func first(of signals: [Int32]) async -> Int32? {
    let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
    let sources = signals.map { number in
      signal(number, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
      source.setEventHandler { continuation.yield(number) }
      source.resume()
      return source
    }
    defer {
      for source in sources { source.cancel() }
    }
    var iterator = stream.makeAsyncIterator()
    return await withTaskCancellationHandler {
      await iterator.next()
    } onCancel: {
      continuation.finish()
    }
  }
}
