import Foundation
public import GoPlugin

/// Finds executables that SwiftPM built beside the running tests, so a test can launch the
/// plugins of its own package as real processes.
///
/// A test target that depends on an executable target gets it built first; this finds it:
///
/// ```swift
/// let command = try BuildProducts.command("my-plugin")
/// ```
public enum BuildProducts {
  /// The folder the running test binary (and so every product of the same build) lives in.
  public static var directory: String {
    var url = URL(fileURLWithPath: PluginCommand.programDirectory)
    // On Darwin the test binary sits inside a .xctest bundle.
    while url.path.contains(".xctest") { url.deleteLastPathComponent() }
    return url.path
  }

  /// The path of the executable product `name`.
  ///
  /// - Throws: ``PluginError`` with ``PluginError/Code/invalidConfiguration`` if it was not built.
  public static func path(_ name: String) throws -> String {
    let path = (self.directory as NSString).appendingPathComponent(name)
    guard FileManager.default.isExecutableFile(atPath: path) else {
      throw PluginError(
        code: .invalidConfiguration,
        message: "no executable \(name) in \(self.directory); add the target to the test target's dependencies"
      )
    }
    return path
  }

  /// A command that launches the executable product `name` with `arguments`.
  public static func command(
    _ name: String, arguments: [String] = [], environment: [String: String] = [:]
  ) throws -> PluginCommand {
    PluginCommand(try self.path(name), arguments: arguments, environment: environment)
  }
}
