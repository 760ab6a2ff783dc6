// Command go-counter-host is a go-plugin 1.0.1 host that launches a counter
// plugin, serves it AddHelper through the GRPCBroker for each Put, kills it
// and prints one JSON object describing what happened.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	counterproto "counter/proto"
)

var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "BASIC_PLUGIN",
	MagicCookieValue: "hello",
}

// rpcTimeout bounds every single RPC so a wedged plugin cannot hang the host.
const rpcTimeout = 10 * time.Second

// adder is the AddHelper the host serves to the plugin; sums counts the Sum
// calls it answered, over all the broker servers.
type adder struct {
	sums int64
}

func (a *adder) Sum(_ context.Context, req *counterproto.SumRequest) (*counterproto.SumResponse, error) {
	atomic.AddInt64(&a.sums, 1)
	return &counterproto.SumResponse{R: req.A + req.B}, nil
}

// counterClient is what Dispense("counter") gives: the Counter client and the
// host side of the broker, through which each Put serves AddHelper.
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

	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	_, err := c.counter.Put(ctx, &counterproto.PutRequest{AddServer: id, Key: key, Value: value})
	return err
}

func (c *counterClient) Get(key string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	resp, err := c.counter.Get(ctx, &counterproto.GetRequest{Key: key})
	if err != nil {
		return 0, err
	}
	return resp.Value, nil
}

type counterPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	adder  *adder
	logger hclog.Logger
}

func (counterPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("go-counter-host does not serve counter")
}

func (p counterPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &counterClient{
		counter: counterproto.NewCounterClient(c),
		broker:  broker,
		adder:   p.adder,
		logger:  p.logger,
	}, nil
}

// syncBuffer is written by go-plugin's goroutines while main may read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// result is the JSON contract documented in Tests/Interop/README.md.
type result struct {
	Value    int64  `json:"value"`
	Sums     int64  `json:"sums"`
	Graceful bool   `json:"graceful"`
	Error    string `json:"error,omitempty"`
}

func main() {
	pluginCmd := flag.String("plugin", "", "plugin command line, split on spaces")
	autoMTLS := flag.Bool("automtls", false, "set ClientConfig.AutoMTLS")
	flag.Parse()

	res := &result{}
	args := strings.Fields(*pluginCmd)
	if len(args) == 0 {
		finish(res, errors.New("-plugin is required"))
	}

	logs := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:   "go-counter-host",
		Level:  hclog.Debug,
		Output: io.MultiWriter(logs, os.Stderr),
	})

	add := &adder{}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake,
		Plugins:          plugin.PluginSet{"counter": counterPlugin{adder: add, logger: logger}},
		Cmd:              exec.Command(args[0], args[1:]...),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         *autoMTLS,
		Logger:           logger,
		Managed:          true,
	})

	// Kill the plugin if we are interrupted; go-plugin plugins ignore SIGINT.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		plugin.CleanupClients()
		finish(&result{}, fmt.Errorf("interrupted by %v", sig))
	}()

	counter, err := run(client, res)
	res.Sums = atomic.LoadInt64(&add.sums)
	client.Kill()

	// Kill closes the broker, which should end every AcceptAndServe.
	if counter != nil {
		done := make(chan struct{})
		go func() { counter.serving.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			logger.Warn("AcceptAndServe still running 2s after Kill")
		}
	}

	res.Graceful = !strings.Contains(logs.String(), "plugin failed to exit gracefully")
	if err == nil && !res.Graceful {
		err = errors.New("plugin did not exit gracefully after Kill")
	}
	finish(res, err)
}

// run returns the dispensed client, if it got that far, so main can wait for
// its broker servers.
func run(client *plugin.Client, res *result) (*counterClient, error) {
	rpc, err := client.Client()
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	raw, err := rpc.Dispense("counter")
	if err != nil {
		return nil, fmt.Errorf("dispense: %w", err)
	}
	counter := raw.(*counterClient)

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

// finishing is locked by the first finish and never unlocked, so a signal
// arriving while main finishes cannot print a second JSON line.
var finishing sync.Mutex

// finish prints the one JSON line and exits 0 on success, 1 on error.
func finish(res *result, err error) {
	finishing.Lock()
	code := 0
	if err != nil {
		res.Error = err.Error()
		code = 1
	}
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	os.Exit(code)
}
