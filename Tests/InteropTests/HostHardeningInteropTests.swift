import Foundation
import GoPluginTesting
import KVInterface
import Testing

@testable import GoPlugin

#if canImport(Glibc)
import Glibc
#endif

@Suite("The host's process handling against go-plugin 1.0.1", .timeLimit(.minutes(5)))
struct HostHardeningInteropTests {
  func configuration(_ path: String) -> PluginClientConfiguration {
    var configuration = PluginClientConfiguration(
      command: PluginCommand(path), handshake: .kv, plugins: ["kv": KVPlugin()])
    configuration.standardInput = .none
    return configuration
  }

  @Test("a go-plugin 1.0.1 plugin, which ignores PLUGIN_UNIX_SOCKET_DIR, makes its socket in the private directory")
  func oldPluginSocketInPrivateDirectory() async throws {
    var socket = ""
    try await withPluginClient(self.configuration(try await Peers.path("go-kv-plugin"))) { client in
      let info = try await client.info
      socket = info.address
      #expect(info.network == .unix)
      try await client.dispense("kv", as: KVPlugin.self).put("k", value: [1])
    }
    let directory = (socket as NSString).deletingLastPathComponent
    #expect((directory as NSString).lastPathComponent.hasPrefix("plugin-dir-"), "\(socket)")
    #expect(!FileManager.default.fileExists(atPath: directory))
  }

  @Test("a Go plugin given the wrong cookie: its explanation is in the start error")
  func wrongCookie() async throws {
    var configuration = self.configuration(try await Peers.path("go-kv-plugin"))
    configuration.handshake = HandshakeConfiguration(
      protocolVersion: 1,
      magicCookieKey: configuration.handshake.magicCookieKey,
      magicCookieValue: "not-the-cookie"
    )
    let client = PluginClient(configuration: configuration)
    let error = await #expect(throws: PluginError.self) { try await client.run() }
    #expect(error?.code == .exitedBeforeHandshake)
    #expect(
      error?.description.contains("This binary is a plugin. These are not meant to be executed directly.") == true)
    #expect(await client.exit.status == .exited(1))
  }

  @Test("a Go plugin killed with SIGKILL mid-call exited unexpectedly")
  func killedGoPlugin() async throws {
    for _ in 0..<10 {
      let capture = LogCapture()
      let client = PluginClient(
        configuration: self.configuration(try await Peers.path("go-kv-plugin")), logger: capture.logger)
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await client.run() }
        let pid = try await client.info.pid
        let kv = try await client.dispense("kv", as: KVPlugin.self)
        try await kv.put("k", value: [1])
        await withTaskGroup(of: Void.self) { calls in
          calls.addTask {
            do {
              while true { _ = try await kv.get("k") }
            } catch {}
          }
          calls.addTask { _ = await client.exit }
          #expect(kill(pid, SIGKILL) == 0)
          await calls.next()
          await client.kill()
          calls.cancelAll()
        }
        try await group.waitForAll()
      }
      #expect(await client.exit == PluginExit(status: .signalled(SIGKILL), reason: .exitedUnexpectedly))
      #expect(!capture.records.contains { $0.message == "error asking the plugin to shut down" })
    }
  }
}
