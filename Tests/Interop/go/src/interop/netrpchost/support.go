package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"

	"interop/peer"
	kvproto "kvbench/proto"
)

// watchdog ends the host when a step makes no progress for peer.RPCTimeout:
// net/rpc calls have no deadline of their own, and a per-call timer would
// weigh on the timed Gets.
type watchdog struct {
	progress uint64 // atomic; every step and timed call adds one
	mu       sync.Mutex
	current  string
}

func newWatchdog(fresh func() peer.Result) *watchdog {
	w := &watchdog{current: "launch"}
	go func() {
		last := atomic.LoadUint64(&w.progress)
		for range time.Tick(peer.RPCTimeout) {
			now := atomic.LoadUint64(&w.progress)
			if now == last {
				w.mu.Lock()
				step := w.current
				w.mu.Unlock()
				plugin.CleanupClients()
				peer.Finish(fresh(), fmt.Errorf("%s: no progress in %v", step, peer.RPCTimeout))
			}
			last = now
		}
	}()
	return w
}

// step names what the host does next, for the watchdog's error.
func (w *watchdog) step(name string) {
	w.mu.Lock()
	w.current = name
	w.mu.Unlock()
	w.tick()
}

func (w *watchdog) tick() { atomic.AddUint64(&w.progress, 1) }

// grpcPutGet Puts key = value on a dispensed gRPC kv and reads it back.
func grpcPutGet(raw interface{}, key, value string) (string, error) {
	kv, ok := raw.(kvproto.KVClient)
	if !ok {
		return "", fmt.Errorf("dispensed kv is %T, not a gRPC KV client", raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), peer.RPCTimeout)
	defer cancel()
	if _, err := kv.Put(ctx, &kvproto.PutRequest{Key: key, Value: []byte(value)}); err != nil {
		return "", fmt.Errorf("gRPC put %s: %w", key, err)
	}
	resp, err := kv.Get(ctx, &kvproto.GetRequest{Key: key})
	if err != nil {
		return "", fmt.Errorf("gRPC get %s: %w", key, err)
	}
	if string(resp.Value) != value {
		return string(resp.Value), fmt.Errorf("gRPC get %s returned %q, want %q", key, resp.Value, value)
	}
	return string(resp.Value), nil
}
