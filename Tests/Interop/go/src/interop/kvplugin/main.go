// Command go-kv-plugin is a go-plugin 1.0.1 gRPC plugin serving the kvbench KV
// service under the name "kv". Hosts under test (Swift or Go) launch it.
package main

import (
	"context"
	"io"
	"os"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	kvproto "kvbench/proto"
)

var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "BASIC_PLUGIN",
	MagicCookieValue: "hello",
}

// store is the in-memory KV implementation.
type store struct {
	mu sync.Mutex
	m  map[string][]byte
}

// Get returns an empty value for a missing key rather than an error.
func (s *store) Get(_ context.Context, req *kvproto.GetRequest) (*kvproto.GetResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &kvproto.GetResponse{Value: s.m[req.Key]}, nil
}

func (s *store) Put(_ context.Context, req *kvproto.PutRequest) (*kvproto.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[req.Key] = req.Value
	return &kvproto.Empty{}, nil
}

// Upload counts what it receives and throws the data away.
func (s *store) Upload(stream kvproto.KV_UploadServer) error {
	var count kvproto.Count
	for {
		chunk, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&count)
		}
		if err != nil {
			return err
		}
		count.Bytes += int64(len(chunk.Data))
		count.Chunks++
	}
}

// kvPlugin is the gRPC-only plugin.Plugin for "kv". Only the server half is
// used here; the host has its own copy.
type kvPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl kvproto.KVServer
}

func (p *kvPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	kvproto.RegisterKVServer(s, p.impl)
	return nil
}

func (p *kvPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return kvproto.NewKVClient(c), nil
}

func main() {
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "go-kv-plugin",
		Level:      hclog.Trace,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	logger.Info("kv plugin starting", "pid", os.Getpid())

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: handshake,
		Plugins: plugin.PluginSet{
			"kv": &kvPlugin{impl: &store{m: map[string][]byte{}}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
		Logger:     logger,
	})
}
