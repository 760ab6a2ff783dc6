import GRPCCore
import NIOCore
import NIOHPACK

/// gRPC's mapping onto HTTP/2, as grpc-go and grpcio speak it: the headers, the trailers, and
/// the length-prefixed messages in between.
enum GRPCWire {
  static let contentType = "application/grpc"

  /// `error` as a call's status, as grpc-swift makes one: an `RPCError` as it is, an
  /// `RPCErrorConvertible` converted, anything else `unknown` with `message`.
  static func rpcError(_ error: any Error, otherwise message: String) -> RPCError {
    if let error = error as? RPCError { return error }
    if let convertible = error as? any RPCErrorConvertible { return RPCError(convertible) }
    return RPCError(code: .unknown, message: message, cause: error)
  }

  /// `/package.Service/Method`.
  static func path(of descriptor: MethodDescriptor) -> String {
    "/\(descriptor.service.fullyQualifiedService)/\(descriptor.method)"
  }

  static func descriptor(path: String) -> MethodDescriptor? {
    let parts = path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
    guard parts.count == 3, parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty,
      let service = String(parts[1]), let method = String(parts[2])
    else { return nil }
    return MethodDescriptor(fullyQualifiedService: service, method: method)
  }

  /// `timeout` as a `grpc-timeout` value: at most eight digits and a unit, in the finest unit
  /// that holds it, rounded up so that the server's deadline is never earlier than the
  /// caller's. Less than nothing is sent as nothing ("0n"); more than the longest value there
  /// is, as that value.
  static func timeoutHeader(_ timeout: Duration) -> String {
    let (seconds, attoseconds) = timeout.components
    guard seconds >= 0, seconds > 0 || attoseconds > 0 else { return "0n" }
    let (whole, overflowed) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
    let (total, overflowedAgain) = whole.addingReportingOverflow((attoseconds + 999_999_999) / 1_000_000_000)
    guard !overflowed, !overflowedAgain else { return "99999999H" }
    for unit in Self.timeoutUnits {
      let value = (total - 1) / unit.nanoseconds + 1
      if value <= 99_999_999 { return "\(value)\(unit.suffix)" }
    }
    return "99999999H"
  }

  private static let timeoutUnits: [(suffix: Character, nanoseconds: Int64)] = [
    ("n", 1), ("u", 1_000), ("m", 1_000_000), ("S", 1_000_000_000), ("M", 60_000_000_000), ("H", 3_600_000_000_000),
  ]

  static func isGRPC(contentType: String?) -> Bool {
    guard let contentType else { return false }
    return contentType == Self.contentType || contentType.hasPrefix(Self.contentType + "+")
      || contentType.hasPrefix(Self.contentType + ";")
  }

  /// Custom metadata, from every header that is not a pseudo-header. Binary values (`-bin`
  /// keys) arrive as base64, padded or not.
  static func metadata(from headers: HPACKHeaders) -> Metadata {
    var metadata = Metadata()
    metadata.reserveCapacity(headers.count)
    for (name, value, _) in headers where !name.hasPrefix(":") {
      if name.hasSuffix("-bin"), let bytes = Base64.decodeUnpadded(String(value.prefix { $0 != "=" })) {
        metadata.addBinary(bytes, forKey: name)
      } else {
        metadata.addString(value, forKey: name)
      }
    }
    return metadata
  }

  /// A request's metadata as a server's handlers get it: without `grpc-timeout`.
  ///
  /// grpc-swift's server times a call that carries one with a `Task.sleep` it cancels when the
  /// call ends, and the runtime holds a cancelled sleep until its deadline would have passed. A
  /// grpc-go caller under a long context (a 10-minute one in the benchmark's Go host) so left
  /// about 0.5 KB behind per call: a Swift plugin grew from 28 to 56 MiB over 60,000 calls, and
  /// stays at 26 MiB without it. The caller still keeps its deadline: it resets the stream when
  /// the deadline passes, and a reset stream cancels the handler.
  static func requestMetadata(from headers: HPACKHeaders) -> Metadata {
    var metadata = Self.metadata(from: headers)
    metadata.removeAllValues(forKey: "grpc-timeout")
    return metadata
  }

  /// Metadata as headers. Keys gRPC itself sets are the transport's to write, so a caller's
  /// copy of them is dropped rather than sent twice.
  static func append(_ metadata: Metadata, to headers: inout HPACKHeaders) {
    for (key, value) in metadata {
      let name = key.lowercased()
      if Self.reserved.contains(name) || name.hasPrefix(":") { continue }
      switch value {
      case .string(let text): headers.add(name: name, value: text)
      case .binary(let bytes): headers.add(name: name, value: Base64.encodeUnpadded(bytes))
      }
    }
  }

  private static let reserved: Set<String> = [
    "content-type", "te", "grpc-status", "grpc-message", "grpc-encoding", "grpc-accept-encoding",
    "user-agent",
  ]

  /// A call's status as the trailers that end its response.
  static func trailers(_ status: Status, _ metadata: Metadata, into headers: inout HPACKHeaders) {
    headers.add(name: "grpc-status", value: String(status.code.rawValue))
    if !status.message.isEmpty {
      headers.add(name: "grpc-message", value: Self.percentEncoded(status.message))
    }
    Self.append(metadata, to: &headers)
  }

  /// The status a response's trailers carry, with the rest of them as metadata. A response that
  /// ended without `grpc-status` is an error of its own, as gRPC's HTTP mapping says.
  static func status(fromTrailers headers: HPACKHeaders) -> (Status, Metadata) {
    var metadata = Self.metadata(from: headers)
    let code = headers.first(name: "grpc-status").flatMap(Int.init).flatMap { Status.Code(rawValue: $0) }
    let message = headers.first(name: "grpc-message").map(Self.percentDecoded) ?? ""
    metadata.removeAllValues(forKey: "grpc-status")
    metadata.removeAllValues(forKey: "grpc-message")
    guard let code else {
      return (Status(code: .unknown, message: "the response ended without a gRPC status"), metadata)
    }
    return (Status(code: code, message: message), metadata)
  }

  /// The status an HTTP response that is not gRPC stands for.
  static func status(httpStatus: String?) -> Status {
    let code: Status.Code =
      switch httpStatus {
      case "400": .internalError
      case "401": .unauthenticated
      case "403": .permissionDenied
      case "404": .unimplemented
      case "429", "502", "503", "504": .unavailable
      default: .unknown
      }
    return Status(code: code, message: "the server answered HTTP status \(httpStatus ?? "none") instead of gRPC")
  }

  /// gRPC's percent-encoding of `grpc-message`: printable ASCII but `%` stays as it is.
  static func percentEncoded(_ text: String) -> String {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(text.utf8.count)
    let hex = Array("0123456789ABCDEF".utf8)
    for byte in text.utf8 {
      if byte >= 0x20, byte <= 0x7E, byte != UInt8(ascii: "%") {
        bytes.append(byte)
      } else {
        bytes += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
      }
    }
    return String(decoding: bytes, as: UTF8.self)
  }

  static func percentDecoded(_ text: String) -> String {
    guard text.utf8.contains(UInt8(ascii: "%")) else { return text }
    var bytes: [UInt8] = []
    var iterator = text.utf8.makeIterator()
    while let byte = iterator.next() {
      if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
        let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
      {
        bytes.append(value)
      } else {
        bytes.append(byte)
      }
    }
    return String(decoding: bytes, as: UTF8.self)
  }

  /// Cuts a stream's DATA into messages. A message inside one frame stays a slice of that
  /// frame's buffer; only one that spans frames is gathered into a buffer of its own.
  struct MessageReader {
    let maximumLength: Int
    private var pending: ByteBuffer?

    init(maximumLength: Int) {
      self.maximumLength = maximumLength
    }

    mutating func append(_ buffer: ByteBuffer) {
      if self.pending == nil || self.pending!.readableBytes == 0 {
        self.pending = buffer
      } else {
        self.pending!.writeImmutableBuffer(buffer)
      }
    }

    /// The next whole message, nil if it has not all arrived.
    mutating func next() throws(RPCError) -> PluginBytes? {
      guard var buffer = self.pending, buffer.readableBytes >= PluginBytes.prefixLength else { return nil }
      let start = buffer.readerIndex
      let compressed = buffer.getInteger(at: start, as: UInt8.self)!
      let length = Int(buffer.getInteger(at: start + 1, as: UInt32.self)!)
      guard compressed == 0 else {
        throw RPCError(code: .internalError, message: "received a compressed message, and no compression was agreed")
      }
      guard length <= self.maximumLength else {
        throw RPCError(
          code: .resourceExhausted,
          message: "received a message of \(length) bytes, more than the limit of \(self.maximumLength)"
        )
      }
      guard buffer.readableBytes >= PluginBytes.prefixLength + length else {
        // Whatever follows will be appended: a buffer of its own, sized for the whole message.
        if buffer.capacity - start < PluginBytes.prefixLength + length {
          var gathered = ByteBufferAllocator().buffer(capacity: PluginBytes.prefixLength + length)
          gathered.writeBuffer(&buffer)
          self.pending = gathered
        }
        return nil
      }
      buffer.moveReaderIndex(forwardBy: PluginBytes.prefixLength)
      let message = buffer.readSlice(length: length)!
      self.pending = buffer.readableBytes == 0 ? nil : buffer
      return PluginBytes(buffer: message)
    }

    var hasPartialMessage: Bool { self.bufferedBytes > 0 }

    /// The bytes held of a message that has not all arrived.
    var bufferedBytes: Int { self.pending?.readableBytes ?? 0 }
  }
}
