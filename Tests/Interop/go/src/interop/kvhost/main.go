// Command go-kv-host is a go-plugin 1.0.1 host that launches a KV plugin,
// exercises it, kills it and prints one JSON object describing what happened.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"interop/kvshared"
	"interop/peer"
	kvproto "kvbench/proto"
)

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

func (r *result) SetError(err string) { r.Error = err }

func main() {
	pluginCmd := flag.String("plugin", "", "plugin command line, split on spaces")
	calls := flag.Int("calls", 0, "number of sequential Get calls to time")
	valueSize := flag.Int("value-size", 0, "if > 0, the timed calls Get a value of this many bytes instead of \"greeting\"")
	autoMTLS := flag.Bool("automtls", false, "set ClientConfig.AutoMTLS")
	flag.Parse()

	res := &result{Calls: *calls, ValueSize: *valueSize}
	host, err := peer.NewHost("go-kv-host", *pluginCmd, kvshared.Plugins(nil), *autoMTLS)
	if err != nil {
		peer.Finish(res, err)
	}
	peer.FinishOnSignal(func() peer.Result { return &result{Calls: *calls, ValueSize: *valueSize} })

	err = run(host, res, *calls, *valueSize)
	res.Graceful, res.ExitedWithError = host.Kill()
	if err == nil && !res.Graceful {
		err = errors.New("plugin did not exit gracefully after Kill")
	}
	if err == nil && res.ExitedWithError {
		err = errors.New("plugin process exited with an error")
	}
	peer.Finish(res, err)
}

func run(host *peer.Host, res *result, calls, valueSize int) error {
	rpc, err := host.Client.Client()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	res.Protocol = string(host.Client.Protocol())
	res.NegotiatedVersion = host.Client.NegotiatedVersion()

	raw, err := rpc.Dispense(kvshared.Name)
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
	ctx, cancel := context.WithTimeout(context.Background(), peer.RPCTimeout)
	defer cancel()
	_, err := kv.Put(ctx, &kvproto.PutRequest{Key: key, Value: value})
	return err
}

func get(kv kvproto.KVClient, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), peer.RPCTimeout)
	defer cancel()
	resp, err := kv.Get(ctx, &kvproto.GetRequest{Key: key})
	if err != nil {
		return nil, err
	}
	return resp.Value, nil
}

func upload(kv kvproto.KVClient, sizes ...int) (*kvproto.Count, error) {
	ctx, cancel := context.WithTimeout(context.Background(), peer.RPCTimeout)
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
