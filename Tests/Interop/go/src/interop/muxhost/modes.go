package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/protobuf/ptypes/empty"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	counterproto "counter/proto"
	pluginproto "goplugin/plugin"
	kvproto "kvbench/proto"
)

// runKV: Put greeting, Get it back, Upload 1000+2000+3000 bytes, time
// o.calls Gets, and if o.streamBytes > 0 time an Upload of that many bytes.
func runKV(c *conn, o *options, res *kvResult) error {
	kv := kvproto.NewKVClient(c.grpc)
	const greeting = "hello from go"
	if err := kvPut(kv, "greeting", []byte(greeting)); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	got, err := kvGet(kv, "greeting")
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	res.Get = string(got)
	if res.Get != greeting {
		return fmt.Errorf("get returned %q, want %q", res.Get, greeting)
	}

	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	count, err := upload(ctx, kv, 1000, 2000, 3000)
	cancel()
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	res.UploadBytes, res.UploadChunks = count.Bytes, count.Chunks
	if count.Bytes != 6000 || count.Chunks != 3 {
		return fmt.Errorf("upload counted %d bytes in %d chunks, want 6000 in 3", count.Bytes, count.Chunks)
	}

	if o.calls > 0 {
		start := time.Now()
		for i := 0; i < o.calls; i++ {
			v, err := kvGet(kv, "greeting")
			if err != nil {
				return fmt.Errorf("timed get %d: %w", i, err)
			}
			if string(v) != greeting {
				return fmt.Errorf("timed get %d returned %q, want %q", i, v, greeting)
			}
		}
		res.CallsPerSecond = float64(o.calls) / time.Since(start).Seconds()
	}

	if o.streamBytes > 0 {
		const chunk = 64 << 10
		var sizes []int
		for left := o.streamBytes; left > 0; left -= chunk {
			if left < chunk {
				sizes = append(sizes, int(left))
			} else {
				sizes = append(sizes, chunk)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		start := time.Now()
		count, err := upload(ctx, kv, sizes...)
		elapsed := time.Since(start)
		cancel()
		if err != nil {
			return fmt.Errorf("stream upload: %w", err)
		}
		res.StreamBytes = count.Bytes
		res.StreamMiBPerSecond = float64(o.streamBytes) / (1 << 20) / elapsed.Seconds()
		if count.Bytes != o.streamBytes || count.Chunks != int64(len(sizes)) {
			return fmt.Errorf("stream upload counted %d bytes in %d chunks, want %d in %d", count.Bytes, count.Chunks, o.streamBytes, len(sizes))
		}
	}
	return nil
}

func kvPut(kv kvproto.KVClient, key string, value []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	_, err := kv.Put(ctx, &kvproto.PutRequest{Key: key, Value: value})
	return err
}

func kvGet(kv kvproto.KVClient, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	resp, err := kv.Get(ctx, &kvproto.GetRequest{Key: key})
	if err != nil {
		return nil, err
	}
	return resp.Value, nil
}

// upload sends one chunk of zeros per size; all chunks share one buffer.
func upload(ctx context.Context, kv kvproto.KVClient, sizes ...int) (*kvproto.Count, error) {
	stream, err := kv.Upload(ctx)
	if err != nil {
		return nil, err
	}
	max := 0
	for _, n := range sizes {
		if n > max {
			max = n
		}
	}
	buf := make([]byte, max)
	for _, n := range sizes {
		// io.EOF means the server ended the stream; CloseAndRecv has the reason.
		if err := stream.Send(&kvproto.Chunk{Data: buf[:n]}); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
	}
	return stream.CloseAndRecv()
}

// adder is the AddHelper served to the plugin; sums counts the Sum calls
// it answered, over all the broker servers.
type adder struct {
	sums int64
}

func (a *adder) Sum(_ context.Context, req *counterproto.SumRequest) (*counterproto.SumResponse, error) {
	atomic.AddInt64(&a.sums, 1)
	return &counterproto.SumResponse{R: req.A + req.B}, nil
}

// runCounter Puts hits 1, 2 and 39, each with AddHelper served under a
// fresh broker ID (host counter from 1) sent as add_server, one Put after
// the other as multiplexed brokering requires, then Gets hits (42).
func runCounter(c *conn, res *counterResult) error {
	counter := counterproto.NewCounterClient(c.grpc)
	add := &adder{}
	defer func() { res.Sums = atomic.LoadInt64(&add.sums) }()
	var nextID uint32
	const key = "hits"
	for _, n := range []int64{1, 2, 39} {
		id := atomic.AddUint32(&nextID, 1)
		err := c.broker.acceptAndServe(id, func(s *grpc.Server) {
			counterproto.RegisterAddHelperServer(s, add)
		})
		if err != nil {
			return fmt.Errorf("serve AddHelper under id %d: %w", id, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
		_, err = counter.Put(ctx, &counterproto.PutRequest{AddServer: id, Key: key, Value: n})
		cancel()
		if err != nil {
			return fmt.Errorf("put %s %d: %w", key, n, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	resp, err := counter.Get(ctx, &counterproto.GetRequest{Key: key})
	cancel()
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	res.Value = resp.Value
	if res.Value != 42 {
		return fmt.Errorf("get %s returned %d, want 42", key, res.Value)
	}
	if sums := atomic.LoadInt64(&add.sums); sums != 3 {
		return fmt.Errorf("AddHelper served %d Sum calls, want 3", sums)
	}
	return nil
}

// stdioCollector gathers what StreamStdio sends, per channel.
type stdioCollector struct {
	mu       sync.Mutex
	out, err bytes.Buffer
	end      error
	// changed is signalled after each chunk; done is closed at the end.
	changed chan struct{}
	done    chan struct{}
}

func (s *stdioCollector) recv(stream pluginproto.GRPCStdio_StreamStdioClient) {
	defer close(s.done)
	for {
		d, err := stream.Recv()
		if err != nil {
			s.mu.Lock()
			s.end = err
			s.mu.Unlock()
			return
		}
		s.mu.Lock()
		switch d.Channel {
		case pluginproto.StdioData_STDOUT:
			s.out.Write(d.Data)
		case pluginproto.StdioData_STDERR:
			s.err.Write(d.Data)
		default:
			log.Printf("go-mux-host: stdio: dropping %d bytes on channel %v", len(d.Data), d.Channel)
		}
		s.mu.Unlock()
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}
}

func (s *stdioCollector) both() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.Len() > 0 && s.err.Len() > 0
}

// runStdio opens StreamStdio, Puts stdio=hello (which a test plugin answers
// by printing; a failing Put is only logged), and waits up to o.stdioWait
// for output on both channels (then 100 ms more). It returns the function
// to call after Shutdown, which waits up to 2 s for the stream to end and
// fills res.
func runStdio(c *conn, o *options, res *stdioResult) (func() error, error) {
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := pluginproto.NewGRPCStdioClient(c.grpc).StreamStdio(ctx, &empty.Empty{})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("plugin.GRPCStdio/StreamStdio: %w", err)
	}
	col := &stdioCollector{changed: make(chan struct{}, 1), done: make(chan struct{})}
	go col.recv(stream)

	finish := func() error {
		select {
		case <-col.done:
		case <-time.After(gracefulWait):
			log.Printf("go-mux-host: StreamStdio still open %v after Shutdown, cancelling it", gracefulWait)
		}
		cancel()
		<-col.done
		col.mu.Lock()
		defer col.mu.Unlock()
		res.Stdout, res.Stderr = col.out.String(), col.err.String()
		res.StdoutBytes, res.StderrBytes = col.out.Len(), col.err.Len()
		if col.end == io.EOF {
			res.StdioEnd = "EOF"
		} else {
			res.StdioEnd = status.Code(col.end).String()
		}
		switch status.Code(col.end) {
		case codes.Unknown: // io.EOF
			if col.end == io.EOF {
				return nil
			}
		case codes.Unavailable:
			return nil
		case codes.Unimplemented:
			return errors.New("plugin does not implement plugin.GRPCStdio/StreamStdio")
		case codes.Canceled:
			return fmt.Errorf("StreamStdio did not end within %v of Shutdown", gracefulWait)
		}
		return fmt.Errorf("StreamStdio ended with %w", col.end)
	}

	kv := kvproto.NewKVClient(c.grpc)
	if err := kvPut(kv, "stdio", []byte("hello")); err != nil {
		log.Printf("go-mux-host: KV Put stdio=hello: %v", err)
	} else {
		res.Put = true
	}

	deadline := time.After(o.stdioWait)
wait:
	for !col.both() {
		select {
		case <-col.changed:
		case <-col.done:
			break wait
		case <-deadline:
			break wait
		}
	}
	if col.both() {
		time.Sleep(100 * time.Millisecond)
	}
	return finish, nil
}
