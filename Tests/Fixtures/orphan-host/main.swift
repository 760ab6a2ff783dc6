import Foundation
import GoPlugin
import KVInterface
import Logging
import Synchronization

// A host for the no-orphans tests: launches a KV plugin for each command line it is given, prints
// `pid <index> <pid>` as each one starts and `exit <index> <how it ended>` as each one ends, and
// otherwise waits until a test kills it or signals it. It stops its plugins gracefully on SIGTERM
// and SIGINT, through withPluginHostSignalHandling.
//
// With `--stop-all` first, it calls PluginClient.stopAll() once every plugin has started, prints
// `stopped all, still running: <count>`, and ends when its clients have.
//
// With `--signal-self-after` first, it sends itself SIGTERM once withPluginHostSignalHandling has
// returned, which must end it as SIGTERM did before (status 143), and prints `still running` if
// it does not.

func say(_ text: String) {
  FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

let arguments = Array(CommandLine.arguments.dropFirst())
let stopAllWhenStarted = arguments.first == "--stop-all"
let signalSelfAfter = arguments.first == "--signal-self-after"
let commandLines = stopAllWhenStarted || signalSelfAfter ? Array(arguments.dropFirst()) : arguments

/// The clients that have started, for `--stop-all`.
let started = Mutex<[PluginClient]>([])

func host(_ commandLine: String, index: Int) async {
  do {
    var configuration = PluginClientConfiguration(
      command: try PluginCommand(commandLine: commandLine), handshake: .kv, plugins: ["kv": KVPlugin()])
    configuration.standardInput = .none
    // Generous: the test machine is shared, and a Go or Python plugin may be slow to stop.
    configuration.gracefulStopTimeout = .seconds(10)
    var logger = Logger(label: "orphan-host")
    logger.logLevel = .warning
    let client = PluginClient(configuration: configuration, logger: logger)
    try await withThrowingTaskGroup(of: Void.self) { running in
      running.addTask { try await client.run() }
      say("pid \(index) \(try await client.info.pid)")
      let all = started.withLock { clients in
        clients.append(client)
        return clients.count == commandLines.count
      }
      if stopAllWhenStarted && all {
        await PluginClient.stopAll()
        let left = started.withLock { clients in clients.filter { !$0.hasExited }.count }
        say("stopped all, still running: \(left)")
      }
      try await running.waitForAll()
    }
    say("exit \(index) \(await client.exit)")
  } catch {
    say("failed \(index) \(error)")
  }
}

await withPluginHostSignalHandling {
  await withTaskGroup(of: Void.self) { group in
    for (index, commandLine) in commandLines.enumerated() {
      group.addTask { await host(commandLine, index: index) }
    }
  }
}

if signalSelfAfter {
  // To the process, as a signal from outside comes: this thread may be one that blocks it.
  kill(getpid(), SIGTERM)
  // Delivered to another thread, it may take a moment; a swallowed one never ends the process.
  for _ in 0..<50 { usleep(100_000) }
  say("still running")
}
