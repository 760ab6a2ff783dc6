extension PluginClientConfiguration {
  /// What cannot be combined with a reattach, as go-plugin refuses it too, or cannot work.
  func validateReattach(_ reattach: PluginReattachConfiguration) throws(PluginError) {
    let target = "process \(reattach.pid) at \(reattach.network) \(reattach.address)"
    func invalid(_ message: String) -> PluginError {
      PluginError(code: .invalidConfiguration, message: "cannot reattach to \(target): \(message)", pid: reattach.pid)
    }
    if reattach.pid <= 0 { throw invalid("a pid must be positive") }
    if reattach.address.isEmpty { throw invalid("the address is empty") }
    if reattach.network != .unix && reattach.network != .tcp {
      throw PluginError(
        code: .unknownAddressType, message: "cannot reattach to \(target): Unknown address type: \(reattach.network)",
        pid: reattach.pid)
    }
    if reattach.protocol != .grpc || !self.allowedProtocols.contains(reattach.protocol) {
      throw PluginError(
        code: .unsupportedProtocol,
        message: "cannot reattach to \(target): Unsupported plugin protocol \"\(reattach.protocol)\"", pid: reattach.pid
      )
    }
    if case .autoMTLS? = self.tls?.mode {
      // The plugin's certificate and the host's were made for the host that launched it and
      // are gone with it; go-plugin says "You cannot Reattach to a server with this option".
      throw invalid("AutoMTLS cannot be reattached: nothing holds the certificates the plugin was started with")
    }
    if self.checksum != nil {
      throw invalid("only one of Reattach or SecureConfig can be set: a running process has no executable to check")
    }
    if self.trust != nil {
      throw invalid("trust cannot be set with reattach: a running process has no executable to check")
    }
    if self.multiplexBroker {
      throw invalid("broker multiplexing cannot be reattached: the plugin's one connection belongs to its first host")
    }
    if self.keepsPluginRunning {
      throw invalid("keepsPluginRunning is for launched plugins; a reattached one is detached with detach()")
    }
  }
}
