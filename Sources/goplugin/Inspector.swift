import GRPCCore
import GoPlugin
import GoPluginProtos
import Logging
import SwiftProtobuf

/// Launches one plugin, asks it what it serves, and stops it, timing each step.
struct Inspector {
  var configuration: PluginClientConfiguration
  /// The deadline of each call to the plugin.
  var callTimeout: Duration
  var recorder: PluginLogRecorder
  var logger: Logger

  /// The health-service name every go-plugin plugin reports on.
  static let healthServiceName = "plugin"

  func inspect() async throws -> InspectionReport {
    let client = PluginClient(configuration: self.configuration, logger: self.logger)
    let clock = ContinuousClock()
    return try await withThrowingTaskGroup(of: Void.self) { group in
      let launchedAt = clock.now
      group.addTask { try await client.run() }
      let info: PluginInfo
      do {
        info = try await client.info
      } catch {
        // `run()` fails with the same error; the group drops it.
        throw self.startFailure(error)
      }
      let startDuration = clock.now - launchedAt

      let findings: Findings
      do {
        findings = try await self.probe(client, info: info)
      } catch {
        await client.kill()
        throw CLIError(code: .inspectionFailed, message: "could not inspect the plugin (pid \(info.pid)): \(error)")
      }

      let stoppingAt = clock.now
      await client.kill()
      let shutdownDuration = clock.now - stoppingAt
      let exit = await client.exit
      try await group.waitForAll()

      return InspectionReport(
        command: [self.configuration.command.executable] + self.configuration.command.arguments,
        info: info,
        offeredVersions: self.configuration.versionedPlugins.keys.sorted(),
        autoMTLS: self.configuration.tls != nil,
        findings: findings,
        startDuration: startDuration,
        shutdownDuration: shutdownDuration,
        exit: exit
      )
    }
  }

  /// What the plugin's gRPC server said.
  struct Findings {
    var services: [String]
    /// Whether the services came from server reflection; otherwise from the health service.
    var reflection: Bool
    /// Why reflection gave nothing, when the reason is not simply that it is not served.
    var reflectionError: String?
    var health: InspectionReport.Health
  }

  private func probe(_ client: PluginClient, info: PluginInfo) async throws -> Findings {
    if info.protocol == .netRPC { return await self.probeNetRPC(client) }
    let connection = try await client.dispense(ConnectionProbe.name, as: ConnectionProbe.self)
    var options = CallOptions.defaults
    options.timeout = self.callTimeout

    let health = await self.checkHealth(connection.grpcClient, options: options)
    switch await self.listServicesByReflection(connection.grpcClient, options: options) {
    case .success(let services):
      return Findings(services: services, reflection: true, health: health)
    case .failure(let error):
      let unimplemented = (error as? RPCError)?.code == .unimplemented
      let services = await self.listServicesByHealth(connection.grpcClient, options: options, health: health)
      return Findings(
        services: services,
        reflection: false,
        reflectionError: unimplemented ? nil : Self.describe(error),
        health: health
      )
    }
  }

  /// A net/rpc plugin lists nothing: what it serves is known only by name, to its hosts. Its
  /// control services are always there, and `Control.Ping` is its health check.
  private func probeNetRPC(_ client: PluginClient) async -> Findings {
    let health: InspectionReport.Health
    do {
      try await client.ping(timeout: self.callTimeout)
      health = InspectionReport.Health(service: "Control.Ping", status: "SERVING")
    } catch {
      health = InspectionReport.Health(service: "Control.Ping", error: Self.describe(error))
    }
    return Findings(services: ["Control", "Dispenser"], reflection: false, health: health)
  }

  /// `grpc.reflection.v1alpha.ServerReflection`'s ListServices, which go-plugin's Go servers
  /// register.
  private func listServicesByReflection(
    _ grpcClient: GRPCClient<PluginTransport>,
    options: CallOptions
  ) async -> Result<[String], any Error> {
    let reflection = Grpc_Reflection_V1alpha_ServerReflection.Client(wrapping: grpcClient)
    do {
      let services = try await reflection.serverReflectionInfo(
        options: options,
        requestProducer: { writer in
          try await writer.write(.with { $0.listServices = "*" })
        },
        onResponse: { response in
          for try await message in response.messages {
            switch message.messageResponse {
            case .listServicesResponse(let list)?:
              return list.service.map(\.name).sorted()
            case .errorResponse(let failure)?:
              throw RPCError(
                code: Status.Code(rawValue: Int(failure.errorCode)).flatMap { RPCError.Code($0) } ?? .unknown,
                message: failure.errorMessage
              )
            default:
              continue
            }
          }
          throw RPCError(code: .internalError, message: "the reflection stream ended without a service list")
        }
      )
      return .success(services)
    } catch {
      return .failure(error)
    }
  }

  /// Without reflection, the services the health service knows: `Health.List` where the plugin
  /// has it (Swift plugins do), else `plugin` if its health check answered.
  private func listServicesByHealth(
    _ grpcClient: GRPCClient<PluginTransport>,
    options: CallOptions,
    health: InspectionReport.Health
  ) async -> [String] {
    let client = Grpc_Health_V1_Health.Client(wrapping: grpcClient)
    if let list = try? await client.list(Grpc_Health_V1_HealthListRequest(), options: options) {
      let names = list.statuses.keys.filter { !$0.isEmpty }.sorted()
      if !names.isEmpty { return names }
    }
    return health.status == nil || health.status == "SERVICE_UNKNOWN" ? [] : [health.service]
  }

  private func checkHealth(
    _ grpcClient: GRPCClient<PluginTransport>, options: CallOptions
  ) async -> InspectionReport.Health {
    let client = Grpc_Health_V1_Health.Client(wrapping: grpcClient)
    do {
      let response = try await client.check(.with { $0.service = Self.healthServiceName }, options: options)
      return InspectionReport.Health(service: Self.healthServiceName, status: Self.name(of: response.status))
    } catch {
      return InspectionReport.Health(service: Self.healthServiceName, error: Self.describe(error))
    }
  }

  static func name(of status: Grpc_Health_V1_HealthCheckResponse.ServingStatus) -> String {
    switch status {
    case .unknown: "UNKNOWN"
    case .serving: "SERVING"
    case .notServing: "NOT_SERVING"
    case .serviceUnknown: "SERVICE_UNKNOWN"
    case .UNRECOGNIZED(let value): "UNRECOGNIZED(\(value))"
    }
  }

  static func describe(_ error: any Error) -> String {
    if let error = error as? RPCError {
      return "\(error.code): \(error.message)"
    }
    return "\(error)"
  }

  /// A failed start, with what the plugin had to say about it and, where the cause is usually
  /// the same, what to check.
  private func startFailure(_ error: any Error) -> CLIError {
    guard let error = error as? PluginError else {
      return CLIError(code: .startFailed, message: "the plugin did not start: \(error)")
    }
    var hint: String?
    switch error.code {
    case .exitedBeforeHandshake:
      hint = "a plugin that exits before its handshake usually rejected the magic cookie (--cookie) or could not run"
    case .incompatibleAppVersion:
      hint = "offer the plugin's version with --versions"
    case .startTimeout:
      hint = "is it a go-plugin plugin? a slow one may need a longer --timeout"
    case .malformedHandshake:
      hint = "the plugin printed something else than a handshake first on stdout"
    case .invalidServerCertificate:
      hint = "the plugin does not do AutoMTLS; try without --auto-mtls"
    default:
      break
    }
    let stderr = self.recorder.recorded
    // The plugin's stderr is listed in full below; the error's own copy of its tail would repeat it.
    var shown = error
    if !stderr.isEmpty, let heading = shown.message.firstRange(of: "\n\n" + PluginError.standardErrorHeading) {
      shown.message = String(shown.message[..<heading.lowerBound])
    }
    return CLIError(
      code: .startFailed,
      message: "the plugin did not start: \(shown)",
      pluginErrorCode: "\(error.code)",
      pluginStderr: stderr.isEmpty ? nil : stderr,
      hint: hint
    )
  }
}
