import Foundation
import GRPCCore
import GoPluginTesting
import KVInterface
import Testing

@testable import GoPlugin

@Suite("Broker", .timeLimit(.minutes(2)))
struct BrokerTests {
  static func store(_ value: String) async throws -> MemoryKV {
    let store = MemoryKV()
    try await store.put("brokered", value: Array(value.utf8))
    return store
  }

  static func configuration(_ tls: Bool, multiplexed: Bool = false) throws -> PluginClientConfiguration {
    var configuration = try fixture()
    if tls { configuration.tls = .autoMTLS }
    configuration.multiplexBroker = multiplexed
    return configuration
  }

  @Test(
    "the host serves on several IDs at once and the plugin calls back into each",
    arguments: [false, true], [false, true]
  )
  func hostServesPluginDials(autoMTLS: Bool, multiplexed: Bool) async throws {
    try await withPluginClient(try Self.configuration(autoMTLS, multiplexed: multiplexed)) { client in
      let broker = try await client.broker
      #expect(broker.isMultiplexed == multiplexed)
      #expect(try await client.info.multiplexed == multiplexed)
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      let ids = (0..<4).map { _ in broker.nextID() }
      #expect(ids == [1, 2, 3, 4])
      try await withThrowingTaskGroup(of: Void.self) { servers in
        for id in ids {
          let store = try await Self.store("host \(id)")
          servers.addTask { try await broker.acceptAndServe(id: id, services: [KVService(store: store)]) }
        }
        try await withThrowingTaskGroup(of: (UInt32, String).self) { calls in
          for id in ids {
            calls.addTask { (id, String(decoding: try await kv.get("broker-get:\(id):brokered"), as: UTF8.self)) }
          }
          for try await (id, value) in calls {
            #expect(value == "host \(id)")
          }
        }
        servers.cancelAll()
      }
    }
  }

  @Test("the plugin serves on several IDs at once and the host dials each", arguments: [false, true], [false, true])
  func pluginServesHostDials(autoMTLS: Bool, multiplexed: Bool) async throws {
    let client = PluginClient(configuration: try Self.configuration(autoMTLS, multiplexed: multiplexed))
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      let ids: [UInt32] = [41, 42, 43]
      // The plugin serves for as long as it runs; these calls return when it stops.
      for id in ids {
        group.addTask { _ = try? await kv.get("broker-serve:\(id):from the plugin \(id)") }
      }
      let broker = try await client.broker
      try await withThrowingTaskGroup(of: (UInt32, String).self) { dials in
        for id in ids {
          dials.addTask {
            // A loaded machine may take a while to start serving; the timeout has its own test.
            let value = try await broker.withClient(for: id, timeout: .seconds(30)) {
              try await KVClient(grpcClient: $0).get("brokered")
            }
            return (id, String(decoding: value, as: UTF8.self))
          }
        }
        for try await (id, value) in dials {
          #expect(value == "from the plugin \(id)")
        }
      }
      await client.kill()
    }
    #expect(await client.exit.reason == .stopped)
  }

  @Test("a dial to an ID nobody serves times out with a typed error, on both sides")
  func dialTimesOut() async throws {
    try await withPluginClient(try fixture()) { client in
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      #expect(String(decoding: try await kv.get("broker-get-timeout:99"), as: UTF8.self) == "brokerTimeout")
      await #expect {
        try await client.broker.withClient(for: 77, timeout: .milliseconds(300)) { _ in 0 }
      } throws: { ($0 as? PluginError)?.code == .brokerTimeout }
    }
  }

  @Test("multiplexed, a dial to an ID nobody serves times out with a typed error, on both sides")
  func multiplexedDialTimesOut() async throws {
    try await withPluginClient(try Self.configuration(false, multiplexed: true)) { client in
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      #expect(String(decoding: try await kv.get("broker-get-timeout:99"), as: UTF8.self) == "knockFailed")
      let error = await #expect(throws: PluginError.self) {
        try await client.broker.withClient(for: 77, timeout: .milliseconds(300)) { _ in 0 }
      }
      #expect(error?.code == .knockFailed)
      #expect(
        error?.message
          == "failed to knock before dialling client: timeout waiting for multiplexing knock handshake on id 77")
      // The session survives a knock nobody answered.
      try await kv.put("still", value: [1])
      #expect(try await kv.get("still") == [1])
    }
  }

  @Test("multiplexed, a knock that arrives before its ID is served waits for it")
  func multiplexedEarlyKnock() async throws {
    try await withPluginClient(try Self.configuration(false, multiplexed: true)) { client in
      let broker = try await client.broker
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      let id = broker.nextID()
      try await withThrowingTaskGroup(of: Void.self) { group in
        // The plugin knocks first; the host starts serving afterwards.
        group.addTask {
          let value = try await kv.get("broker-get:\(id):brokered")
          #expect(String(decoding: value, as: UTF8.self) == "late")
        }
        try await Task.sleep(for: .milliseconds(300))
        let store = try await Self.store("late")
        group.addTask { try await broker.acceptAndServe(id: id, services: [KVService(store: store)]) }
        try await group.next()
        group.cancelAll()
      }
    }
  }

  @Test("multiplexed, a stream of brokered connections in both directions, one after another")
  func multiplexedRepeatedly() async throws {
    try await withPluginClient(try Self.configuration(false, multiplexed: true)) { client in
      let broker = try await client.broker
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      for round in 0..<10 {
        let id = broker.nextID()
        let store = try await Self.store("round \(round)")
        try await withThrowingTaskGroup(of: Void.self) { servers in
          servers.addTask { try await broker.acceptAndServe(id: id, services: [KVService(store: store)]) }
          let value = try await kv.get("broker-get:\(id):brokered")
          #expect(String(decoding: value, as: UTF8.self) == "round \(round)")
          servers.cancelAll()
        }
      }
    }
  }

  @Test("multiplexed, a session with brokered connections both ways has one socket file and one connection")
  func multiplexedSocketsOnly() async throws {
    let client = PluginClient(configuration: try Self.configuration(false, multiplexed: true))
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      let info = try await client.info
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      let broker = try await client.broker
      // The plugin serves 61 for as long as it runs; the host serves 1; both are dialled.
      group.addTask { _ = try? await kv.get("broker-serve:61:from the plugin") }
      let id = broker.nextID()
      let store = try await Self.store("from the host")
      group.addTask { try await broker.acceptAndServe(id: id, services: [KVService(store: store)]) }
      #expect(try await kv.get("broker-get:\(id):brokered") == Array("from the host".utf8))
      try await broker.withClient(for: 61, timeout: .seconds(30)) { grpc throws in
        let value = try await KVClient(grpcClient: grpc).get("brokered")
        #expect(value == Array("from the plugin".utf8))
        // While the brokered connection is up: the host's directory for the plugin holds the
        // plugin's socket and nothing else (no private sockets on either side), and the plugin
        // process holds two sockets, that listener and the host's one connection.
        let directory = (info.address as NSString).deletingLastPathComponent
        #expect(Self.socketFiles(under: directory) == [info.address])
        #expect(Self.socketDescriptors(of: info.pid) == 2)
      }
      await client.kill()
      group.cancelAll()
    }
  }

  /// Every unix socket file in `directory` and below.
  static func socketFiles(under directory: String) -> [String] {
    let files = FileManager.default.enumerator(atPath: directory)?.allObjects as? [String] ?? []
    return files.map { (directory as NSString).appendingPathComponent($0) }.filter { path in
      (try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType) == .typeSocket
    }.sorted()
  }

  /// How many of a process's descriptors are sockets.
  static func socketDescriptors(of pid: Int32) -> Int {
    let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
    return fds.filter { fd in
      (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"))?.hasPrefix("socket:")
        == true
    }.count
  }

  @Test("brokered servers end when the plugin goes away", arguments: [false, true])
  func teardown(multiplexed: Bool) async throws {
    let client = PluginClient(configuration: try Self.configuration(false, multiplexed: multiplexed))
    var socketDirectory = ""
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await client.run() }
      socketDirectory = (try await client.info.address as NSString).deletingLastPathComponent
      let broker = try await client.broker
      let id = broker.nextID()
      let store = try await Self.store("x")
      let kv = try await client.dispense("kv", as: KVPlugin.self)
      try await withThrowingTaskGroup(of: Void.self) { serving in
        // Not cancelled here: killing the plugin must be what ends it.
        serving.addTask { try await broker.acceptAndServe(id: id, services: [KVService(store: store)]) }
        #expect(try await kv.get("broker-get:\(id):brokered") == Array("x".utf8))
        await client.kill()
        try await serving.waitForAll()
      }
      await #expect(throws: PluginError.self) {
        try await broker.acceptAndServe(id: broker.nextID(), services: [KVService(store: store)])
      }
    }
    #expect(!FileManager.default.fileExists(atPath: socketDirectory))
  }
}
