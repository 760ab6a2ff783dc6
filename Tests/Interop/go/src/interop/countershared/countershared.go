// Package countershared is the go-plugin contract of the counter peers: the
// Counter service of Protos/counter/counter.proto under the plugin name
// "counter", whose Put calls back the host's AddHelper through the GRPCBroker.
package countershared

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	counterproto "counter/proto"
)

// Name is the plugin name counter is served and dispensed under.
const Name = "counter"

// Client is what a host's Dispense(Name) gives: the Counter client and the
// host side of the broker, through which it serves AddHelper.
type Client struct {
	counterproto.CounterClient
	Broker *plugin.GRPCBroker
}

// Plugins is the plugin set of a plugin, which serves what newServer makes
// from the plugin side of the broker, or with newServer nil of a host.
func Plugins(newServer func(*plugin.GRPCBroker) counterproto.CounterServer) plugin.PluginSet {
	return plugin.PluginSet{Name: &counterPlugin{newServer: newServer}}
}

// counterPlugin is the gRPC-only plugin.Plugin for counter.
type counterPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	newServer func(*plugin.GRPCBroker) counterproto.CounterServer
}

func (p *counterPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	if p.newServer == nil {
		return errors.New("no counter implementation to serve")
	}
	counterproto.RegisterCounterServer(s, p.newServer(broker))
	return nil
}

func (p *counterPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &Client{CounterClient: counterproto.NewCounterClient(c), Broker: broker}, nil
}
