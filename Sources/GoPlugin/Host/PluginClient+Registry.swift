import Synchronization

/// Every ``PluginClient`` of the process whose ``PluginClient/run()`` is running: what
/// ``PluginClient/stopAll()`` stops. A client is in it from the start of `run` to its end, so
/// the registry never keeps a finished client alive.
enum LivePluginClients {
  private static let clients = Mutex<[ObjectIdentifier: PluginClient]>([:])

  static func insert(_ client: PluginClient) {
    _ = Self.clients.withLock { $0.updateValue(client, forKey: ObjectIdentifier(client)) }
  }

  static func remove(_ client: PluginClient) {
    _ = Self.clients.withLock { $0.removeValue(forKey: ObjectIdentifier(client)) }
  }

  static var all: [PluginClient] {
    Self.clients.withLock { Array($0.values) }
  }
}

extension PluginClient {
  /// Stops every plugin this process is running, as ``kill()`` stops one: each is asked to shut
  /// down, and killed if it does not exit in time. Returns once all of them have been reaped.
  ///
  /// This is go-plugin's `CleanupClients` for hosts that do not keep track of their clients:
  /// call it before the host exits, or let ``withPluginHostSignalHandling(stoppingPluginsOn:_:)``
  /// call it when the host is asked to stop. Every client whose ``run()`` is running at the time
  /// is stopped, whichever task runs it; a client started while this runs is not.
  public static func stopAll() async {
    let clients = LivePluginClients.all
    await withTaskGroup(of: Void.self) { group in
      for client in clients {
        group.addTask { await client.kill() }
      }
    }
  }
}
