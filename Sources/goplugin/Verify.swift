import ArgumentParser
import GoPlugin

struct Verify: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Check that plugins are signed by an allowed key, as a host's PluginTrust does.",
    discussion: """
      Each PLUGIN's signature is read from PLUGIN.sig, made with OpenSSH:

        ssh-keygen -Y sign -n goplugin -f ~/.ssh/id_ed25519 ./my-plugin

      and checked against an allowed-signers file in OpenSSH's format (ssh-keygen(1), \
      ALLOWED SIGNERS), such as `alice@example.com namespaces="goplugin" ssh-ed25519 AAAA…`. \
      One line is printed per plugin; the exit status is 0 only when every plugin is signed \
      by an allowed key.
      """
  )

  @Option(
    help: ArgumentHelp("The keys allowed to sign plugins, in OpenSSH's allowed-signers format.", valueName: "FILE"),
    completion: .file()
  )
  var allowedSigners: String

  @Option(help: "The namespace the signatures must have been made for (ssh-keygen -Y sign -n).")
  var namespace: String = PluginSignatureRequirement.defaultNamespace

  @Argument(help: ArgumentHelp("The plugin executables to check.", valueName: "PLUGIN"), completion: .file())
  var plugins: [String] = []

  func validate() throws {
    guard !self.plugins.isEmpty else { throw ValidationError("Missing the plugins to verify.") }
    guard !self.namespace.isEmpty else { throw ValidationError("--namespace must not be empty.") }
  }

  func run() async throws {
    let signers: AllowedSigners
    do {
      signers = try AllowedSigners(contentsOf: self.allowedSigners)
    } catch {
      throw CLIError(code: .unreadable, message: error.message)
    }
    let trust = PluginTrust(signatures: PluginSignatureRequirement(allowedSigners: signers, namespace: self.namespace))
    var allSigned = true
    for plugin in self.plugins {
      do {
        let trusted = try trust.check(path: plugin)
        let signer = trusted.signer.map {
          "signed by \($0.principals) with \($0.key.algorithmName) key \($0.key.fingerprint)"
        }
        print("\(plugin): ok, \(signer ?? "not signed")")
      } catch {
        allSigned = false
        let reason = (error.cause as? PluginTrustRefusal).map(String.init(describing:)) ?? error.message
        print("\(plugin): refused: \(reason)")
      }
    }
    if !allSigned { throw ExitCode.failure }
  }
}
