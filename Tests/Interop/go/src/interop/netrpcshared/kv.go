package netrpcshared

import (
	"fmt"
	"net/rpc"

	"github.com/hashicorp/go-plugin"
)

// kvPlugin is the plugin.Plugin of kv.
type kvPlugin struct{ impl KV }

func (p *kvPlugin) Server(*plugin.MuxBroker) (interface{}, error) {
	if p.impl == nil {
		return nil, errNoImpl
	}
	return &KVServer{impl: p.impl}, nil
}

func (p *kvPlugin) Client(_ *plugin.MuxBroker, c *rpc.Client) (interface{}, error) {
	return &KVClient{client: c}, nil
}

// KVServer is the net/rpc receiver of Plugin.Put and Plugin.Get.
type KVServer struct{ impl KV }

// Put takes the examples' untyped map, {"key": string, "value": []byte}
// (gob carries the two as interface values of its pre-registered basic
// types), and replies nothing.
func (s *KVServer) Put(args map[string]interface{}, _ *interface{}) error {
	key, ok := args["key"].(string)
	if !ok {
		return fmt.Errorf("put: \"key\" is %T, want string", args["key"])
	}
	value, ok := args["value"].([]byte)
	if !ok {
		return fmt.Errorf("put: \"value\" is %T, want []byte", args["value"])
	}
	return s.impl.Put(key, value)
}

func (s *KVServer) Get(key string, resp *[]byte) error {
	value, err := s.impl.Get(key)
	*resp = value
	return err
}

// KVClient calls Plugin.Put and Plugin.Get; it is safe for concurrent use,
// as net/rpc clients are.
type KVClient struct{ client *rpc.Client }

func (c *KVClient) Put(key string, value []byte) error {
	var resp interface{}
	return c.client.Call("Plugin.Put", map[string]interface{}{"key": key, "value": value}, &resp)
}

// Get returns the plugin's error text as is, e.g. "key not found: <key>".
func (c *KVClient) Get(key string) ([]byte, error) {
	var resp []byte
	err := c.client.Call("Plugin.Get", key, &resp)
	return resp, err
}
