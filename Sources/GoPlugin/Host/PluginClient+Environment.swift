import GRPCCore
import GoPluginPlatform
import GoPluginProtos
import Logging
import NIOSSL
import SwiftProtobuf
import Synchronization
import SystemPackage

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension PluginClient {

  /// go-plugin's environment (spec §1.1), except that the host's own `PLUGIN_*` variables are
  /// never inherited: a host that is itself a plugin must not pass its handshake on. `TMPDIR`
  /// is the plugin's private socket directory, whatever the host or the command says.
  func childEnvironment(socketDirectory: String, clientCertificate: String?) -> [String: String] {
    let configuration = self.configuration
    var environment: [String: String] = [:]
    for (key, value) in ProcessInfo.processInfo.environment where !key.hasPrefix("PLUGIN_") {
      switch configuration.inheritedEnvironment {
      case .all: environment[key] = value
      case .only(let names) where names.contains(key): environment[key] = value
      case .none, .only: break
      }
    }
    environment.merge(configuration.command.environment) { _, new in new }
    environment[configuration.handshake.magicCookieKey] = configuration.handshake.magicCookieValue
    environment[PluginEnvironment.minPort] = String(configuration.portRange.lowerBound)
    environment[PluginEnvironment.maxPort] = String(configuration.portRange.upperBound)
    environment[PluginEnvironment.protocolVersions] =
      configuration.versionedPlugins.keys.sorted().map(String.init).joined(separator: ",")
    environment[PluginEnvironment.unixSocketDirectory] = socketDirectory
    // Plugins that ignore PLUGIN_UNIX_SOCKET_DIR (go-plugin before 1.5) make their socket in
    // TMPDIR; pointed at the same private directory, it is removed with that directory, and the
    // host never has to unlink a path a plugin merely named.
    environment["TMPDIR"] = socketDirectory
    if let group = configuration.unixSocketGroup {
      environment[PluginEnvironment.unixSocketGroup] = group
    }
    if let clientCertificate {
      environment[PluginEnvironment.clientCertificate] = clientCertificate
    }
    if configuration.multiplexBroker {
      environment[PluginEnvironment.multiplexGRPC] = "true"
    }
    return environment
  }

}
