// Command go-netrpc-host is a go-plugin 1.0.1 host for the net/rpc contract of
// interop/netrpcshared: it launches a plugin, exercises greeter, kv and
// callback (the MuxBroker both ways, stdout and stderr), optionally times kv
// Gets, pings, kills the plugin and prints one JSON line.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"

	"interop/kvshared"
	"interop/netrpcshared"
	"interop/peer"
)

// result is the JSON contract documented in Tests/Interop/README.md.
type result struct {
	Protocol          string  `json:"protocol"`
	NegotiatedVersion int     `json:"negotiatedVersion"`
	Greeting          string  `json:"greeting"`
	Get               string  `json:"get"`
	MissingKeyError   string  `json:"missingKeyError"`
	Relay             string  `json:"relay"`
	Offer             string  `json:"offer"`
	Stdout            string  `json:"stdout"`
	Stderr            string  `json:"stderr"`
	Ping              bool    `json:"ping"`
	Graceful          bool    `json:"graceful"`
	Calls             int     `json:"calls"`
	Concurrency       int     `json:"concurrency"`
	P50Micros         float64 `json:"p50Micros"`
	P99Micros         float64 `json:"p99Micros"`
	CallsPerSecond    float64 `json:"callsPerSecond"`
	Error             string  `json:"error"`
}

func (r *result) SetError(err string) { r.Error = err }

// options are the command line's flags.
type options struct {
	plugin      string
	autoMTLS    bool
	calls       int
	concurrency int
	versions    []int
}

func main() {
	var o options
	var versions string
	flag.StringVar(&o.plugin, "plugin", "", "plugin command line, split on spaces")
	flag.BoolVar(&o.autoMTLS, "automtls", false, "set ClientConfig.AutoMTLS")
	flag.IntVar(&o.calls, "calls", 0, "number of kv Gets of a 16-byte value to time")
	flag.IntVar(&o.concurrency, "concurrency", 1, "goroutines sharing the one client for the timed Gets")
	flag.StringVar(&versions, "versions", "", "VersionedPlugins to offer, e.g. 2,3 (2: the net/rpc set, 3: gRPC kv)")
	flag.Parse()

	fresh := func() peer.Result { return &result{Calls: o.calls, Concurrency: o.concurrency} }
	res := fresh().(*result)
	if err := checkOptions(&o, versions); err != nil {
		peer.Finish(res, err)
	}
	host, err := peer.NewHostConfig("go-netrpc-host", o.plugin, clientConfig(o))
	if err != nil {
		peer.Finish(res, err)
	}
	peer.FinishOnSignal(fresh)
	watch := newWatchdog(func() { killProcess(host.Client) }, fresh)

	err = run(host, res, o, watch)
	if stalled := watch.Stalled(); stalled != nil {
		err = stalled
	}
	watch.step("kill")
	graceful, exitedWithError := host.Kill()
	res.Graceful = graceful
	if err == nil && !graceful {
		err = errors.New("plugin did not exit gracefully after Kill")
	}
	if err == nil && exitedWithError {
		err = errors.New("plugin process exited with an error")
	}
	peer.Finish(res, err)
}

// checkOptions checks the counts and parses -versions into o.
func checkOptions(o *options, text string) error {
	if o.calls < 0 || o.concurrency < 1 {
		return errors.New("-calls must be at least 0 and -concurrency at least 1")
	}
	if text == "" {
		return nil
	}
	for _, field := range strings.Split(text, ",") {
		v, err := strconv.Atoi(field)
		if err != nil || (v != 2 && v != 3) {
			return fmt.Errorf("-versions takes 2, 3 or 2,3, not %q", text)
		}
		o.versions = append(o.versions, v)
	}
	if o.calls > 0 {
		return errors.New("-calls times the net/rpc kv of protocol version 1; leave out -versions")
	}
	return nil
}

// Captured stdout and stderr of the plugin, as go-plugin forwards them.
var pluginStdout, pluginStderr lockedBuffer

// clientConfig is ProtocolVersion 1 with the net/rpc set over net/rpc only, or
// with -versions go-plugin's examples/negotiated host: no version 1, 2 the
// net/rpc set and 3 the gRPC kv, and so both protocols allowed.
func clientConfig(o options) plugin.ClientConfig {
	config := plugin.ClientConfig{
		HandshakeConfig:  peer.Handshake,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolNetRPC},
		AutoMTLS:         o.autoMTLS,
		SyncStdout:       &pluginStdout,
		SyncStderr:       &pluginStderr,
	}
	if len(o.versions) == 0 {
		config.Plugins = netrpcshared.Plugins(nil, nil)
		return config
	}
	config.ProtocolVersion = 0
	config.VersionedPlugins = map[int]plugin.PluginSet{}
	for _, v := range o.versions {
		if v == 2 {
			config.VersionedPlugins[v] = netrpcshared.Plugins(nil, nil)
		} else {
			config.VersionedPlugins[v] = kvshared.Plugins(nil)
		}
	}
	config.AllowedProtocols = append(config.AllowedProtocols, plugin.ProtocolGRPC)
	return config
}

func run(host *peer.Host, res *result, o options, watch *watchdog) error {
	watch.step(stepStart)
	client, err := host.Client.Client()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	res.Protocol = string(host.Client.Protocol())
	res.NegotiatedVersion = host.Client.NegotiatedVersion()

	if len(o.versions) > 0 {
		err = runNegotiated(client, res, watch)
	} else {
		err = runAll(client, res, watch)
	}
	if err != nil {
		return err
	}
	if o.calls > 0 {
		if err := bench(client, res, o, watch); err != nil {
			return err
		}
	}

	watch.step("ping")
	if err := client.Ping(); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	res.Ping = true
	return nil
}

// runNegotiated Greets over net/rpc if version 2 was negotiated, or Puts and
// Gets over gRPC if 3 was.
func runNegotiated(client plugin.ClientProtocol, res *result, watch *watchdog) error {
	switch {
	case res.NegotiatedVersion == 2 && res.Protocol == string(plugin.ProtocolNetRPC):
		return greet(client, res, watch)
	case res.NegotiatedVersion == 3 && res.Protocol == string(plugin.ProtocolGRPC):
		watch.step("dispense kv (gRPC)")
		raw, err := client.Dispense(kvshared.Name)
		if err != nil {
			return fmt.Errorf("dispense %s: %w", kvshared.Name, err)
		}
		watch.step("gRPC kv put and get")
		got, err := grpcPutGet(raw, "hello", "world")
		res.Get = got
		return err
	}
	return fmt.Errorf("negotiated version %d over %s; want 2 over netrpc or 3 over grpc",
		res.NegotiatedVersion, res.Protocol)
}

// runAll exercises the whole net/rpc set; the first failure is the error.
func runAll(client plugin.ClientProtocol, res *result, watch *watchdog) error {
	if err := greet(client, res, watch); err != nil {
		return err
	}
	if err := exerciseKV(client, res, watch); err != nil {
		return err
	}
	return exerciseCallback(client, res, watch)
}

func dispense(client plugin.ClientProtocol, name string, watch *watchdog) (interface{}, error) {
	watch.step("dispense " + name)
	raw, err := client.Dispense(name)
	if err != nil {
		return nil, fmt.Errorf("dispense %s: %w", name, err)
	}
	return raw, nil
}

func greet(client plugin.ClientProtocol, res *result, watch *watchdog) error {
	raw, err := dispense(client, netrpcshared.GreeterName, watch)
	if err != nil {
		return err
	}
	watch.step("greet")
	res.Greeting, err = raw.(*netrpcshared.GreeterClient).Greet()
	if err != nil {
		return fmt.Errorf("greet: %w", err)
	}
	return expect("greet", res.Greeting, "Hello!")
}

func exerciseKV(client plugin.ClientProtocol, res *result, watch *watchdog) error {
	raw, err := dispense(client, netrpcshared.KVName, watch)
	if err != nil {
		return err
	}
	kv := raw.(*netrpcshared.KVClient)
	watch.step("kv put")
	if err := kv.Put("hello", []byte("world")); err != nil {
		return fmt.Errorf("put hello: %w", err)
	}
	watch.step("kv get")
	value, err := kv.Get("hello")
	res.Get = string(value)
	if err != nil {
		return fmt.Errorf("get hello: %w", err)
	}
	if err := expect("get hello", res.Get, "world"); err != nil {
		return err
	}
	watch.step("kv get of a missing key")
	value, err = kv.Get("nope")
	if err == nil {
		return fmt.Errorf("get nope: returned %q, want the error \"key not found: nope\"", value)
	}
	res.MissingKeyError = err.Error()
	return expect("get nope error", res.MissingKeyError, "key not found: nope")
}

func exerciseCallback(client plugin.ClientProtocol, res *result, watch *watchdog) error {
	raw, err := dispense(client, netrpcshared.CallbackName, watch)
	if err != nil {
		return err
	}
	callback := raw.(*netrpcshared.CallbackClient)

	watch.step("relay")
	res.Relay, err = callback.Relay("hello")
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	if err := expect("relay", res.Relay, "relayed: HELLO"); err != nil {
		return err
	}

	watch.step("offer")
	echo, err := callback.Offer("echo: ")
	if err != nil {
		return fmt.Errorf("offer: %w", err)
	}
	watch.step("echo")
	res.Offer, err = echo.Echo("hi")
	echo.Close()
	if err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	if err := expect("offer echo", res.Offer, "echo: hi"); err != nil {
		return err
	}

	watch.step("print")
	printed, err := callback.Print("ping")
	if err != nil {
		return fmt.Errorf("print: %w", err)
	}
	if !printed {
		return errors.New("print answered false")
	}
	// The streams are copied apart from the RPC's reply, so the text may
	// arrive after it: poll, 5 s at most.
	watch.step("wait for the printed text")
	deadline := time.Now().Add(5 * time.Second)
	for {
		res.Stdout = strings.TrimSpace(pluginStdout.String())
		res.Stderr = strings.TrimSpace(pluginStderr.String())
		outOK := strings.Contains(res.Stdout, "stdout: ping")
		errOK := strings.Contains(res.Stderr, "stderr: ping")
		if outOK && errOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("print: within 5 s SyncStdout got %q (want \"stdout: ping\"), SyncStderr %q (want \"stderr: ping\")",
				res.Stdout, res.Stderr)
		}
		watch.tick()
		time.Sleep(10 * time.Millisecond)
	}
}

func expect(what, got, want string) error {
	if got != want {
		return fmt.Errorf("%s returned %q, want %q", what, got, want)
	}
	return nil
}

// lockedBuffer is written by go-plugin's stream copiers while run reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
