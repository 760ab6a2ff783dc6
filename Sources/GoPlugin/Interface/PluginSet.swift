/// What a ``PluginSet`` holds: a plugin described for one protocol or both, ``GRPCPlugin`` and
/// ``NetRPCPlugin``. Conform to those, not to this.
public protocol PluginDefinition: Sendable {}

/// Plugins by name, for one application protocol version.
///
/// A plugin process serves the set of the version it negotiated over gRPC if any plugin in it
/// is a ``GRPCPlugin``, and over net/rpc otherwise, as go-plugin's `Serve` decides; so the sets
/// of different versions may speak different protocols (go-plugin's `examples/negotiated`).
public struct PluginSet: Sendable, ExpressibleByDictionaryLiteral {
  /// The plugins by the name a host dispenses them under.
  public var plugins: [String: any PluginDefinition]

  /// A set from a dictionary of plugins by name.
  public init(_ plugins: [String: any PluginDefinition]) {
    self.plugins = plugins
  }

  public init(dictionaryLiteral elements: (String, any PluginDefinition)...) {
    self.plugins = Dictionary(elements, uniquingKeysWith: { _, last in last })
  }

  /// The plugin registered as `name`.
  public subscript(name: String) -> (any PluginDefinition)? {
    self.plugins[name]
  }

  /// The protocol a plugin serves this set over: gRPC when any plugin in it is a
  /// ``GRPCPlugin``, net/rpc when all are ``NetRPCPlugin``s only.
  public var servedProtocol: PluginProtocol {
    self.plugins.values.contains { $0 is any GRPCPlugin } || self.plugins.isEmpty ? .grpc : .netRPC
  }
}
