import GRPCCore
import GoPlugin

/// A plugin type that knows no service: dispensing it hands back the plugin's connection, so
/// that the inspector can call whatever the plugin serves (reflection, health) over the client's
/// own gRPC connection.
///
/// The host's plugin set only matters locally (dispensing sends nothing), so the plugin does
/// not need to serve anything under this name.
struct ConnectionProbe: GRPCPlugin {
  /// The name the probe is registered under, in every offered version.
  static let name = "goplugin-inspect"

  func services(context: PluginServiceContext) throws -> [any RegistrableRPCService] {
    throw PluginError(code: .invalidConfiguration, message: "goplugin's connection probe is for hosts only")
  }

  func client(connection: PluginConnection) -> PluginConnection {
    connection
  }
}
