/// Plugins by name, for one application protocol version.
public struct PluginSet: Sendable, ExpressibleByDictionaryLiteral {
  /// The plugins by the name a host dispenses them under.
  public var plugins: [String: any GRPCPlugin]

  /// A set from a dictionary of plugins by name.
  public init(_ plugins: [String: any GRPCPlugin]) {
    self.plugins = plugins
  }

  public init(dictionaryLiteral elements: (String, any GRPCPlugin)...) {
    self.plugins = Dictionary(elements, uniquingKeysWith: { _, last in last })
  }

  /// The plugin registered as `name`.
  public subscript(name: String) -> (any GRPCPlugin)? {
    self.plugins[name]
  }
}
