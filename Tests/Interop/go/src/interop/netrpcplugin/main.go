// Command go-netrpc-plugin is a go-plugin 1.0.1 plugin serving greeter, kv and
// callback (interop/netrpcshared) over net/rpc. With NETRPC_PLUGIN_NEGOTIATED=1
// it serves go-plugin's examples/negotiated shape instead: version 2 is that
// set over net/rpc, version 3 the gRPC kv of interop/kvshared, both over one
// in-memory store.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"

	"interop/kvshared"
	"interop/netrpcshared"
	"interop/peer"
	kvproto "kvbench/proto"
)

// greeter answers what go-plugin's examples/basic plugin answers.
type greeter struct{}

func (greeter) Greet() (string, error) { return "Hello!", nil }

// store is the in-memory KV both protocols share.
type store struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *store) Put(key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = value
	return nil
}

// Get of a missing key fails with "key not found: <key>", the contract's text.
func (s *store) Get(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	value, ok := s.m[key]
	if !ok {
		return nil, fmt.Errorf("key not found: %s", key)
	}
	return value, nil
}

// grpcStore serves the store as the kvbench KV service (version 3), where a
// missing key reads as an empty value, as go-kv-plugin answers.
type grpcStore struct{ s *store }

func (g grpcStore) Get(_ context.Context, req *kvproto.GetRequest) (*kvproto.GetResponse, error) {
	value, _ := g.s.Get(req.Key)
	return &kvproto.GetResponse{Value: value}, nil
}

func (g grpcStore) Put(_ context.Context, req *kvproto.PutRequest) (*kvproto.Empty, error) {
	return &kvproto.Empty{}, g.s.Put(req.Key, req.Value)
}

// Upload counts what it receives and drops it.
func (g grpcStore) Upload(stream kvproto.KV_UploadServer) error {
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

func main() {
	logger := peer.PluginLogger("go-netrpc-plugin")
	negotiated := os.Getenv("NETRPC_PLUGIN_NEGOTIATED") == "1"
	logger.Info("netrpc plugin starting", "pid", os.Getpid(), "negotiated", negotiated)
	kv := &store{m: map[string][]byte{}}
	netrpcSet := netrpcshared.Plugins(greeter{}, kv)
	config := &plugin.ServeConfig{HandshakeConfig: peer.Handshake, Logger: logger}
	if negotiated {
		// Serve picks the protocol per version from the set's plugins when
		// GRPCServer is set: net/rpc for 2 (no GRPCPlugin in it), gRPC for 3.
		// Plugins stays nil, so Handshake.ProtocolVersion adds no version 1.
		config.VersionedPlugins = map[int]plugin.PluginSet{
			2: netrpcSet,
			3: kvshared.Plugins(grpcStore{s: kv}),
		}
		config.GRPCServer = plugin.DefaultGRPCServer
	} else {
		config.Plugins = netrpcSet
	}
	plugin.Serve(config)
	// Serve returns as soon as the Control.Quit handler has run, before
	// net/rpc has written its reply; exiting at once loses the reply now and
	// then (2 of 8 runs here), and the host's Kill then takes the
	// "failed to exit gracefully" path (spec §4). Nothing in go-plugin 1.0.1
	// tells when the reply is out, so linger briefly: the host closes the
	// connection on the reply and kills us anyway if we outstay 2 s.
	time.Sleep(200 * time.Millisecond)
}
