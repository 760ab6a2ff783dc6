// Command benchhost is the Go twin of plugin-bench: a go-plugin 1.0.1 host that runs the same
// workloads against any plugin serving kv.proto under the name "kv" and prints the same JSON
// object (or a table). Built in GOPATH mode by dev/bench.sh.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"interop/kvshared"
	"interop/peer"
	kvproto "kvbench/proto"
)

// result has the keys of plugin-bench's JSON object (Benchmarks/README.md).
type result struct {
	AutoMTLS                 bool    `json:"autoMTLS"`
	BulkMiB                  float64 `json:"bulkMiB"`
	CallFailures             int     `json:"callFailures"`
	Callers                  int     `json:"callers"`
	Calls                    int     `json:"calls"`
	ChunkKiB                 int     `json:"chunkKiB"`
	ConcurrentCalls          int     `json:"concurrentCalls"`
	ConcurrentCallsPerSecond float64 `json:"concurrentCallsPerSecond"`
	Error                    string  `json:"error,omitempty"`
	GetCallsPerSecond        float64 `json:"getCallsPerSecond"`
	GetP50Us                 float64 `json:"getP50Us"`
	GetP99Us                 float64 `json:"getP99Us"`
	Host                     string  `json:"host"`
	HostPeakRSSKiB           int     `json:"hostPeakRSSKiB"`
	Label                    string  `json:"label"`
	Launches                 int     `json:"launches"`
	Multiplex                bool    `json:"multiplex"`
	Plugin                   string  `json:"plugin"`
	PluginPeakRSSKiB         int     `json:"pluginPeakRSSKiB"`
	PutMiBPerSecond          float64 `json:"putMiBPerSecond"`
	StartMaxMs               float64 `json:"startMaxMs"`
	StartMedianMs            float64 `json:"startMedianMs"`
	StartMinMs               float64 `json:"startMinMs"`
	UploadMiBPerSecond       float64 `json:"uploadMiBPerSecond"`
	Warmup                   int     `json:"warmup"`
}

// params are the flags, the same as plugin-bench's.
type params struct {
	plugin          string
	launches        int
	calls           int
	warmup          int
	concurrentCalls int
	callers         int
	bulkBytes       int
	chunkBytes      int
	autoMTLS        bool
	verbose         bool
}

const valueSize = 16

// workloadTimeout bounds each workload, so that a wedged plugin cannot hang the harness.
const workloadTimeout = 10 * time.Minute

func main() {
	var p params
	label := flag.String("label", "go-host", "a name for this run, copied into the output")
	flag.StringVar(&p.plugin, "plugin", "", "the plugin's command line, split on spaces")
	flag.IntVar(&p.launches, "launches", 30, "launches timed from start to the first successful call")
	flag.IntVar(&p.calls, "calls", 20000, "sequential Get calls timed one by one")
	flag.IntVar(&p.warmup, "warmup", 2000, "sequential Get calls made before timing")
	flag.IntVar(&p.concurrentCalls, "concurrent-calls", 40000, "Get calls shared among the concurrent callers")
	flag.IntVar(&p.callers, "callers", 8, "concurrent callers on the one connection")
	bulkMiB := flag.Int("bulk-mib", 256, "MiB sent as Puts, and again through one Upload stream")
	chunkKiB := flag.Int("chunk-kib", 64, "size of each Put value and each Upload chunk")
	flag.BoolVar(&p.autoMTLS, "auto-mtls", false, "secure the connection with AutoMTLS certificates made per launch")
	asJSON := flag.Bool("json", false, "print one JSON object instead of a table")
	flag.BoolVar(&p.verbose, "verbose", false, "log go-plugin's debug output to stderr")
	flag.Parse()
	p.bulkBytes, p.chunkBytes = *bulkMiB*1024*1024, *chunkKiB*1024

	if p.plugin == "" || p.calls <= 0 || p.callers <= 0 || p.chunkBytes <= 0 || p.launches < 0 ||
		p.warmup < 0 || p.concurrentCalls < 0 || p.bulkBytes < 0 {
		fmt.Fprintln(os.Stderr, "benchhost: -plugin is required; -calls, -callers and -chunk-kib must be positive, the rest not negative")
		os.Exit(2)
	}

	res := &result{
		Label: *label, Host: "go", Plugin: p.plugin,
		Launches: p.launches, Calls: p.calls, Warmup: p.warmup,
		ConcurrentCalls: p.concurrentCalls, Callers: p.callers,
		BulkMiB: float64(p.bulkBytes) / (1 << 20), ChunkKiB: p.chunkBytes / 1024,
		AutoMTLS: p.autoMTLS,
	}
	// go-plugin plugins ignore SIGINT: kill them when the harness is interrupted, and print
	// a fresh result (main may be writing to its own) that says so.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func(fresh result) {
		sig := <-sigs
		finishing.Lock()
		plugin.CleanupClients()
		fresh.Error = fmt.Sprintf("interrupted by signal %d", sig.(syscall.Signal))
		write(&fresh, *asJSON)
		os.Exit(1)
	}(*res)

	err := run(&p, res)
	if err != nil {
		res.Error = err.Error()
	}
	finish(res, *asJSON)
	if err != nil {
		os.Exit(1)
	}
}

// finishing is locked by the first finish and never unlocked, so that a signal arriving while
// main finishes cannot print a second result.
var finishing sync.Mutex

// finish prints the result, unless a signal is being handled.
func finish(res *result, asJSON bool) {
	finishing.Lock()
	write(res, asJSON)
}

// write records the host's peak RSS and prints the result.
func write(res *result, asJSON bool) {
	res.HostPeakRSSKiB = ownPeakRSSKiB()
	if asJSON {
		line, _ := json.Marshal(res)
		fmt.Println(string(line))
	} else {
		fmt.Println(table(res))
	}
}

// newClient makes a go-plugin client for the plugin command line, gRPC only, with the interop
// peers' handshake and plugin set. It does not start the plugin.
func newClient(p *params) *plugin.Client {
	args := strings.Fields(p.plugin)
	level := hclog.Warn
	if p.verbose {
		level = hclog.Debug
	}
	return plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  peer.Handshake,
		Plugins:          kvshared.Plugins(nil),
		Cmd:              exec.Command(args[0], args[1:]...),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         p.autoMTLS,
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "benchhost", Level: level, Output: os.Stderr}),
		Managed:          true,
	})
}

// dispense starts the plugin (if it is not running) and returns its KV client.
func dispense(client *plugin.Client) (kvproto.KVClient, error) {
	rpc, err := client.Client()
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	raw, err := rpc.Dispense(kvshared.Name)
	if err != nil {
		return nil, fmt.Errorf("dispense: %w", err)
	}
	return raw.(kvproto.KVClient), nil
}

func run(p *params, res *result) error {
	// 1. Start to the first successful call, one new plugin per launch.
	starts := make([]time.Duration, 0, p.launches)
	for i := 0; i < p.launches; i++ {
		d, err := timeFirstCall(p)
		if err != nil {
			return fmt.Errorf("launch %d: %w", i+1, err)
		}
		starts = append(starts, d)
	}
	if len(starts) > 0 {
		sortDurations(starts)
		res.StartMedianMs = ms(percentile(starts, 50))
		res.StartMinMs = ms(starts[0])
		res.StartMaxMs = ms(starts[len(starts)-1])
	}

	// 2–5 on one plugin.
	client := newClient(p)
	defer client.Kill()
	kv, err := dispense(client)
	if err != nil {
		return err
	}
	if err := sequential(p, kv, res); err != nil {
		return fmt.Errorf("sequential: %w", err)
	}
	if err := concurrent(p, kv, res); err != nil {
		return fmt.Errorf("concurrent: %w", err)
	}
	if err := bulk(p, kv, res); err != nil {
		return fmt.Errorf("bulk: %w", err)
	}
	// Read before the plugin is killed: after that there is no process to ask.
	if rc := client.ReattachConfig(); rc != nil {
		res.PluginPeakRSSKiB = peakRSSKiB(rc.Pid)
	}
	return nil
}

func timeFirstCall(p *params) (time.Duration, error) {
	start := time.Now()
	client := newClient(p)
	defer client.Kill()
	kv, err := dispense(client)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), peer.RPCTimeout)
	defer cancel()
	if _, err := kv.Get(ctx, &kvproto.GetRequest{Key: "first"}); err != nil {
		return 0, fmt.Errorf("first call: %w", err)
	}
	return time.Since(start), nil
}

func sequential(p *params, kv kvproto.KVClient, res *result) error {
	ctx, cancel := context.WithTimeout(context.Background(), workloadTimeout)
	defer cancel()
	value := make([]byte, valueSize)
	for i := range value {
		value[i] = byte(i)
	}
	if _, err := kv.Put(ctx, &kvproto.PutRequest{Key: "k", Value: value}); err != nil {
		return err
	}
	req := &kvproto.GetRequest{Key: "k"}
	for i := 0; i < p.warmup; i++ {
		if _, err := kv.Get(ctx, req); err != nil {
			return err
		}
	}
	timings := make([]time.Duration, 0, p.calls)
	failures := 0
	start := time.Now()
	for i := 0; i < p.calls; i++ {
		before := time.Now()
		resp, err := kv.Get(ctx, req)
		timings = append(timings, time.Since(before))
		if err != nil {
			return err
		}
		if len(resp.Value) != valueSize {
			failures++
		}
	}
	elapsed := time.Since(start)
	sortDurations(timings)
	res.GetP50Us = us(percentile(timings, 50))
	res.GetP99Us = us(percentile(timings, 99))
	res.GetCallsPerSecond = float64(p.calls) / elapsed.Seconds()
	res.CallFailures += failures
	return nil
}

func concurrent(p *params, kv kvproto.KVClient, res *result) error {
	total := p.concurrentCalls
	if total == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), workloadTimeout)
	defer cancel()
	req := &kvproto.GetRequest{Key: "k"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	failures := 0
	start := time.Now()
	for caller := 0; caller < p.callers; caller++ {
		// The calls split as evenly as they go; the first callers take the remainder.
		share := total / p.callers
		if caller < total%p.callers {
			share++
		}
		wg.Add(1)
		go func(share int) {
			defer wg.Done()
			mine := 0
			var err error
			for i := 0; i < share; i++ {
				var resp *kvproto.GetResponse
				if resp, err = kv.Get(ctx, req); err != nil {
					break
				}
				if len(resp.Value) != valueSize {
					mine++
				}
			}
			mu.Lock()
			defer mu.Unlock()
			failures += mine
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}(share)
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	res.ConcurrentCallsPerSecond = float64(total) / time.Since(start).Seconds()
	res.CallFailures += failures
	return nil
}

func bulk(p *params, kv kvproto.KVClient, res *result) error {
	chunks := p.bulkBytes / p.chunkBytes
	if chunks == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), workloadTimeout)
	defer cancel()
	payload := make([]byte, p.chunkBytes)
	for i := range payload {
		payload[i] = byte(i)
	}
	mebibytes := float64(chunks*p.chunkBytes) / (1 << 20)

	// Puts overwrite one key, so the plugin holds one chunk, not the whole bulk.
	put := &kvproto.PutRequest{Key: "bulk", Value: payload}
	start := time.Now()
	for i := 0; i < chunks; i++ {
		if _, err := kv.Put(ctx, put); err != nil {
			return fmt.Errorf("put: %w", err)
		}
	}
	res.PutMiBPerSecond = mebibytes / time.Since(start).Seconds()

	chunk := &kvproto.Chunk{Data: payload}
	start = time.Now()
	stream, err := kv.Upload(ctx)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	for i := 0; i < chunks; i++ {
		// io.EOF means the server ended the stream; CloseAndRecv has the reason.
		if err := stream.Send(chunk); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("upload: %w", err)
		}
	}
	count, err := stream.CloseAndRecv()
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	res.UploadMiBPerSecond = mebibytes / time.Since(start).Seconds()
	if count.Bytes != int64(chunks*p.chunkBytes) || count.Chunks != int64(chunks) {
		return fmt.Errorf("upload: plugin counted %d bytes in %d chunks, sent %d in %d",
			count.Bytes, count.Chunks, chunks*p.chunkBytes, chunks)
	}
	return nil
}

// percentile is the nearest-rank percentile of an ascending slice, as plugin-bench computes it.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func sortDurations(d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
}

func ms(d time.Duration) float64 { return d.Seconds() * 1e3 }
func us(d time.Duration) float64 { return d.Seconds() * 1e6 }

// ownPeakRSSKiB is ru_maxrss of this process, in KiB on Linux.
func ownPeakRSSKiB() int {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return int(usage.Maxrss)
}

// peakRSSKiB is VmHWM of pid from /proc/<pid>/status, in KiB; 0 if it cannot be read.
func peakRSSKiB(pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) >= 2 && fields[0] == "VmHWM:" {
			n, _ := strconv.Atoi(fields[1])
			return n
		}
	}
	return 0
}

func table(r *result) string {
	rows := [][2]string{
		{fmt.Sprintf("start → first call, median of %d", r.Launches),
			fmt.Sprintf("%.2f ms (min %.2f, max %.2f)", r.StartMedianMs, r.StartMinMs, r.StartMaxMs)},
		{"sequential Get p50", fmt.Sprintf("%.1f µs", r.GetP50Us)},
		{"sequential Get p99", fmt.Sprintf("%.1f µs", r.GetP99Us)},
		{fmt.Sprintf("sequential Get (%d after %d)", r.Calls, r.Warmup), fmt.Sprintf("%.0f calls/s", r.GetCallsPerSecond)},
		{fmt.Sprintf("%d callers (%d Gets)", r.Callers, r.ConcurrentCalls), fmt.Sprintf("%.0f calls/s", r.ConcurrentCallsPerSecond)},
		{fmt.Sprintf("%.0f MiB as %d KiB Puts", r.BulkMiB, r.ChunkKiB), fmt.Sprintf("%.1f MiB/s", r.PutMiBPerSecond)},
		{fmt.Sprintf("%.0f MiB in one Upload stream", r.BulkMiB), fmt.Sprintf("%.1f MiB/s", r.UploadMiBPerSecond)},
		{"host peak RSS", fmt.Sprintf("%d MiB", r.HostPeakRSSKiB/1024)},
		{"plugin peak RSS", fmt.Sprintf("%d MiB", r.PluginPeakRSSKiB/1024)},
		{"call failures", strconv.Itoa(r.CallFailures)},
	}
	width := 0
	for _, row := range rows {
		if n := len([]rune(row[0])); n > width {
			width = n
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s host → %s", r.Label, r.Host, r.Plugin)
	if r.AutoMTLS {
		b.WriteString(" (AutoMTLS)")
	}
	for _, row := range rows {
		fmt.Fprintf(&b, "\n%s%s  %s", row[0], strings.Repeat(" ", width-len([]rune(row[0]))), row[1])
	}
	if r.Error != "" {
		fmt.Fprintf(&b, "\nerror: %s", r.Error)
	}
	return b.String()
}
