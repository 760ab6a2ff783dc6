// Command go-reattach-host is a go-plugin 1.0.1 host that reattaches to a running KV plugin
// (ClientConfig.Reattach) instead of launching one, puts and gets a value, and either leaves
// the plugin running or, with -kill, stops it; it prints one JSON object.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"interop/kvshared"
	"interop/peer"
	kvproto "kvbench/proto"
)

type result struct {
	Pid      int    `json:"pid"`
	Protocol string `json:"protocol"`
	Get      string `json:"get"`
	Found    bool   `json:"found"`
	Killed   bool   `json:"killed"`
	Graceful bool   `json:"graceful"`
	Exited   bool   `json:"exited"`
	Error    string `json:"error,omitempty"`
}

func (r *result) SetError(err string) { r.Error = err }

func main() {
	reattachJSON := flag.String("reattach", os.Getenv("PLUGIN_REATTACH"), "the reattach JSON (default $PLUGIN_REATTACH)")
	put := flag.String("put", "", "KEY=VALUE to store first")
	get := flag.String("get", "", "KEY to read")
	kill := flag.Bool("kill", false, "stop the plugin (Client.Kill) instead of leaving it running")
	flag.Parse()

	res := &result{}
	reattach, parsed, err := peer.ParseReattach(*reattachJSON)
	if err != nil {
		peer.Finish(res, err)
	}
	res.Pid = parsed.Pid
	host := peer.NewReattachHost("go-reattach-host", reattach, kvshared.Plugins(nil))
	err = run(host, res, *put, *get)
	if *kill {
		res.Killed = true
		res.Graceful, _ = host.Kill()
		res.Exited = host.Client.Exited()
		if err == nil && !res.Graceful {
			err = errors.New("plugin did not exit gracefully after Kill")
		}
	}
	// Without -kill the host just exits: the plugin keeps running.
	peer.Finish(res, err)
}

func run(host *peer.Host, res *result, put, get string) error {
	rpc, err := host.Client.Client()
	if err != nil {
		return fmt.Errorf("reattach: %w", err)
	}
	res.Protocol = string(host.Client.Protocol())
	raw, err := rpc.Dispense(kvshared.Name)
	if err != nil {
		return fmt.Errorf("dispense: %w", err)
	}
	kv := raw.(kvproto.KVClient)
	ctx, cancel := context.WithTimeout(context.Background(), peer.RPCTimeout)
	defer cancel()
	if put != "" {
		kvPair := strings.SplitN(put, "=", 2)
		if len(kvPair) != 2 {
			return errors.New("-put needs KEY=VALUE")
		}
		if _, err := kv.Put(ctx, &kvproto.PutRequest{Key: kvPair[0], Value: []byte(kvPair[1])}); err != nil {
			return fmt.Errorf("put: %w", err)
		}
	}
	if get != "" {
		resp, err := kv.Get(ctx, &kvproto.GetRequest{Key: get})
		if err != nil {
			return fmt.Errorf("get: %w", err)
		}
		res.Get, res.Found = string(resp.Value), true
	}
	return rpc.Ping()
}
