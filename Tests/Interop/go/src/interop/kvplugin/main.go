// Command go-kv-plugin is a go-plugin 1.0.1 gRPC plugin serving the kvbench KV
// service under the name "kv". Hosts under test (Swift or Go) launch it.
package main

import (
	"context"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"interop/kvshared"
	"interop/peer"
	kvproto "kvbench/proto"
)

// store is the in-memory KV implementation.
type store struct {
	mu sync.Mutex
	m  map[string][]byte
	// crashEvery, from KV_CRASH_EVERY, makes every crashEvery-th Get or Put exit
	// the process with status 3 (for the supervision measurements); 0 never does.
	crashEvery, calls int
}

// realStderr is the process's stderr, which go-plugin's Serve swaps for a pipe
// that it forwards over GRPCStdio and that a crash loses.
var realStderr = os.Stderr

// count exits the process on every crashEvery-th call; s.mu is held.
func (s *store) count() {
	s.calls++
	if s.crashEvery > 0 && s.calls%s.crashEvery == 0 {
		realStderr.WriteString("crashing at call " + strconv.Itoa(s.calls) + "\n")
		os.Exit(3)
	}
}

// deadlineKey is a Get that reports the call's own deadline instead of a value:
// the milliseconds left when the call arrived, or "none", so that a host can see
// the grpc-timeout it sent as grpc-go read it.
const deadlineKey = "\x00deadline"

// Get returns an empty value for a missing key rather than an error.
func (s *store) Get(ctx context.Context, req *kvproto.GetRequest) (*kvproto.GetResponse, error) {
	if req.Key == deadlineKey {
		deadline, ok := ctx.Deadline()
		if !ok {
			return &kvproto.GetResponse{Value: []byte("none")}, nil
		}
		left := time.Until(deadline).Milliseconds()
		return &kvproto.GetResponse{Value: []byte(strconv.FormatInt(left, 10))}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count()
	return &kvproto.GetResponse{Value: s.m[req.Key]}, nil
}

func (s *store) Put(_ context.Context, req *kvproto.PutRequest) (*kvproto.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count()
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

func main() {
	logger := peer.PluginLogger("go-kv-plugin")
	logger.Info("kv plugin starting", "pid", os.Getpid())
	crashEvery, _ := strconv.Atoi(os.Getenv("KV_CRASH_EVERY"))
	peer.Serve(kvshared.Plugins(&store{m: map[string][]byte{}, crashEvery: crashEvery}), logger)
}
