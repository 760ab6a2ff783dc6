import Foundation
import GoPlugin
import Testing

@Suite("Finding a plugin's executable")
struct PluginCommandTests {
  @Test("a bare name is found in the command's own PATH")
  func bareName() throws {
    let command = PluginCommand("sh", environment: ["PATH": "/nonexistent:/bin:/usr/bin"])
    #expect(try command.resolvedExecutable() == "/bin/sh")
  }

  @Test("a name not in PATH, a missing path and a directory are refused before a launch")
  func refused() throws {
    let cases: [(PluginCommand, String)] = [
      (
        PluginCommand("no-such-plugin-anywhere", environment: ["PATH": "/bin"]),
        "no-such-plugin-anywhere was not found in PATH"
      ),
      (
        PluginCommand("/nonexistent/plugin"), "/nonexistent/plugin is not an executable file: No such file or directory"
      ),
      (PluginCommand("/tmp"), "/tmp is not an executable file: it is a directory"),
    ]
    for (command, message) in cases {
      #expect {
        try command.resolvedExecutable()
      } throws: { error in
        guard let error = error as? PluginError else { return false }
        return error.code == .launchFailed && error.message == message
      }
    }
  }
}
