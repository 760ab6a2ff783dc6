// Command go-kv-host is a go-plugin 1.0.1 host that launches a KV plugin,
// exercises it, kills it and prints one JSON object describing what happened.
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
	"syscall"
	"time"

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

// rpcTimeout bounds every single RPC so a wedged plugin cannot hang the host.
const rpcTimeout = 10 * time.Second

type kvPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (kvPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("go-kv-host does not serve kv")
}

func (kvPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return kvproto.NewKVClient(c), nil
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
	Protocol          string  `json:"protocol"`
	NegotiatedVersion int     `json:"negotiatedVersion"`
	Get               string  `json:"get"`
	UploadBytes       int64   `json:"uploadBytes"`
	UploadChunks      int64   `json:"uploadChunks"`
	Calls             int     `json:"calls"`
	ValueSize         int     `json:"valueSize"`
	CallFailures      int     `json:"callFailures"`
	CallsPerSecond    float64 `json:"callsPerSecond"`
	Ping              bool    `json:"ping"`
	Graceful          bool    `json:"graceful"`
	ExitedWithError   bool    `json:"exitedWithError"`
	Error             string  `json:"error,omitempty"`
}

func main() {
	pluginCmd := flag.String("plugin", "", "plugin command line, split on spaces")
	calls := flag.Int("calls", 0, "number of sequential Get calls to time")
	valueSize := flag.Int("value-size", 0, "if > 0, the timed calls Get a value of this many bytes instead of \"greeting\"")
	autoMTLS := flag.Bool("automtls", false, "set ClientConfig.AutoMTLS")
	flag.Parse()

	res := &result{Calls: *calls, ValueSize: *valueSize}
	args := strings.Fields(*pluginCmd)
	if len(args) == 0 {
		finish(res, errors.New("-plugin is required"))
	}

	logs := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:   "go-kv-host",
		Level:  hclog.Debug,
		Output: io.MultiWriter(logs, os.Stderr),
	})

	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake,
		Plugins:          plugin.PluginSet{"kv": kvPlugin{}},
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
		finish(&result{Calls: *calls, ValueSize: *valueSize}, fmt.Errorf("interrupted by %v", sig))
	}()

	err := run(client, res, *calls, *valueSize)
	client.Kill()

	out := logs.String()
	res.Graceful = !strings.Contains(out, "plugin failed to exit gracefully")
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "plugin process exited") && strings.Contains(line, "error=") {
			res.ExitedWithError = true
		}
	}
	if err == nil && !res.Graceful {
		err = errors.New("plugin did not exit gracefully after Kill")
	}
	if err == nil && res.ExitedWithError {
		err = errors.New("plugin process exited with an error")
	}
	finish(res, err)
}

func run(client *plugin.Client, res *result, calls, valueSize int) error {
	rpc, err := client.Client()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	res.Protocol = string(client.Protocol())
	res.NegotiatedVersion = client.NegotiatedVersion()

	raw, err := rpc.Dispense("kv")
	if err != nil {
		return fmt.Errorf("dispense: %w", err)
	}
	kv := raw.(kvproto.KVClient)

	const greeting = "hello from go"
	if err := put(kv, "greeting", []byte(greeting)); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	got, err := get(kv, "greeting")
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	res.Get = string(got)
	if res.Get != greeting {
		return fmt.Errorf("get returned %q, want %q", res.Get, greeting)
	}

	count, err := upload(kv, 1000, 2000, 3000)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	res.UploadBytes, res.UploadChunks = count.Bytes, count.Chunks
	if count.Bytes != 6000 || count.Chunks != 3 {
		return fmt.Errorf("upload counted %d bytes in %d chunks, want 6000 in 3", count.Bytes, count.Chunks)
	}

	if calls > 0 {
		key, want := "greeting", []byte(greeting)
		if valueSize > 0 {
			key, want = "blob", make([]byte, valueSize)
			for i := range want {
				want[i] = byte(i)
			}
			if err := put(kv, key, want); err != nil {
				return fmt.Errorf("put %s: %w", key, err)
			}
		}
		start := time.Now()
		for i := 0; i < calls; i++ {
			if v, err := get(kv, key); err != nil || !bytes.Equal(v, want) {
				res.CallFailures++
			}
		}
		res.CallsPerSecond = float64(calls) / time.Since(start).Seconds()
		if res.CallFailures > 0 {
			return fmt.Errorf("%d of %d calls failed", res.CallFailures, calls)
		}
	}

	if err := rpc.Ping(); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	res.Ping = true
	return nil
}

func put(kv kvproto.KVClient, key string, value []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	_, err := kv.Put(ctx, &kvproto.PutRequest{Key: key, Value: value})
	return err
}

func get(kv kvproto.KVClient, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	resp, err := kv.Get(ctx, &kvproto.GetRequest{Key: key})
	if err != nil {
		return nil, err
	}
	return resp.Value, nil
}

func upload(kv kvproto.KVClient, sizes ...int) (*kvproto.Count, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	stream, err := kv.Upload(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range sizes {
		// io.EOF means the server ended the stream; CloseAndRecv has the reason.
		if err := stream.Send(&kvproto.Chunk{Data: make([]byte, n)}); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
	}
	return stream.CloseAndRecv()
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
