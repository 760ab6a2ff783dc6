// Command go-counter-plugin is a go-plugin 1.0.1 gRPC plugin serving the
// counter Counter service under the name "counter". On Put it dials the host's
// AddHelper through the GRPCBroker (the bidirectional case). Hosts under test
// (Swift or Go) launch it.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	counterproto "counter/proto"
	"interop/countershared"
	"interop/peer"
)

// sumTimeout bounds the Sum call to the host, so a host that never serves
// AddHelper cannot wedge a Put. broker.Dial has its own 5 s wait for the
// connection info.
const sumTimeout = 10 * time.Second

// counter is the in-memory Counter implementation. broker is the plugin
// side of go-plugin's GRPCBroker, handed to GRPCServer.
type counter struct {
	broker *plugin.GRPCBroker
	logger hclog.Logger

	// putMu serialises Puts so concurrent Puts of one key add up; mu guards
	// m alone, so Gets are not held up by a Put's call to the host.
	putMu sync.Mutex
	mu    sync.Mutex
	m     map[string]int64
}

func (c *counter) load(key string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

// Get returns 0 for a missing key rather than an error.
func (c *counter) Get(_ context.Context, req *counterproto.GetRequest) (*counterproto.GetResponse, error) {
	return &counterproto.GetResponse{Value: c.load(req.Key)}, nil
}

// Put asks the host's AddHelper, served under broker ID add_server, for the
// sum of what key holds and value, and stores it.
func (c *counter) Put(ctx context.Context, req *counterproto.PutRequest) (*counterproto.Empty, error) {
	c.putMu.Lock()
	defer c.putMu.Unlock()

	conn, err := c.broker.Dial(req.AddServer)
	if err != nil {
		return nil, fmt.Errorf("dial add_server %d: %w", req.AddServer, err)
	}
	defer conn.Close()

	current := c.load(req.Key)
	ctx, cancel := context.WithTimeout(ctx, sumTimeout)
	defer cancel()
	resp, err := counterproto.NewAddHelperClient(conn).Sum(ctx, &counterproto.SumRequest{A: current, B: req.Value})
	if err != nil {
		return nil, fmt.Errorf("sum via add_server %d: %w", req.AddServer, err)
	}
	c.logger.Debug("put", "key", req.Key, "add_server", req.AddServer, "old", current, "new", resp.R)

	c.mu.Lock()
	c.m[req.Key] = resp.R
	c.mu.Unlock()
	return &counterproto.Empty{}, nil
}

func main() {
	logger := peer.PluginLogger("go-counter-plugin")
	logger.Info("counter plugin starting", "pid", os.Getpid())
	peer.Serve(countershared.Plugins(func(broker *plugin.GRPCBroker) counterproto.CounterServer {
		return &counter{broker: broker, logger: logger, m: map[string]int64{}}
	}), logger)
}
