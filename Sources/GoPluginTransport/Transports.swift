/// The sizes and times every plugin connection is set up with. GoPlugin extends this type with
/// the factory that turns handshake addresses and listeners into transports.
package enum Transports {
  /// go-plugin hosts accept messages up to 2 GiB; so do we, by default, in both directions.
  package static let defaultMaxMessageSize = Int(Int32.max)
  /// The HTTP/2 receive window each side grants. grpc-swift's default, 64 KiB, caps a stream at
  /// one window per round trip (about 80 MiB/s over a unix socket, far less when the round trip
  /// crosses yamux and TLS); 8 MiB keeps a local pipe full.
  package static let windowSize = 8 << 20
  /// Shared by all of a connection's streams, so room for two of them at full speed.
  package static let connectionWindowSize = 16 << 20
  /// How long a connection may take from dialling to the peer's HTTP/2 SETTINGS (TLS included)
  /// where no start timeout says otherwise: brokered connections and reattached plugins.
  package static let setupTimeout: Duration = .seconds(10)
}
