/// The plugin's half of version negotiation (spec §1.4): the highest version both sides know,
/// or, when there is none, the plugin's lowest, so that the host reports the mismatch.
enum VersionNegotiation {
  /// Parses `PLUGIN_PROTOCOL_VERSIONS` as go-plugin does: comma-separated, no trimming, bad
  /// items reported and skipped.
  static func parseHostVersions(
    _ value: String?,
    reportInvalid: (String) -> Void
  ) -> [Int] {
    // A host too old to send the variable offers nothing, and gets the lowest version; go-plugin
    // reads an empty value the same way.
    guard let value, !value.isEmpty else { return [] }
    var versions: [Int] = []
    for item in value.split(separator: ",", omittingEmptySubsequences: false) {
      if let version = Int(item) {
        versions.append(version)
      } else {
        reportInvalid(String(item))
      }
    }
    return versions
  }

  /// Chooses the version to serve, or `nil` when the plugin has no versions at all.
  static func choose(pluginVersions: some Collection<Int>, hostVersions: [Int]) -> Int? {
    let descending = pluginVersions.sorted(by: >)
    return descending.first(where: hostVersions.contains) ?? descending.last
  }
}
