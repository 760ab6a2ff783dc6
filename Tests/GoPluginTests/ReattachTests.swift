import Foundation
import GoPluginTesting
import KVInterface
import Testing

@testable import GoPlugin

#if canImport(Glibc)
import Glibc
#endif

/// A configuration that launches the Swift KV plugin.
private func kvPlugin(keepsPluginRunning: Bool = false) throws -> PluginClientConfiguration {
  var configuration = PluginClientConfiguration(
    command: try BuildProducts.command("kv-plugin"), handshake: .kv, plugins: ["kv": KVPlugin()])
  configuration.standardInput = .none
  configuration.keepsPluginRunning = keepsPluginRunning
  return configuration
}

private func reattaching(_ reattach: PluginReattachConfiguration) -> PluginClientConfiguration {
  PluginClientConfiguration(reattachingTo: reattach, handshake: .kv, plugins: ["kv": KVPlugin()])
}

/// Runs the `kv` example host, a second host process, with `arguments`.
private func kvHost(_ arguments: String...) async throws -> ExternalProgram.Result {
  try await ExternalProgram.run(try BuildProducts.path("kv"), arguments: arguments)
}

/// Reattaches to `reattach`, expecting it to fail, and returns the error.
private func failedReattach(_ configuration: PluginClientConfiguration) async -> PluginError? {
  let client = PluginClient(configuration: configuration)
  do {
    try await client.run()
  } catch {
    return error
  }
  Issue.record("the reattach succeeded")
  return nil
}

@Suite("Reattach, detach and debug mode", .timeLimit(.minutes(2)))
struct ReattachTests {
  // MARK: - The JSON

  static let terraformSample =
    #"{"Protocol":"grpc","ProtocolVersion":5,"Pid":1234,"Test":true,"Addr":{"Network":"unix","String":"/tmp/plugin123"}}"#

  @Test("the JSON is Terraform's TF_REATTACH_PROVIDERS entry, byte for byte, both ways")
  func terraformJSON() throws {
    let reattach = try PluginReattachConfiguration(json: Self.terraformSample)
    #expect(
      reattach
        == PluginReattachConfiguration(
          protocol: .grpc, protocolVersion: 5, pid: 1234, test: true, network: .unix, address: "/tmp/plugin123"))
    #expect(reattach.json == Self.terraformSample)
    // Codable, through Foundation's coders, as a host would store it.
    let decoded = try JSONDecoder().decode(
      PluginReattachConfiguration.self, from: try JSONEncoder().encode(reattach))
    #expect(decoded == reattach)
  }

  @Test(
    "what a Go host's encoding/json accepts is read too",
    arguments: [
      // Keys in any case, as Go matches them.
      (
        #"{"protocol":"grpc","protocolversion":1,"pid":7,"test":false,"addr":{"network":"tcp","string":"127.0.0.1:1234"}}"#,
        PluginReattachConfiguration(protocolVersion: 1, pid: 7, network: .tcp, address: "127.0.0.1:1234")
      ),
      // go-plugin 1.0.1's own ReattachConfig, json.Marshal'ed with a *net.UnixAddr.
      (
        #"{"Protocol":"grpc","Addr":{"Name":"/tmp/p","Net":"unix"},"Pid":7}"#,
        PluginReattachConfiguration(protocolVersion: nil, pid: 7, network: .unix, address: "/tmp/p")
      ),
      // ... and with a *net.TCPAddr.
      (
        #"{"Protocol":"grpc","Addr":{"IP":"::1","Port":1234,"Zone":""},"Pid":7}"#,
        PluginReattachConfiguration(protocolVersion: nil, pid: 7, network: .tcp, address: "[::1]:1234")
      ),
      // No protocol is go-plugin's net/rpc.
      (
        #"{"Pid":7,"Addr":{"Network":"unix","String":"/tmp/p"}}"#,
        PluginReattachConfiguration(protocol: .netRPC, protocolVersion: nil, pid: 7, network: .unix, address: "/tmp/p")
      ),
    ])
  func goForms(json: String, expected: PluginReattachConfiguration) throws {
    #expect(try PluginReattachConfiguration(json: json) == expected)
  }

  @Test(
    "a configuration without a pid or an address is a typed error",
    arguments: [#"{"Protocol":"grpc","Addr":{"Network":"unix","String":"/tmp/p"}}"#, #"{"Pid":7}"#, "not json"])
  func invalidJSON(json: String) {
    #expect { try PluginReattachConfiguration(json: json) } throws: { error in
      (error as? PluginError)?.code == .invalidConfiguration
    }
  }

  // MARK: - Host upgrade: launch, detach, reattach from another process, stop

  @Test("a plugin kept running outlives its client: another host reattaches, finds its state, and stops it")
  func detachAndReattach() async throws {
    let first = PluginClient(configuration: try kvPlugin(keepsPluginRunning: true))
    var pid: Int32 = 0
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await first.run() }
      let kv = try await first.dispense("kv", as: KVPlugin.self)
      try await kv.put("upgrade", value: Array("kept in memory".utf8))
      let reattach = try await first.reattachConfiguration
      pid = try await first.info.pid
      #expect(reattach.pid == pid)
      #expect(reattach.protocolVersion == 1 && reattach.network == .unix && !reattach.test)

      // A second host process finds what the first stored, in the same process's memory.
      let get = try await kvHost("--reattach", reattach.json, "get", "upgrade")
      #expect(get.status == 0, "\(get.errorText)")
      #expect(get.outputText == "kept in memory\n")

      await first.detach()
      #expect(await first.exit == PluginExit(status: nil, reason: .detached))
      // A detached client stops nothing.
      await first.kill()
      #expect(isAlive(pid))
      let put = try await kvHost("--reattach", reattach.json, "put", "after", "detach")
      #expect(put.status == 0, "\(put.errorText)")

      // Stopped by a client that did not launch it: Shutdown, and the process is gone.
      let last = PluginClient(configuration: reattaching(reattach))
      group.addTask { try await last.run() }
      let lastKV = try await last.dispense("kv", as: KVPlugin.self)
      #expect(try await lastKV.get("after") == Array("detach".utf8))
      #expect(try await last.info.pid == pid)
      await last.kill()
      #expect(await last.exit == PluginExit(status: nil, reason: .stopped))
      // The first client still reaps its child once it has gone.
      try await group.waitForAll()
    }
    #expect(await first.exit.reason == .detached)
    #expect(!isAlive(pid))
  }

  // MARK: - Failed reattaches

  @Test("a reattach to a process that has exited is a typed error")
  func exitedProcess() async throws {
    let client = PluginClient(configuration: try kvPlugin())
    var reattach: PluginReattachConfiguration?
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      reattach = try await client.reattachConfiguration
      await client.kill()
    }
    let gone = try #require(reattach)
    let error = await failedReattach(reattaching(gone))
    #expect(error?.code == .processNotFound)
    #expect(error?.pid == gone.pid)
    #expect(error?.message.contains("Reattachment process not found") == true)

    // A pid no process can have (above the kernel's limit).
    var nobody = gone
    nobody.pid = 1 << 30
    let none = await failedReattach(reattaching(nobody))
    #expect(none?.code == .processNotFound)
    #expect(none?.message.contains("no process \(1 << 30)") == true)
  }

  @Test("a reattach to a socket that is gone is a typed error, and the process is left alone")
  func missingSocket() async throws {
    let client = PluginClient(configuration: try kvPlugin())
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      var reattach = try await client.reattachConfiguration
      reattach.address += "-gone"
      let error = await failedReattach(reattaching(reattach))
      #expect(error?.code == .processNotFound)
      #expect(error?.pid == reattach.pid)
      #expect(error?.message.contains("no socket at \(reattach.address)") == true)
      // go-plugin 1.0.1 killed the pid here; the plugin still serves its own host.
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      try await kv.put("still", value: [1])
      #expect(try await kv.get("still") == [1])
      await client.kill()
    }
    #expect(await client.exit.reason == .stopped)
  }

  @Test("AutoMTLS, a checksum or multiplexing cannot be reattached")
  func unsupportedOptions() async throws {
    let reattach = PluginReattachConfiguration(protocolVersion: 1, pid: getpid(), network: .unix, address: "/tmp/x")
    var autoMTLS = reattaching(reattach)
    autoMTLS.tls = .autoMTLS
    let error = await failedReattach(autoMTLS)
    #expect(error?.code == .invalidConfiguration)
    #expect(error?.pid == getpid())
    #expect(error?.message.contains("AutoMTLS cannot be reattached") == true)

    var multiplexed = reattaching(reattach)
    multiplexed.multiplexBroker = true
    #expect(await failedReattach(multiplexed)?.code == .invalidConfiguration)

    var netRPC = reattach
    netRPC.protocol = .netRPC
    #expect(await failedReattach(reattaching(netRPC))?.code == .unsupportedProtocol)
  }

  // MARK: - Watching a process that is not our child

  @Test("a reattached client notices the plugin's exit through its pidfd")
  func noticesExit() async throws {
    let run = try await ExternalProgram.withRunning(try BuildProducts.path("kv-plugin"), arguments: ["--debug"]) {
      program in
      let reattach = try PluginReattachConfiguration(json: program.firstLine)
      #expect(reattach.pid == program.pid)
      #expect(reattach.test)
      let client = PluginClient(configuration: reattaching(reattach))
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await client.run() }
        let kv = try await client.dispense("kv", as: KVPlugin.self)
        try await kv.put("k", value: [1])
        kill(program.pid, SIGKILL)
        // Nothing but the pidfd tells the client: it sent nothing and asked nothing.
        #expect(await client.exit == PluginExit(status: nil, reason: .exitedUnexpectedly))
        try await group.waitForAll()
      }
    }
    #expect(run.status == 128 + SIGKILL)
  }

  // MARK: - Debug mode

  @Test("kv-plugin --debug: driven by kv --reattach, left running by put and get, stopped by stop")
  func debugMode() async throws {
    let run = try await ExternalProgram.withRunning(try BuildProducts.path("kv-plugin"), arguments: ["--debug"]) {
      program in
      let reattach = try PluginReattachConfiguration(json: program.firstLine)
      #expect(reattach.protocol == .grpc && reattach.protocolVersion == 1 && reattach.pid == program.pid)
      let put = try await kvHost("--reattach", program.firstLine, "put", "debug", "mode")
      #expect(put.status == 0, "\(put.errorText)")
      let get = try await ExternalProgram.run(
        try BuildProducts.path("kv"), arguments: ["get", "debug"],
        environment: [PluginReattachConfiguration.environmentKey: program.firstLine])
      #expect(get.outputText == "mode\n", "\(get.errorText)")
      let stop = try await kvHost("--reattach", program.firstLine, "stop")
      #expect(stop.status == 0, "\(stop.errorText)")
      #expect(stop.outputText == "stopped: ended (stopped)\n")
      return reattach.address
    }
    // Shut down by the host: it returned from serveDebug and exited 0, its socket removed.
    #expect(run.status == 0)
    #expect(!FileManager.default.fileExists(atPath: run.value))
    #expect(run.errorText.contains("export PLUGIN_REATTACH='{\"Protocol\":\"grpc\""))
  }

  @Test("a plugin in debug mode stops on SIGTERM and removes its socket")
  func debugModeSignal() async throws {
    let run = try await ExternalProgram.withRunning(try BuildProducts.path("kv-plugin"), arguments: ["--debug"]) {
      program in
      try PluginReattachConfiguration(json: program.firstLine).address
      // withRunning sends SIGTERM when this returns.
    }
    #expect(run.status == 0, "\(run.errorText)")
    #expect(!FileManager.default.fileExists(atPath: run.value))
  }
}
