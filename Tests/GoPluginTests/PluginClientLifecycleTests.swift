import KVInterface
import Synchronization
import Testing

@testable import GoPlugin

/// The client's one state machine (``PluginClient/Phase``) on its own: its transitions, and the
/// tasks each one wakes. No plugin runs here; the suites that launch plugins drive the same
/// transitions from a real run.
@Suite("Plugin client lifecycle", .timeLimit(.minutes(1)))
struct PluginClientLifecycleTests {
  static func client() -> PluginClient {
    PluginClient(
      configuration: PluginClientConfiguration(
        command: PluginCommand("/nonexistent/plugin"), handshake: .kv, plugins: ["kv": KVPlugin()]))
  }

  /// Returns once `count` tasks wait on `client`: a waiter registers under the lock, so its
  /// count is the event to await.
  static func waiters(_ count: Int, on client: PluginClient) async {
    while client.state.withLock({ $0.waiters.count }) < count { await Task.yield() }
  }

  @Test("a stop asked for wins over a detach, whichever came first")
  func stopWinsOverDetach() {
    let detached = Self.client()
    #expect(detached.transition(.run))
    #expect(detached.transition(.detach))
    #expect(detached.phase.detachRequested)
    #expect(!detached.phase.stopRequested)

    for order: [PluginClient.Transition] in [[.detach, .stop], [.stop, .detach]] {
      let client = Self.client()
      client.transition(.run)
      for transition in order { client.transition(transition) }
      #expect(!client.phase.detachRequested)
      #expect(client.phase.stopRequested)
    }
  }

  @Test("a client runs once, and there is nothing to let go of before or after its run")
  func runOnce() {
    let client = Self.client()
    #expect(!client.transition(.detach))
    #expect(client.transition(.run))
    #expect(!client.transition(.run))
    client.transition(.startFailed(PluginError(code: .launchFailed, message: "no such file")))
    #expect(client.transition(.detach))
    client.transition(.finish)
    #expect(!client.transition(.detach))
    #expect(client.phase.exit == PluginExit(status: nil, reason: .launchFailed))
  }

  @Test("the first exit recorded is kept, and the start failure reported after it is the start's outcome")
  func firstExitWins() async {
    let client = Self.client()
    client.transition(.run)
    let crashed = PluginExit(status: .exited(3), reason: .exitedUnexpectedly)
    #expect(client.transition(.exited(crashed)))
    #expect(!client.transition(.exited(PluginExit(status: nil, reason: .killed))))
    #expect(client.hasExited)
    client.transition(.startFailed(PluginError(code: .exitedBeforeHandshake, message: "no handshake")))
    #expect(await client.exit == crashed)
    await #expect { try await client.session() } throws: { ($0 as? PluginError)?.code == .exitedBeforeHandshake }
  }

  @Test("waiters wake at the transition that reaches what they wait for, and not before")
  func waitersWakeAtTheirMilestone() async {
    let client = Self.client()
    client.transition(.run)
    await withTaskGroup(of: Void.self) { group in
      group.addTask { #expect(await client.exit == PluginExit(status: nil, reason: .launchFailed)) }
      group.addTask { #expect(await client.wait(until: .finished)?.exit?.reason == .launchFailed) }
      group.addTask { #expect(await client.wait(until: .stopRequested) != nil) }
      await Self.waiters(3, on: client)
      client.transition(.detach)
      #expect(client.state.withLock { $0.waiters.count } == 3)
      client.transition(.stop)
      #expect(client.state.withLock { $0.waiters.count } == 2)
      client.transition(.startFailed(PluginError(code: .launchFailed, message: "no such file")))
      #expect(client.state.withLock { $0.waiters.count } == 1)
      client.transition(.finish)
      await group.waitForAll()
    }
    #expect(client.state.withLock { $0.waiters.isEmpty })
  }

  @Test("a cancelled waiter stops waiting and is forgotten; the exit it did not see reads as killed")
  func cancelledWaiter() async {
    let client = Self.client()
    client.transition(.run)
    await withTaskGroup(of: PluginExit.self) { group in
      group.addTask { await client.exit }
      await Self.waiters(1, on: client)
      group.cancelAll()
      #expect(await group.next() == PluginExit(status: nil, reason: .killed))
    }
    #expect(client.state.withLock { $0.waiters.isEmpty })
    #expect(!client.hasExited)
  }

  @Test("kill() before run() finishes the client as never started, waking whoever waits on it")
  func killBeforeRun() async {
    let client = Self.client()
    await withTaskGroup(of: Void.self) { group in
      group.addTask {
        await #expect { try await client.session() } throws: { ($0 as? PluginError)?.code == .notRunning }
      }
      await Self.waiters(1, on: client)
      await client.kill()
    }
    #expect(await client.exit == PluginExit(status: nil, reason: .notStarted))
    await #expect { try await client.run() } throws: {
      ($0 as? PluginError)?.message == "the plugin was stopped before it was started"
    }
  }
}
