import GoPluginPlatform
import GoPluginSpawn
import SystemPackage

/// A child process launched with its stdout and stderr on pipes, and the blocking calls that
/// follow it to its end. Every call here blocks: they belong on a thread of their own
/// (``DedicatedThread``), never on one of Swift concurrency's.
struct ChildProcess: Sendable {
  /// What to launch.
  struct Launch: Sendable {
    var path: String
    /// argv, argv[0] included.
    var arguments: [String]
    var environment: [String: String]
    var workingDirectory: String?
    /// The descriptor the child reads as stdin; the caller keeps it open until the spawn returns.
    var standardInput: Int32
    var newProcessGroup: Bool
    /// The child gets SIGKILL when the calling thread ends (Linux only).
    var diesWithParent: Bool
  }

  /// A launch that failed, and where.
  struct SpawnError: Error, CustomStringConvertible {
    var step: goplugin_spawn_step
    var errno: Errno
    var workingDirectory: String?

    var description: String {
      switch self.step {
      case GOPLUGIN_SPAWN_PIPE: "could not create its pipes: \(self.errno)"
      case GOPLUGIN_SPAWN_FORK: "fork: \(self.errno)"
      case GOPLUGIN_SPAWN_PROCESS_GROUP: "could not give it a process group: \(self.errno)"
      case GOPLUGIN_SPAWN_PARENT_DEATH_SIGNAL: "could not set its parent-death signal: \(self.errno)"
      case GOPLUGIN_SPAWN_STANDARD_STREAMS: "could not set up its standard streams: \(self.errno)"
      case GOPLUGIN_SPAWN_WORKING_DIRECTORY:
        "could not change to the working directory \(self.workingDirectory ?? ""): \(self.errno)"
      default: "\(self.errno)"
      }
    }

    /// What a launch error should carry as its cause: the system's own answer where the exec
    /// itself failed, this description where a step before it did.
    var cause: any Error { self.step == GOPLUGIN_SPAWN_EXEC ? self.errno : self }
  }

  let pid: Int32
  /// A pidfd, readable once the process has exited; -1 where the kernel has none.
  let processDescriptor: Int32
  let standardOutput: Int32
  let standardError: Int32

  /// Forks and execs. On the calling thread, because the parent-death signal follows it.
  static func spawn(_ launch: Launch) -> Result<ChildProcess, SpawnError> {
    // Everything the child needs is allocated before the fork: the child may not allocate.
    let arguments = CStrings(launch.arguments)
    let environment = CStrings(launch.environment.map { "\($0.key)=\($0.value)" }.sorted())
    defer {
      arguments.free()
      environment.free()
    }
    var result = goplugin_spawn_result()
    let status = launch.path.withCString { path in
      withOptionalCString(launch.workingDirectory) { workingDirectory in
        var request = goplugin_spawn_request(
          path: path,
          arguments: arguments.pointer,
          environment: environment.pointer,
          working_directory: workingDirectory,
          standard_input: launch.standardInput,
          new_process_group: launch.newProcessGroup ? 1 : 0,
          dies_with_parent: launch.diesWithParent ? 1 : 0
        )
        return goplugin_spawn(&request, &result)
      }
    }
    guard status == 0 else {
      return .failure(
        SpawnError(
          step: result.failed_step, errno: Errno(rawValue: result.error), workingDirectory: launch.workingDirectory)
      )
    }
    return .success(
      ChildProcess(
        pid: result.pid,
        processDescriptor: result.process_descriptor,
        standardOutput: result.standard_output,
        standardError: result.standard_error
      )
    )
  }

  /// Whether the process has exited (it may not have been reaped yet). Without a pidfd it
  /// cannot tell, and says `false`.
  func hasExited() -> Bool {
    guard self.processDescriptor >= 0 else { return false }
    var exited = pollfd(fd: self.processDescriptor, events: Int16(POLLIN), revents: 0)
    return poll(&exited, 1, 0) > 0
  }

  /// Sends `signal` to the process and, if it leads one, to its process group. Only while it
  /// has not been reaped: until then neither its pid nor its group can belong to anyone else.
  func send(_ signal: Int32, toGroup: Bool) {
    if self.processDescriptor < 0 || goplugin_pidfd_send_signal(self.processDescriptor, signal) != 0 {
      _ = kill(self.pid, signal)
    }
    // A plugin that left the group (setsid) makes this fail; it was signalled above.
    if toGroup { _ = kill(-self.pid, signal) }
  }

  /// A chunk of output, or the end of one stream.
  enum Output {
    case standardOutput(UnsafeRawBufferPointer)
    case standardError(UnsafeRawBufferPointer)
    case endOfStandardOutput
    case endOfStandardError
  }

  /// Hands on what the process writes until it exits. Without a pidfd, until both streams end
  /// and then until it exits. Returns with the process exited and not reaped.
  func follow(_ streams: inout Streams, _ handle: (Output) -> Void) {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 1)
    defer { buffer.deallocate() }
    while true {
      var descriptors = streams.pollDescriptors
      if self.processDescriptor >= 0 {
        descriptors.append(pollfd(fd: self.processDescriptor, events: Int16(POLLIN), revents: 0))
      } else if descriptors.isEmpty {
        self.waitWithoutReaping()
        return
      }
      let ready = poll(&descriptors, nfds_t(descriptors.count), -1)
      if ready < 0 {
        if errno == EINTR { continue }
        // poll fails only for a bad descriptor or lack of memory; a busy loop helps neither.
        self.waitWithoutReaping()
        return
      }
      for descriptor in descriptors where descriptor.revents != 0 {
        if descriptor.fd == self.processDescriptor {
          continue
        }
        streams.read(descriptor.fd, into: buffer, handle)
      }
      if let last = descriptors.last, last.fd == self.processDescriptor, last.revents != 0 { return }
    }
  }

  /// After the exit: reads what is left in the pipes until both end, or until `limit` has
  /// passed (a process that escaped the group may hold a pipe open for as long as it likes).
  func drain(_ streams: inout Streams, for limit: Duration, _ handle: (Output) -> Void) {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 1)
    defer { buffer.deallocate() }
    let deadline = ContinuousClock.now + limit
    while !streams.pollDescriptors.isEmpty {
      let left = deadline - ContinuousClock.now
      guard left > .zero else { break }
      var descriptors = streams.pollDescriptors
      let milliseconds = Int32(min(left / .milliseconds(1), 60_000)) + 1
      let ready = poll(&descriptors, nfds_t(descriptors.count), milliseconds)
      if ready < 0 && errno != EINTR { break }
      for descriptor in descriptors where descriptor.revents != 0 {
        streams.read(descriptor.fd, into: buffer, handle)
      }
    }
    // A stream still open ends here for its reader, with whatever arrived.
    if streams.outputOpen {
      streams.outputOpen = false
      handle(.endOfStandardOutput)
    }
    if streams.errorOpen {
      streams.errorOpen = false
      handle(.endOfStandardError)
    }
  }

  /// How a process ended.
  enum Termination: Sendable, Hashable {
    case exited(Int32)
    case signalled(Int32)
  }

  /// Reaps the process, which must have exited, and returns how it ended (`nil` if someone else
  /// reaped it). Only this pid: other code in the process reaps children of its own.
  func reap() -> Termination? {
    var status: Int32 = 0
    while true {
      if waitpid(self.pid, &status, 0) == self.pid { break }
      if errno != EINTR { return nil }
    }
    // WIFSIGNALED / WTERMSIG / WEXITSTATUS are macros Swift does not import.
    let signal = status & 0x7f
    return signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
  }

  /// Closes the pipes and the pidfd.
  func close() {
    for descriptor in [self.standardOutput, self.standardError, self.processDescriptor] where descriptor >= 0 {
      _ = GoPluginPlatform.close(descriptor)
    }
  }

  /// Blocks until the process exits, leaving it to be reaped.
  private func waitWithoutReaping() {
    var info = siginfo_t()
    while waitid(P_PID, id_t(self.pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR {}
  }

  /// Its two pipes, open until they end.
  var streams: Streams { Streams(output: self.standardOutput, error: self.standardError) }

  /// Which of the two pipes are still open, across ``follow(_:_:)`` and ``drain(_:for:_:)``.
  struct Streams {
    let output: Int32
    let error: Int32
    var outputOpen: Bool
    var errorOpen: Bool

    fileprivate init(output: Int32, error: Int32) {
      self.output = output
      self.error = error
      self.outputOpen = output >= 0
      self.errorOpen = error >= 0
    }

    fileprivate var pollDescriptors: [pollfd] {
      var descriptors: [pollfd] = []
      if self.outputOpen { descriptors.append(pollfd(fd: self.output, events: Int16(POLLIN), revents: 0)) }
      if self.errorOpen { descriptors.append(pollfd(fd: self.error, events: Int16(POLLIN), revents: 0)) }
      return descriptors
    }

    /// One read from a ready pipe: a chunk, or the end of the stream.
    fileprivate mutating func read(
      _ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, _ handle: (Output) -> Void
    ) {
      let count = GoPluginPlatform.read(descriptor, buffer.baseAddress, buffer.count)
      if count < 0 && (errno == EINTR || errno == EAGAIN) { return }
      let chunk = UnsafeRawBufferPointer(rebasing: buffer[..<max(count, 0)])
      if descriptor == self.output {
        guard count > 0 else {
          self.outputOpen = false
          return handle(.endOfStandardOutput)
        }
        handle(.standardOutput(chunk))
      } else {
        guard count > 0 else {
          self.errorOpen = false
          return handle(.endOfStandardError)
        }
        handle(.standardError(chunk))
      }
    }
  }
}

/// A NULL-terminated array of C strings, allocated before a fork.
private struct CStrings {
  let pointer: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>

  init(_ strings: [String]) {
    self.pointer = .allocate(capacity: strings.count + 1)
    for (index, string) in strings.enumerated() { self.pointer[index] = strdup(string) }
    self.pointer[strings.count] = nil
  }

  func free() {
    var index = 0
    while let string = self.pointer[index] {
      GoPluginPlatform.free(string)
      index += 1
    }
    self.pointer.deallocate()
  }
}

private func withOptionalCString<Result>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> Result) -> Result {
  guard let string else { return body(nil) }
  return string.withCString { body($0) }
}
