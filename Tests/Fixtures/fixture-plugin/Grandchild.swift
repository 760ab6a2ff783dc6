import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Starts `sleep 1000` as a child of the plugin, in the plugin's process group, and writes its
/// pid to `pidFile` before the plugin prints its handshake: a plugin that leaves a process of
/// its own behind unless its host takes the group down with it.
func startGrandchild(pidFile: String) {
  var pid: pid_t = 0
  let arguments: [UnsafeMutablePointer<CChar>?] = [strdup("sleep"), strdup("1000"), nil]
  defer { for argument in arguments { free(argument) } }
  guard posix_spawn(&pid, "/bin/sleep", nil, nil, arguments, environ) == 0 else {
    FileHandle.standardError.write(Data("could not start sleep\n".utf8))
    exit(5)
  }
  // Written whole under another name and renamed, so that a reader never sees half of it.
  let partial = pidFile + ".partial"
  _ = FileManager.default.createFile(atPath: partial, contents: Data("\(pid)\n".utf8))
  rename(partial, pidFile)
}
