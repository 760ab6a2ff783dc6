package peer

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// ReattachJSON is a reattach configuration as Terraform reads TF_REATTACH_PROVIDERS and a
// Swift plugin in debug mode prints it. go-plugin 1.0.1's own ReattachConfig has only
// Protocol, Addr (an interface, which encoding/json cannot fill) and Pid.
type ReattachJSON struct {
	Protocol        string
	ProtocolVersion int
	Pid             int
	Test            bool
	Addr            struct {
		Network string
		String  string
	}
}

// ParseReattach reads the JSON into go-plugin 1.0.1's ReattachConfig.
func ParseReattach(text string) (*plugin.ReattachConfig, *ReattachJSON, error) {
	var r ReattachJSON
	if err := json.Unmarshal([]byte(text), &r); err != nil {
		return nil, nil, fmt.Errorf("reattach JSON: %w", err)
	}
	var addr net.Addr
	switch r.Addr.Network {
	case "unix":
		addr = &net.UnixAddr{Name: r.Addr.String, Net: "unix"}
	case "tcp":
		tcp, err := net.ResolveTCPAddr("tcp", r.Addr.String)
		if err != nil {
			return nil, nil, fmt.Errorf("reattach address: %w", err)
		}
		addr = tcp
	default:
		return nil, nil, fmt.Errorf("reattach address: unknown network %q", r.Addr.Network)
	}
	return &plugin.ReattachConfig{Protocol: plugin.Protocol(r.Protocol), Addr: addr, Pid: r.Pid}, &r, nil
}

// NewReattachHost makes a client that reattaches to a running plugin instead of launching
// one, logging at Debug as name.
func NewReattachHost(name string, reattach *plugin.ReattachConfig, plugins plugin.PluginSet) *Host {
	h := &Host{}
	h.Logger = hclog.New(&hclog.LoggerOptions{
		Name:   name,
		Level:  hclog.Debug,
		Output: io.MultiWriter(&h.logs, os.Stderr),
	})
	h.Client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          plugins,
		Reattach:         reattach,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           h.Logger,
	})
	return h
}
