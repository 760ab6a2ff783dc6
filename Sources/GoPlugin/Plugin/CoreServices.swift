import GRPCCore
import GoPluginProtos
import SwiftProtobuf

/// Ends when the plugin begins to stop or the RPC is cancelled, whichever is first.
///
/// gRPC does not cancel a handler's task when its client goes away or the server shuts down;
/// a long-lived handler that did not watch both would hold graceful shutdown open for ever.
func waitUntilStoppingOrCancelled(_ stopping: OneShot<Void>, context: ServerContext) async {
  let cancelled = OneShot<Void>()
  await withRPCCancellationHandler {
    await withTaskGroup(of: Void.self) { group in
      group.addTask { _ = await stopping.wait() }
      group.addTask { _ = await cancelled.wait() }
      await group.next()
      group.cancelAll()
    }
  } onCancelRPC: {
    cancelled.fulfil(())
  }
}

/// `grpc.health.v1.Health`: answers from the plugin's ``PluginHealth``, which its own code sets;
/// the plugin as a whole (`"plugin"`, and the server as `""`) is SERVING unless the plugin said
/// otherwise, and everything is NOT_SERVING once the plugin begins to stop. Hosts use `Check`;
/// `Watch` and `List` are there because grpc-go's stock health server, which Go plugins use,
/// has them.
struct HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
  let stopping: OneShot<Void>
  let health: PluginHealth

  func check(
    request: Grpc_Health_V1_HealthCheckRequest,
    context: ServerContext
  ) async throws -> Grpc_Health_V1_HealthCheckResponse {
    guard let status = self.status(of: request.service) else {
      throw RPCError(code: .notFound, message: "unknown service \(request.service)")
    }
    return .with { $0.status = status }
  }

  func list(
    request: Grpc_Health_V1_HealthListRequest,
    context: ServerContext
  ) async throws -> Grpc_Health_V1_HealthListResponse {
    .with { response in
      for name in self.health.knownServices {
        if let status = self.status(of: name) { response.statuses[name] = .with { $0.status = status } }
      }
    }
  }

  /// Sends the status now and again whenever it changes, until the plugin stops or the host
  /// goes away.
  func watch(
    request: Grpc_Health_V1_HealthCheckRequest,
    response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
    context: ServerContext
  ) async throws {
    let changes = self.health.changes()
    let first = self.status(of: request.service) ?? .serviceUnknown
    try await response.write(.with { $0.status = first })
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        var last = first
        for await _ in changes {
          let status = self.status(of: request.service) ?? .serviceUnknown
          guard status != last else { continue }
          last = status
          try await response.write(.with { $0.status = status })
        }
      }
      group.addTask { await waitUntilStoppingOrCancelled(self.stopping, context: context) }
      _ = try await group.next()
      group.cancelAll()
    }
    if self.health.status(ofService: request.service) != nil {
      try? await response.write(.with { $0.status = .notServing })
    }
  }

  private func status(of service: String) -> Grpc_Health_V1_HealthCheckResponse.ServingStatus? {
    guard let status = self.health.status(ofService: service) else { return nil }
    return self.stopping.current == nil && status == .serving ? .serving : .notServing
  }
}

/// `plugin.GRPCController`: `Shutdown` asks the plugin to stop. The answer is sent before the
/// server stops, so a Swift plugin's host sees OK (a Go plugin's sees UNAVAILABLE).
struct ControllerService: Plugin_GRPCController.SimpleServiceProtocol {
  let shutdownRequested: OneShot<Void>

  func shutdown(request: Plugin_Empty, context: ServerContext) async throws -> Plugin_Empty {
    self.shutdownRequested.fulfil(())
    return Plugin_Empty()
  }
}

/// `plugin.GRPCBroker`: the host's stream, held for the plugin's lifetime, over which both
/// sides announce brokered connections.
struct BrokerService: Plugin_GRPCBroker.SimpleServiceProtocol {
  let stopping: OneShot<Void>
  let broker: GRPCBroker

  func startStream(
    request: RPCAsyncSequence<Plugin_ConnInfo, any Error>,
    response: RPCWriter<Plugin_ConnInfo>,
    context: ServerContext
  ) async throws {
    guard self.broker.attachStream() else {
      throw RPCError(code: .failedPrecondition, message: "the broker stream is already open")
    }
    await withTaskGroup(of: Void.self) { group in
      group.addTask {
        // The host closing its side ends the stream; errors mean the host went away.
        do {
          for try await info in request { self.broker.received(info) }
        } catch {}
      }
      group.addTask {
        for await info in self.broker.outbound {
          do { try await response.write(info) } catch { return }
        }
      }
      group.addTask { await waitUntilStoppingOrCancelled(self.stopping, context: context) }
      await group.next()
      group.cancelAll()
    }
  }
}

/// `plugin.GRPCStdio`: a plugin that does not capture its own stdout and stderr has nothing to
/// forward, so the stream stays open and empty until the plugin stops, as go-plugin documents
/// for plugins in other languages.
struct StdioService: Plugin_GRPCStdio.SimpleServiceProtocol {
  let stopping: OneShot<Void>
  /// Holds `nil` when the process's streams are not captured (a plugin served in-process);
  /// then the stream stays open and empty, as the Python example's does.
  let capture: OneShot<StdioCapture?>

  func streamStdio(
    request: Google_Protobuf_Empty,
    response: RPCWriter<Plugin_StdioData>,
    context: ServerContext
  ) async throws {
    guard let capture = await self.capture.wait() ?? nil, capture.attachConsumer() else {
      await waitUntilStoppingOrCancelled(self.stopping, context: context)
      return
    }
    // Ends when the capture has been stopped and both pipes are drained, or on cancellation.
    for await chunk in capture.chunks {
      try await response.write(chunk)
    }
  }
}
