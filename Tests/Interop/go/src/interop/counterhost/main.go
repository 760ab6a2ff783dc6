// Command go-counter-host is a go-plugin 1.0.1 host that launches a counter
// plugin, serves it AddHelper through the GRPCBroker for each Put, kills it
// and prints one JSON object describing what happened.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	counterproto "counter/proto"
	"interop/countershared"
	"interop/peer"
)

// adder is the AddHelper the host serves to the plugin; sums counts the Sum
// calls it answered, over all the broker servers.
type adder struct {
	sums int64
}

func (a *adder) Sum(_ context.Context, req *counterproto.SumRequest) (*counterproto.SumResponse, error) {
	atomic.AddInt64(&a.sums, 1)
	return &counterproto.SumResponse{R: req.A + req.B}, nil
}

// counterClient is the Counter client and the host side of the broker, as
// Dispense("counter") gives them, through which each Put serves AddHelper.
type counterClient struct {
	counter counterproto.CounterClient
	broker  *plugin.GRPCBroker
	adder   *adder
	logger  hclog.Logger
	// serving counts AcceptAndServe goroutines still running.
	serving sync.WaitGroup
}

// Put serves AddHelper under a fresh broker ID, as go-plugin's bidirectional
// example does, and passes that ID to the plugin as add_server. The server is
// left to AcceptAndServe, which in go-plugin 1.0.1 only returns once the broker
// closes (on Kill).
func (c *counterClient) Put(key string, value int64) error {
	id := c.broker.NextId()
	c.serving.Add(1)
	go func() {
		defer c.serving.Done()
		c.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
			s := grpc.NewServer(opts...)
			counterproto.RegisterAddHelperServer(s, c.adder)
			return s
		})
		c.logger.Debug("AcceptAndServe returned", "id", id)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), peer.RPCTimeout)
	defer cancel()
	_, err := c.counter.Put(ctx, &counterproto.PutRequest{AddServer: id, Key: key, Value: value})
	return err
}

func (c *counterClient) Get(key string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), peer.RPCTimeout)
	defer cancel()
	resp, err := c.counter.Get(ctx, &counterproto.GetRequest{Key: key})
	if err != nil {
		return 0, err
	}
	return resp.Value, nil
}

// result is the JSON contract documented in Tests/Interop/README.md.
type result struct {
	Value    int64  `json:"value"`
	Sums     int64  `json:"sums"`
	Graceful bool   `json:"graceful"`
	Error    string `json:"error,omitempty"`
}

func (r *result) SetError(err string) { r.Error = err }

func main() {
	pluginCmd := flag.String("plugin", "", "plugin command line, split on spaces")
	autoMTLS := flag.Bool("automtls", false, "set ClientConfig.AutoMTLS")
	flag.Parse()

	res := &result{}
	host, err := peer.NewHost("go-counter-host", *pluginCmd, countershared.Plugins(nil), *autoMTLS)
	if err != nil {
		peer.Finish(res, err)
	}
	peer.FinishOnSignal(func() peer.Result { return &result{} })

	add := &adder{}
	counter, err := run(host, add, res)
	res.Sums = atomic.LoadInt64(&add.sums)
	res.Graceful, _ = host.Kill()

	// Kill closes the broker, which should end every AcceptAndServe.
	if counter != nil {
		done := make(chan struct{})
		go func() { counter.serving.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			host.Logger.Warn("AcceptAndServe still running 2s after Kill")
		}
	}

	if err == nil && !res.Graceful {
		err = errors.New("plugin did not exit gracefully after Kill")
	}
	peer.Finish(res, err)
}

// run returns the dispensed client, if it got that far, so main can wait for
// its broker servers.
func run(host *peer.Host, add *adder, res *result) (*counterClient, error) {
	rpc, err := host.Client.Client()
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	raw, err := rpc.Dispense(countershared.Name)
	if err != nil {
		return nil, fmt.Errorf("dispense: %w", err)
	}
	dispensed := raw.(*countershared.Client)
	counter := &counterClient{counter: dispensed.CounterClient, broker: dispensed.Broker, adder: add, logger: host.Logger}

	const key = "hits"
	for _, n := range []int64{1, 2, 39} {
		if err := counter.Put(key, n); err != nil {
			return counter, fmt.Errorf("put %s %d: %w", key, n, err)
		}
	}
	res.Value, err = counter.Get(key)
	if err != nil {
		return counter, fmt.Errorf("get %s: %w", key, err)
	}
	if res.Value != 42 {
		return counter, fmt.Errorf("get %s returned %d, want 42", key, res.Value)
	}
	if sums := atomic.LoadInt64(&counter.adder.sums); sums != 3 {
		return counter, fmt.Errorf("AddHelper served %d Sum calls, want 3", sums)
	}
	return counter, nil
}
