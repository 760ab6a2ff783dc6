import Foundation
import GoPlugin
import KVInterface
import Logging

// A host for the no-orphans tests: launches a KV plugin for each command line it is given, prints
// `pid <index> <pid>` as each one starts and `exit <index> <how it ended>` as each one ends, and
// otherwise waits, until a test kills it or signals it. It stops its plugins gracefully on SIGTERM
// and SIGINT, as a host using withPluginHostSignalHandling does.

func say(_ text: String) {
  FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

let commandLines = Array(CommandLine.arguments.dropFirst())

await withPluginHostSignalHandling {
  await withTaskGroup(of: Void.self) { group in
    for (index, commandLine) in commandLines.enumerated() {
      group.addTask {
        do {
          var configuration = PluginClientConfiguration(
            command: try PluginCommand(commandLine: commandLine), handshake: .kv, plugins: ["kv": KVPlugin()])
          configuration.standardInput = .none
          // Generous: the test machine is shared, and a Go or Python plugin may start slowly.
          configuration.gracefulStopTimeout = .seconds(10)
          var logger = Logger(label: "orphan-host")
          logger.logLevel = .warning
          let client = PluginClient(configuration: configuration, logger: logger)
          try await withThrowingTaskGroup(of: Void.self) { running in
            running.addTask { try await client.run() }
            say("pid \(index) \(try await client.info.pid)")
            try await running.waitForAll()
          }
          say("exit \(index) \(await client.exit)")
        } catch {
          say("failed \(index) \(error)")
        }
      }
    }
  }
}
