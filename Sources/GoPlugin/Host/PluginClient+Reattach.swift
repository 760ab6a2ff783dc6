import GoPluginPlatform
import GoPluginSpawn
import Logging
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension PluginClient {
  /// The executable errors name; a reattached plugin is named by its pid and address instead.
  var pluginPath: String? {
    self.configuration.reattach == nil ? self.configuration.command.executable : nil
  }

  /// Where the running plugin can be found again, for another host (or this one, after an
  /// upgrade) to reattach to: go-plugin's `ReattachConfig`. A reattached client gives back the
  /// configuration it was made with. Waits until the plugin has started.
  ///
  /// A launched plugin outlives its host only if it was launched with
  /// ``PluginClientConfiguration/keepsPluginRunning`` and the host lets go of it with
  /// ``detach()``.
  ///
  /// - Throws: ``PluginError`` if the plugin is not running, or with
  ///   ``PluginError/Code/invalidConfiguration`` for a multiplexed session, whose one connection
  ///   cannot be shared.
  public var reattachConfiguration: PluginReattachConfiguration {
    get async throws(PluginError) {
      let info = try await self.session().info
      if let reattach = self.configuration.reattach { return reattach }
      guard !info.multiplexed else {
        throw self.error(
          .invalidConfiguration, "a multiplexed plugin cannot be reattached: its one connection is in use",
          pid: info.pid)
      }
      return PluginReattachConfiguration(
        protocol: info.protocol,
        protocolVersion: info.negotiatedVersion,
        pid: info.pid,
        network: info.network,
        address: info.address
      )
    }
  }

  /// Lets go of the plugin without stopping it: closes the client's connection and leaves the
  /// plugin running, for another host to reattach to (``reattachConfiguration``). ``exit`` then
  /// reports ``PluginExit/Reason/detached`` and ``kill()`` does nothing.
  ///
  /// A reattached client's ``run()`` returns once its connection is closed. A launched plugin
  /// is still this process's child: its ``run()`` returns when the plugin ends and has been
  /// reaped (or never, if this host exits first, which is the point), so run it where nothing
  /// waits for it, and launch it with ``PluginClientConfiguration/keepsPluginRunning`` so that
  /// it survives this host.
  ///
  /// Returns once the client has let go; a client that was not running, or whose plugin
  /// already exited or was stopped, has nothing to let go of and returns at once.
  public func detach() async {
    guard self.transition(.detach) else { return }
    guard case .success? = await self.wait(until: .startOutcome)?.start else { return }
    _ = await self.waitIgnoringCancellation(until: .exited)
    if self.configuration.reattach != nil {
      _ = await self.waitIgnoringCancellation(until: .finished)
    }
  }

  /// Connects to a plugin that is already running, watches its process through a pidfd, and
  /// serves the session until it is stopped, let go of, or the plugin exits.
  func reattachAndServe(_ reattach: PluginReattachConfiguration) async throws(PluginError) {
    let target = "at \(reattach.network) \(reattach.address)"
    // Servers the host opens for the broker need a private place too; made first, so that
    // nothing opened below is left behind if it cannot be.
    let socketDirectory = try SocketDirectory.makeForPlugin(
      in: SocketDirectory.hostBase(environment: ProcessInfo.processInfo.environment),
      keptForReattach: false,
      group: self.configuration.unixSocketGroup
    )
    defer { SocketDirectory.removeTree(socketDirectory) }
    let descriptor: ProcessDescriptor
    do {
      descriptor = try ProcessDescriptor.open(pid: reattach.pid)
    } catch {
      let reason =
        switch error {
        case .noSuchProcess: "no process \(reattach.pid)"
        case .unsupported: "this system cannot watch a process it did not launch (no pidfd)"
        case .failed(let code): "pidfd_open: \(String(cString: strerror(code)))"
        }
      let code: PluginError.Code = if case .noSuchProcess = error { .processNotFound } else { .connectionFailed }
      throw self.error(code, "Reattachment process not found: \(reason) (\(target))")
    }
    let process: ReattachedProcess
    do {
      process = try ReattachedProcess(descriptor)
    } catch {
      var failure = error
      failure.message += " (\(target))"
      throw failure
    }
    if reattach.network == .unix {
      if !goplugin_is_socket(reattach.address) {
        // The process is there but not its socket: it is not serving, or it is not the plugin
        // any more (its pid was given to another process).
        process.release()
        await process.watch()
        throw self.error(
          .processNotFound,
          "Reattachment process not found: process \(reattach.pid) has no socket at \(reattach.address)")
      }
    }
    let versions = self.configuration.versionedPlugins
    let version = reattach.protocolVersion ?? self.configuration.handshake.protocolVersion
    guard let plugins = versions[version] else {
      process.release()
      await process.watch()
      throw self.error(
        .incompatibleAppVersion,
        "Incompatible API version with plugin. Plugin version: \(version), Client versions: \(versions.keys.sorted())")
    }
    let security: ConnectionSecurity
    do {
      security = try ConnectionSecurity.host(
        tls: self.configuration.tls, serverCertificate: nil, ownCertificate: nil, logger: self.logger)
    } catch {
      process.release()
      await process.watch()
      throw error
    }
    self.logger.debug("reattaching to plugin", metadata: ["pid": "\(reattach.pid)", "address": "\(reattach.address)"])

    let info = PluginInfo(
      pid: reattach.pid,
      negotiatedVersion: version,
      protocol: reattach.protocol,
      network: reattach.network,
      address: reattach.address,
      serverCertificate: nil
    )
    let outcome = await withTaskGroup(of: Void.self) { group in
      group.addTask { await process.watch() }
      let result = await self.serve(
        process, info: info, plugins: plugins, security: security, path: nil, socketDirectory: socketDirectory,
        group: &group)
      // Stopped, the process has gone and the watch with it; detached or failed, it ends now.
      process.release()
      return result
    }
    _ = try outcome.get()
  }
}
