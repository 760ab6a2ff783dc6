package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin"

	"interop/peer"
	kvproto "kvbench/proto"
)

// stepStart is the step go-plugin's Client() launches the plugin in.
const stepStart = "start"

// watchdog notices when no step and no timed call has finished for
// peer.RPCTimeout: net/rpc calls have no deadline of their own, and a per-call
// timer would weigh on the timed Gets.
type watchdog struct {
	progress uint64 // atomic; every step and timed call adds one
	mu       sync.Mutex
	current  string
	stalled  error
}

// newWatchdog calls kill once on a stall, which should make the hung call
// fail so that main finishes with Stalled as its error; if main has not
// finished 5 s later, the watchdog finishes with a fresh result itself.
func newWatchdog(kill func(), fresh func() peer.Result) *watchdog {
	w := &watchdog{current: stepStart}
	go func() {
		last := atomic.LoadUint64(&w.progress)
		for range time.Tick(peer.RPCTimeout) {
			now := atomic.LoadUint64(&w.progress)
			if now != last {
				last = now
				continue
			}
			w.mu.Lock()
			if w.current == stepStart {
				// go-plugin bounds the start itself (1 minute, then it kills the
				// process), and killProcess could not get the pid before then.
				w.mu.Unlock()
				continue
			}
			w.stalled = fmt.Errorf("%s: no progress in %v", w.current, peer.RPCTimeout)
			err := w.stalled
			w.mu.Unlock()
			go kill()
			time.Sleep(5 * time.Second)
			peer.Finish(fresh(), err)
		}
	}()
	return w
}

// Stalled is the stall the watchdog saw, or nil.
func (w *watchdog) Stalled() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stalled
}

// step names what the host does next, for the stall's error.
func (w *watchdog) step(name string) {
	w.mu.Lock()
	w.current = name
	w.mu.Unlock()
	w.tick()
}

func (w *watchdog) tick() { atomic.AddUint64(&w.progress, 1) }

// killProcess SIGKILLs the plugin of client, if it has started: go-plugin's
// own Kill first calls Control.Quit, which hangs on a plugin that does not
// answer.
func killProcess(client *plugin.Client) {
	if rc := client.ReattachConfig(); rc != nil && rc.Pid > 0 {
		syscall.Kill(rc.Pid, syscall.SIGKILL)
	}
}

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
