import GRPCCore
import GoPluginProtos
import Logging
import SwiftProtobuf

/// A plugin type that knows no service: dispensing it hands back the plugin's connection, so
/// that the describer can call whatever the plugin serves (health, info, reflection) over the
/// client's own gRPC connection. Dispensing is local, so the plugin need not know the name.
struct DescriptionProbe: GRPCPlugin {
  static let name = "goplugin-describe"

  func services(context: PluginServiceContext) throws -> [any RegistrableRPCService] {
    throw PluginError(code: .invalidConfiguration, message: "the description probe is for hosts only")
  }

  func client(connection: PluginConnection) -> PluginConnection {
    connection
  }
}

extension PluginDescriber {
  /// What the plugin's server said.
  struct Findings {
    var services: [String]
    var reflection: Bool
    var reflectionError: String?
    var health: PluginDescription.Health
    var info: PluginDescription.Info?
  }

  /// The health-service name every go-plugin plugin reports on.
  static let healthServiceName = "plugin"

  func probe(_ client: PluginClient, info: PluginInfo) async throws -> Findings {
    if info.protocol == .netRPC { return await self.probeNetRPC(client) }
    let connection = try await client.dispense(DescriptionProbe.name, as: DescriptionProbe.self)
    var options = CallOptions.defaults
    options.timeout = self.timeout

    let health = await self.checkHealth(connection.grpcClient, options: options)
    let about = await self.askInfo(connection.grpcClient, options: options)
    switch await self.listServicesByReflection(connection.grpcClient, options: options) {
    case .success(let services):
      return Findings(services: services, reflection: true, health: health, info: about)
    case .failure(let error):
      let unimplemented = (error as? RPCError)?.code == .unimplemented
      let services = await self.listServicesByHealth(connection.grpcClient, options: options, health: health)
      return Findings(
        services: services,
        reflection: false,
        reflectionError: unimplemented ? nil : Self.describe(error),
        health: health,
        info: about
      )
    }
  }

  /// A net/rpc plugin lists nothing: what it serves is known only by name, to its hosts. Its
  /// control services are always there, and `Control.Ping` is its health check.
  private func probeNetRPC(_ client: PluginClient) async -> Findings {
    let health: PluginDescription.Health
    do {
      try await client.ping(timeout: self.timeout)
      health = PluginDescription.Health(service: "Control.Ping", status: "SERVING")
    } catch {
      health = PluginDescription.Health(service: "Control.Ping", error: Self.describe(error))
    }
    return Findings(services: ["Control", "Dispenser"], reflection: false, health: health)
  }

  /// swift-go-plugin's info service. UNIMPLEMENTED is the common answer (Go and Python
  /// plugins), not a failure; any other failure leaves the description without info too, and
  /// is logged.
  private func askInfo(
    _ grpcClient: GRPCClient<PluginTransport>, options: CallOptions
  ) async -> PluginDescription.Info? {
    let client = Goplugin_Info_V1_PluginInfo.Client(wrapping: grpcClient)
    let response: Goplugin_Info_V1_DescribeResponse
    do {
      response = try await client.describe(Goplugin_Info_V1_DescribeRequest(), options: options)
    } catch {
      if (error as? RPCError)?.code != .unimplemented {
        self.logger.debug("the plugin's info service failed", metadata: ["error": "\(error)"])
      }
      return nil
    }
    return PluginDescription.Info(
      name: response.name,
      version: response.version.isEmpty ? nil : response.version,
      description: response.description_p.isEmpty ? nil : response.description_p,
      versions: response.versions.map {
        PluginDescription.Info.Offer(version: Int($0.version), protocol: $0.protocol, plugins: $0.plugins)
      },
      build: response.hasBuild
        ? PluginDescription.Info.Build(
          libraryVersion: response.build.libraryVersion,
          swiftVersion: response.build.swiftVersion.isEmpty ? nil : response.build.swiftVersion,
          os: response.build.os,
          arch: response.build.arch)
        : nil,
      metadata: response.metadata
    )
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
    health: PluginDescription.Health
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
  ) async -> PluginDescription.Health {
    let client = Grpc_Health_V1_Health.Client(wrapping: grpcClient)
    do {
      let response = try await client.check(.with { $0.service = Self.healthServiceName }, options: options)
      return PluginDescription.Health(service: Self.healthServiceName, status: Self.name(of: response.status))
    } catch {
      return PluginDescription.Health(service: Self.healthServiceName, error: Self.describe(error))
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
}
