import Foundation
import GoPluginSpawn
import GoPluginTesting
import KVInterface
import Synchronization
import Testing

@testable import GoPlugin

#if canImport(Glibc)
import Glibc
#endif

@Suite("No orphans", .timeLimit(.minutes(2)))
struct OrphanTests {
  func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)").path
  }

  func grandchildPid(from file: String) throws -> Int32 {
    try #require(Int32(String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
  }

  @Test("a plugin leads a process group of its own, so a terminal's Ctrl-C does not reach it")
  func processGroup() async throws {
    try await withPluginClient(try fixture()) { client in
      let pid = try await client.info.pid
      #expect(getpgid(pid) == pid)
      #expect(getpgid(pid) != getpgrp())
    }
  }

  @Test("what a plugin started goes with it when the host stops it")
  func grandchildAfterStop() async throws {
    let pidFile = self.temporaryPath("grandchild")
    defer { try? FileManager.default.removeItem(atPath: pidFile) }
    let watch = try await withPluginClient(try fixture("grandchild", pidFile)) { client in
      let grandchild = try self.grandchildPid(from: pidFile)
      #expect(getpgid(grandchild) == (try await client.info.pid))
      let watch = ProcessWatch([grandchild])
      #expect(await watch.running(after: .zero) == [grandchild])
      return watch
    }
    #expect(await watch.running(after: .seconds(10)) == [])
  }

  @Test("what a plugin started goes with it when the plugin crashes")
  func grandchildAfterCrash() async throws {
    let pidFile = self.temporaryPath("grandchild")
    defer { try? FileManager.default.removeItem(atPath: pidFile) }
    let client = PluginClient(configuration: try fixture("grandchild", pidFile))
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      let grandchild = try self.grandchildPid(from: pidFile)
      let watch = ProcessWatch([grandchild])
      #expect(await watch.running(after: .zero) == [grandchild])
      _ = try? await kv.get("crash")
      #expect(await client.exit == PluginExit(status: .exited(3), reason: .exitedUnexpectedly))
      #expect(await watch.running(after: .seconds(10)) == [])
      try await group.waitForAll()
    }
  }

  @Test("a plugin keeps running after the thread its launch started on has ended")
  func launchingThreadEnds() async throws {
    // Linux's parent-death signal follows the thread that forked the child. A launch forked
    // from the thread that called run() dies when that thread does, and Swift concurrency's
    // threads end when they have been idle for a while: this ends it on purpose.
    let executor = RetiringThreadExecutor()
    let client = PluginClient(configuration: try fixture())
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask(executorPreference: executor) { try await client.run() }
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      try await kv.put("before", value: [1])
      let pid = try await client.info.pid
      let ended = try #require(await executor.endThread())
      #expect(ended.ranJobs)
      #expect(await Self.threadGone(ended.threadID))
      // A plugin killed by the signal would fail this call, and its exit would be recorded.
      #expect(try await kv.get("before") == [1])
      #expect(!client.hasExited)
      #expect(isAlive(pid))
      await client.kill()
      try await group.waitForAll()
    }
    #expect(await client.exit == PluginExit(status: .exited(0), reason: .stopped))
    executor.shutDown()
  }

  /// Whether the thread has left the kernel's task list: pthread_join returns a little before
  /// a thread's children are sent their parent-death signal, and there is no event to wait for
  /// on the kernels this runs on.
  static func threadGone(_ id: Int32) async -> Bool {
    for _ in 0..<500 {
      if access("/proc/self/task/\(id)", F_OK) != 0 { return true }
      try? await Task.sleep(for: .milliseconds(10))
    }
    return false
  }

  @Test("stopAll stops every running client of the process gracefully, and returns once they are reaped")
  func stopAll() async throws {
    // In a host process of its own: in this one it would stop the plugins of every other test.
    let fixture = try BuildProducts.path("fixture-plugin")
    let run = try await ExternalProgram.run(
      try BuildProducts.path("orphan-host"), arguments: ["--stop-all", "\(fixture) serve", "\(fixture) serve"])
    #expect(run.status == 0, "\(run.errorText)")
    let lines = run.outputText.split(separator: "\n").map(String.init)
    #expect(lines.filter { $0.hasPrefix("pid ") }.count == 2)
    #expect(lines.contains("stopped all, still running: 0"))
    #expect(lines.contains("exit 0 exited with status 0 (stopped)"))
    #expect(lines.contains("exit 1 exited with status 0 (stopped)"))
  }

  @Test("once the host's work has returned, SIGTERM and SIGINT do what they did before")
  func signalsRestored() async throws {
    // libdispatch's handler, left behind by the signal sequence, would swallow them.
    let run = try await ExternalProgram.run(try BuildProducts.path("orphan-host"), arguments: ["--signal-self-after"])
    #expect(run.status == 128 + SIGTERM, "\(run.outputText)")
    #expect(!run.outputText.contains("still running"))
  }
}

/// A task executor with one thread at a time, whose thread a test can end while tasks that
/// prefer it are still running: their later jobs then run on a new thread.
final class RetiringThreadExecutor: TaskExecutor, @unchecked Sendable {
  private struct State {
    var jobs: [UnownedJob] = []
    /// Threads with a lower number end as soon as they are idle.
    var generation = 0
    var shutDown = false
    var current: (thread: pthread_t, id: Int32?, ranJobs: Bool)?
  }

  private let condition = NSCondition()
  // Guarded by `condition`.
  private var state = State()

  init() {
    self.condition.lock()
    self.startThread()
    self.condition.unlock()
  }

  func enqueue(_ job: consuming ExecutorJob) {
    let job = UnownedJob(job)
    self.condition.lock()
    self.state.jobs.append(job)
    self.condition.broadcast()
    self.condition.unlock()
  }

  /// Ends the current thread and starts another for later jobs; returns once the old thread has
  /// been joined, with its kernel thread ID and whether it ran any job.
  func endThread() async -> (threadID: Int32, ranJobs: Bool)? {
    guard let old = self.replaceThread() else { return nil }
    let thread = UncheckedThread(thread: old.thread)
    await DedicatedThread.run { _ = pthread_join(thread.thread, nil) }
    return old.id.map { ($0, old.ranJobs) }
  }

  private func replaceThread() -> (thread: pthread_t, id: Int32?, ranJobs: Bool)? {
    self.condition.lock()
    defer { self.condition.unlock() }
    guard let old = self.state.current else { return nil }
    self.state.generation += 1
    self.startThread()
    self.condition.broadcast()
    return old
  }

  /// Ends the current thread for good.
  func shutDown() {
    self.condition.lock()
    self.state.shutDown = true
    self.condition.broadcast()
    self.condition.unlock()
  }

  /// With `condition` held.
  private func startThread() {
    let context = Unmanaged.passRetained(Box(executor: self, generation: self.state.generation)).toOpaque()
    var thread = pthread_t()
    let created = pthread_create(
      &thread, nil,
      { context in
        let box = Unmanaged<Box>.fromOpaque(context!).takeRetainedValue()
        box.executor.serve(generation: box.generation)
        return nil
      }, context)
    precondition(created == 0, "pthread_create failed")
    self.state.current = (thread, nil, false)
  }

  private func serve(generation: Int) {
    self.condition.lock()
    if self.state.generation == generation { self.state.current?.id = Self.kernelThreadID() }
    while true {
      while self.state.jobs.isEmpty && self.state.generation == generation && !self.state.shutDown {
        self.condition.wait()
      }
      guard self.state.generation == generation, !self.state.shutDown else { break }
      let job = self.state.jobs.removeFirst()
      self.state.current?.ranJobs = true
      self.condition.unlock()
      job.runSynchronously(on: self.asUnownedTaskExecutor())
      self.condition.lock()
    }
    self.condition.unlock()
  }

  /// The calling thread's ID in /proc/self/task ("/proc/thread-self" links to "<pid>/task/<tid>").
  private static func kernelThreadID() -> Int32? {
    let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self")
    return link.flatMap { $0.split(separator: "/").last }.flatMap { Int32($0) }
  }

  private final class Box {
    let executor: RetiringThreadExecutor
    let generation: Int
    init(executor: RetiringThreadExecutor, generation: Int) {
      self.executor = executor
      self.generation = generation
    }
  }

  private struct UncheckedThread: @unchecked Sendable {
    let thread: pthread_t
  }
}
