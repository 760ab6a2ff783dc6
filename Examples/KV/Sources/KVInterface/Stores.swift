import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A KV store in memory.
public final class MemoryKV: KV {
  private let values = Mutex<[String: [UInt8]]>([:])

  public init() {}

  public func get(_ key: String) async throws -> [UInt8] {
    self.values.withLock { $0[key] ?? [] }
  }

  public func put(_ key: String, value: [UInt8]) async throws {
    self.values.withLock { $0[key] = value }
  }

  public func upload(_ chunks: [[UInt8]]) async throws -> UploadCount {
    UploadCount(bytes: chunks.reduce(0) { $0 + Int64($1.count) }, chunks: Int64(chunks.count))
  }
}

/// A KV store with one file per key in a directory, so values outlive the plugin process.
public final class FileKV: KV {
  private let directory: URL

  public init(directory: String) throws {
    self.directory = URL(fileURLWithPath: directory, isDirectory: true)
    try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
  }

  public func get(_ key: String) async throws -> [UInt8] {
    guard let data = try? Data(contentsOf: self.file(for: key)) else { return [] }
    return Array(data)
  }

  public func put(_ key: String, value: [UInt8]) async throws {
    try Data(value).write(to: self.file(for: key), options: .atomic)
  }

  public func upload(_ chunks: [[UInt8]]) async throws -> UploadCount {
    UploadCount(bytes: chunks.reduce(0) { $0 + Int64($1.count) }, chunks: Int64(chunks.count))
  }

  /// Keys become file names hex-encoded, so that no key can name a path outside the directory.
  private func file(for key: String) -> URL {
    let name = key.utf8.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
      .joined()
    return self.directory.appendingPathComponent("k" + name)
  }
}
