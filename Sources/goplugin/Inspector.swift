import GoPlugin
import Logging

/// Launches one plugin through the library's ``PluginDescriber``, and turns a failure into
/// what a person at a terminal needs: the plugin's own stderr and, where the cause is usually
/// the same, which of goplugin's options to check.
struct Inspector {
  var describer: PluginDescriber
  var command: PluginCommand
  var recorder: PluginLogRecorder

  func inspect() async throws -> InspectionReport {
    let inspection: PluginInspection
    do {
      inspection = try await self.describer.inspect(self.command)
    } catch  where error.code == .unavailable && error.pid != nil {
      // It started (it has a pid) but could not be talked to.
      throw CLIError(code: .inspectionFailed, message: error.message)
    } catch {
      throw self.startFailure(error)
    }
    return InspectionReport(
      command: [self.command.executable] + self.command.arguments,
      inspection: inspection,
      autoMTLS: self.describer.autoMTLS
    )
  }

  /// A failed start, with what the plugin had to say about it and, where the cause is usually
  /// the same, what to check.
  private func startFailure(_ error: PluginError) -> CLIError {
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
