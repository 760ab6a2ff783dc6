// Command go-reflection-kv-plugin is go-kv-plugin (Tests/Interop) on a gRPC server that also
// serves grpc.reflection.v1alpha.ServerReflection, as go-plugin servers newer than 1.0.1 do,
// so that goplugin inspect's tests can list a Go plugin's services through reflection. It is
// built by the tests, in the GOPATH that Tests/Interop/build.sh makes.
package main

import (
	"context"
	"os"
	"sync"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"

	"interop/kvshared"
	"interop/peer"
	kvproto "kvbench/proto"
)

// store is an in-memory KV; Upload is left unimplemented.
type store struct {
	kvproto.UnimplementedKVServer
	mu sync.Mutex
	m  map[string][]byte
}

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

func main() {
	logger := peer.PluginLogger("go-reflection-kv-plugin")
	logger.Info("kv plugin with reflection starting", "pid", os.Getpid())
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: peer.Handshake,
		Plugins:         kvshared.Plugins(&store{m: map[string][]byte{}}),
		GRPCServer: func(options []grpc.ServerOption) *grpc.Server {
			server := plugin.DefaultGRPCServer(options)
			reflection.Register(server)
			return server
		},
		Logger: logger,
	})
}
