// Package netrpcshared is the go-plugin contract of the net/rpc peers: three
// plugins served over go-plugin's net/rpc protocol, each as the net/rpc
// service "Plugin" on the stream Dispense brokers. The Swift host (greeter)
// and plugin (greeter-plugin) speak the same shapes, so every argument and
// reply type here is part of the contract (gob matches struct fields by name).
package netrpcshared

import (
	"errors"
	"net/rpc"

	"github.com/hashicorp/go-plugin"
)

// The plugin names the set is served and dispensed under.
const (
	GreeterName  = "greeter"
	KVName       = "kv"
	CallbackName = "callback"
)

// Greeter is go-plugin's examples/basic interface, with the error net/rpc
// can fail with made visible.
type Greeter interface {
	Greet() (string, error)
}

// KV is the interface of go-plugin's examples/grpc, here over net/rpc.
type KV interface {
	Put(key string, value []byte) error
	Get(key string) ([]byte, error)
}

// Plugins is the set of a plugin serving greeter and kv (the callback plugin
// has no implementation to inject: its behaviour is all contract), or, with
// both nil, of a host, whose Dispense gives a *GreeterClient, a *KVClient and
// a *CallbackClient.
func Plugins(greeter Greeter, kv KV) plugin.PluginSet {
	return plugin.PluginSet{
		GreeterName:  &greeterPlugin{impl: greeter},
		KVName:       &kvPlugin{impl: kv},
		CallbackName: &callbackPlugin{},
	}
}

// errNoImpl is what Dispense reports for a plugin set made for a host.
var errNoImpl = errors.New("no implementation to serve")

// greeterPlugin is the plugin.Plugin of greeter.
type greeterPlugin struct{ impl Greeter }

func (p *greeterPlugin) Server(*plugin.MuxBroker) (interface{}, error) {
	if p.impl == nil {
		return nil, errNoImpl
	}
	return &GreeterServer{impl: p.impl}, nil
}

func (p *greeterPlugin) Client(_ *plugin.MuxBroker, c *rpc.Client) (interface{}, error) {
	return &GreeterClient{client: c}, nil
}

// GreeterServer is the net/rpc receiver of Plugin.Greet.
type GreeterServer struct{ impl Greeter }

// Greet ignores its argument, which hosts send as new(interface{}) as
// go-plugin's example does.
func (s *GreeterServer) Greet(_ interface{}, resp *string) error {
	greeting, err := s.impl.Greet()
	*resp = greeting
	return err
}

// GreeterClient calls Plugin.Greet.
type GreeterClient struct{ client *rpc.Client }

// Greet sends a pointer to a nil interface, exactly what go-plugin's
// example host puts on the wire.
func (c *GreeterClient) Greet() (string, error) {
	var resp string
	err := c.client.Call("Plugin.Greet", new(interface{}), &resp)
	return resp, err
}
