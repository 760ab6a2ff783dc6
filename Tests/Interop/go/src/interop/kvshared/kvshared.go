// Package kvshared is the go-plugin contract of the kv peers: the KV service
// of Protos/kvbench/kv.proto under the plugin name "kv".
package kvshared

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	kvproto "kvbench/proto"
)

// Name is the plugin name kv is served and dispensed under.
const Name = "kv"

// Plugins is the plugin set of a plugin serving impl, or with impl nil of a
// host, whose Dispense(Name) gives a kvproto.KVClient.
func Plugins(impl kvproto.KVServer) plugin.PluginSet {
	return plugin.PluginSet{Name: &kvPlugin{impl: impl}}
}

// kvPlugin is the gRPC-only plugin.Plugin for kv.
type kvPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl kvproto.KVServer
}

func (p *kvPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.impl == nil {
		return errors.New("no kv implementation to serve")
	}
	kvproto.RegisterKVServer(s, p.impl)
	return nil
}

func (p *kvPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return kvproto.NewKVClient(c), nil
}
