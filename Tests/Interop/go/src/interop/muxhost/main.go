// Command go-mux-host emulates a go-plugin >= 1.6 host with
// GRPCBrokerMultiplex on, by hand over grpc-go and hashicorp/yamux (go-plugin
// 1.0.1's Client cannot multiplex): it launches a plugin, connects to it over
// one yamux session (or directly with -no-mux), exercises it in one of the
// modes kv, counter or stdio, shuts it down and prints one JSON object
// describing what happened.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pluginproto "goplugin/plugin"
	"interop/jsonline"
)

// The handshake of every interop peer: core 1, app version 1, this cookie.
const (
	cookieKey   = "BASIC_PLUGIN"
	cookieValue = "hello"
)

// rpcTimeout bounds every single unary RPC, so a wedged plugin cannot hang us.
const rpcTimeout = 10 * time.Second

// result is the JSON contract documented in Tests/Interop/README.md. The
// embedded per-mode parts are omitted from the line when nil.
type result struct {
	Mode      string `json:"mode"`
	Mux       bool   `json:"mux"`
	Handshake string `json:"handshake"`
	*kvResult
	*counterResult
	*stdioResult
	Graceful bool   `json:"graceful"`
	ExitCode int    `json:"exitCode"`
	Error    string `json:"error,omitempty"`
}

type kvResult struct {
	Get                string  `json:"get"`
	UploadBytes        int64   `json:"uploadBytes"`
	UploadChunks       int64   `json:"uploadChunks"`
	Calls              int     `json:"calls"`
	CallsPerSecond     float64 `json:"callsPerSecond"`
	StreamBytes        int64   `json:"streamBytes"`
	StreamMiBPerSecond float64 `json:"streamMiBPerSecond"`
}

type counterResult struct {
	Value int64 `json:"value"`
	Sums  int64 `json:"sums"`
}

type stdioResult struct {
	Put         bool   `json:"put"`
	Stdout      string `json:"stdout"`
	Stderr      string `json:"stderr"`
	StdoutBytes int    `json:"stdoutBytes"`
	StderrBytes int    `json:"stderrBytes"`
	StdioEnd    string `json:"stdioEnd"`
}

func (r *result) SetError(err string) { r.Error = err }

// options are the flags.
type options struct {
	plugin      string
	mode        string
	calls       int
	noMux       bool
	streamBytes int64
	stdioWait   time.Duration
}

func newResult(o *options) *result {
	res := &result{Mode: o.mode, Mux: !o.noMux, ExitCode: -1}
	switch o.mode {
	case "kv":
		res.kvResult = &kvResult{Calls: o.calls}
	case "counter":
		res.counterResult = &counterResult{}
	case "stdio":
		res.stdioResult = &stdioResult{}
	}
	return res
}

// current is the launched plugin, for the signal handler to kill.
var (
	currentMu sync.Mutex
	current   *process
)

func main() {
	log.SetFlags(log.Lmicroseconds)
	o := &options{}
	flag.StringVar(&o.plugin, "plugin", "", "plugin command line, split on spaces")
	flag.StringVar(&o.mode, "mode", "kv", "kv, counter or stdio")
	flag.IntVar(&o.calls, "calls", 0, "kv: number of sequential Get calls to time")
	flag.BoolVar(&o.noMux, "no-mux", false, "do not ask for multiplexing; connect directly and broker over Unix sockets")
	flag.Int64Var(&o.streamBytes, "stream-bytes", 0, "kv: if > 0, Upload this many bytes in 64 KiB chunks, timed")
	flag.DurationVar(&o.stdioWait, "stdio-wait", 2*time.Second, "stdio: longest wait after the Put for output on both channels before Shutdown")
	flag.Parse()

	res := newResult(o)
	if o.mode != "kv" && o.mode != "counter" && o.mode != "stdio" {
		jsonline.Finish(res, fmt.Errorf("unknown -mode %q: want kv, counter or stdio", o.mode))
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		currentMu.Lock()
		if current != nil {
			current.cleanup()
		}
		jsonline.Finish(newResult(o), fmt.Errorf("interrupted by %v", sig))
	}()

	p, err := launch(o.plugin, !o.noMux)
	if err != nil {
		jsonline.Finish(res, err)
	}
	currentMu.Lock()
	current = p
	currentMu.Unlock()

	err = run(p, o, res)
	if err == nil && !res.Graceful {
		err = errors.New("plugin did not exit within 2 s of Shutdown and was SIGKILLed")
	}
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("plugin exited with status %d", res.ExitCode)
	}
	currentMu.Lock()
	p.cleanup()
	jsonline.Finish(res, err)
}

// conn is the host's connection to the plugin.
type conn struct {
	grpc    *grpc.ClientConn
	session *yamux.Session // nil without mux
	broker  *broker
}

// run does everything after the launch and always shuts the plugin down,
// filling Graceful and ExitCode.
func run(p *process, o *options, res *result) (err error) {
	var c *conn
	var finishStdio func() error
	defer func() {
		res.Graceful = shutdown(p, c)
		res.ExitCode = p.exitCode()
		if finishStdio != nil {
			if serr := finishStdio(); err == nil {
				err = serr
			}
		}
		if c != nil {
			c.close()
		}
	}()

	line, err := p.handshakeLine()
	if err != nil {
		return err
	}
	res.Handshake = line
	log.Printf("go-mux-host: handshake %q", line)
	ep, err := parseHandshake(line, !o.noMux)
	if err != nil {
		return err
	}
	c, err = connect(ep, !o.noMux, p.dir)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	health, err := healthpb.NewHealthClient(c.grpc).Check(ctx, &healthpb.HealthCheckRequest{Service: "plugin"})
	cancel()
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if health.Status != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health check of service plugin: %v, want SERVING", health.Status)
	}

	switch o.mode {
	case "kv":
		return runKV(c, o, res.kvResult)
	case "counter":
		return runCounter(c, res.counterResult)
	default:
		finishStdio, err = runStdio(c, o, res.stdioResult)
		return err
	}
}

// connect dials the plugin: multiplexed, one raw connection carrying a yamux
// client session whose streams carry gRPC (the main connection first);
// otherwise gRPC straight over the address. Then it opens the broker.
func connect(ep endpoint, mux bool, dir string) (*conn, error) {
	c := &conn{}
	dialer := func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, ep.network, ep.address)
	}
	if mux {
		raw, err := net.DialTimeout(ep.network, ep.address, 5*time.Second)
		if err != nil {
			return nil, fmt.Errorf("dial %s %s: %w", ep.network, ep.address, err)
		}
		cfg := yamux.DefaultConfig()
		cfg.LogOutput = os.Stderr
		c.session, err = yamux.Client(raw, cfg)
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("yamux client: %w", err)
		}
		dialer = func(context.Context, string) (net.Conn, error) {
			s, err := c.session.OpenStream()
			if err != nil {
				return nil, err
			}
			log.Printf("go-mux-host: gRPC connection on yamux stream %d", s.StreamID())
			return s, nil
		}
	}
	var err error
	c.grpc, err = grpc.Dial("unused",
		grpc.WithContextDialer(dialer),
		grpc.FailOnNonTempDialError(true),
		grpc.WithInsecure(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)),
	)
	if err != nil {
		c.close()
		return nil, fmt.Errorf("grpc dial: %w", err)
	}
	c.broker, err = startBroker(c.grpc, c.session, dir)
	if err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *conn) close() {
	if c.broker != nil {
		c.broker.close()
	}
	if c.grpc != nil {
		c.grpc.Close()
	}
	if c.session != nil {
		c.session.Close()
	}
}

// shutdown ends StartStream, calls GRPCController/Shutdown and gives the
// plugin 2 s to exit before SIGKILL; true if it exited by itself. Without a
// connection it kills the plugin at once.
func shutdown(p *process, c *conn) bool {
	if c == nil {
		// Not connected: kill at once, as go-plugin does on a bad handshake.
		p.kill()
		return false
	}
	c.broker.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), gracefulWait)
	_, err := pluginproto.NewGRPCControllerClient(c.grpc).Shutdown(ctx, &pluginproto.Empty{})
	cancel()
	if err != nil && status.Code(err) != codes.Unavailable {
		log.Printf("go-mux-host: plugin.GRPCController/Shutdown: %v", err)
	}
	graceful := p.waitExit(gracefulWait)
	if !graceful {
		log.Printf("go-mux-host: plugin did not exit within %v, killing it", gracefulWait)
		p.kill()
	}
	return graceful
}
