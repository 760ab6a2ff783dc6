// Package peer holds what the interop hosts and plugins share: go-plugin's
// handshake, a plugin's logger and Serve, and a host's client, log and exit.
package peer

import (
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// Handshake is the handshake every interop peer, Go or Swift, uses.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "BASIC_PLUGIN",
	MagicCookieValue: "hello",
}

// RPCTimeout bounds every single RPC a host makes, so a wedged plugin cannot
// hang it.
const RPCTimeout = 10 * time.Second

// PluginLogger logs hclog JSON lines from Trace up to stderr, where the host
// picks them up.
func PluginLogger(name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      hclog.Trace,
		Output:     os.Stderr,
		JSONFormat: true,
	})
}

// Serve serves plugins over gRPC with Handshake until the host is done.
func Serve(plugins plugin.PluginSet, logger hclog.Logger) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugins,
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          logger,
	})
}
