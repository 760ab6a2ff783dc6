// Command go-yamux-peer is a raw hashicorp/yamux peer over one Unix socket
// connection, for testing another yamux implementation against the real
// one: it echoes streams, sends and verifies patterned data, pings, or sends
// GoAway, and prints one JSON object describing what happened.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"

	"interop/jsonline"
)

// failure is the line printed when nothing else could be reported.
type failure struct {
	Error string `json:"error,omitempty"`
}

func (f *failure) SetError(err string) { f.Error = err }

type echoResult struct {
	Streams int64  `json:"streams"`
	Bytes   int64  `json:"bytes"`
	Error   string `json:"error,omitempty"`
}

func (r *echoResult) SetError(err string) { r.Error = err }

type sendResult struct {
	Streams    int     `json:"streams"`
	Bytes      int64   `json:"bytes"`
	Mismatches int     `json:"mismatches"`
	Seconds    float64 `json:"seconds"`
	Error      string  `json:"error,omitempty"`
}

func (r *sendResult) SetError(err string) { r.Error = err }

type pingResult struct {
	Pings     int     `json:"pings"`
	RTTMicros []int64 `json:"rttMicros"`
	Error     string  `json:"error,omitempty"`
}

func (r *pingResult) SetError(err string) { r.Error = err }

type goAwayResult struct {
	GoAway          bool   `json:"goAway"`
	OpenAfterFailed bool   `json:"openAfterGoAwayFailed"`
	OpenError       string `json:"openError,omitempty"`
	Streams         int64  `json:"streams"`
	Bytes           int64  `json:"bytes"`
	Error           string `json:"error,omitempty"`
}

func (r *goAwayResult) SetError(err string) { r.Error = err }

func main() {
	log.SetFlags(log.Lmicroseconds)
	listen := flag.String("listen", "", "accept one connection on a Unix socket at this path (prints \"listening\" first)")
	connect := flag.String("connect", "", "connect to a Unix socket at this path")
	role := flag.String("role", "", "client or server: which yamux side to be (default: client with -connect, server with -listen)")
	mode := flag.String("mode", "echo", "echo, send, ping or goaway")
	streams := flag.Int("streams", 1, "send: streams to open concurrently")
	nbytes := flag.Int64("bytes", 1<<20, "send: bytes to write on each stream")
	keepalive := flag.Duration("keepalive", 30*time.Second, "yamux KeepAliveInterval; 0 turns keep-alive off")
	window := flag.Uint("window", 256<<10, "yamux MaxStreamWindowSize in bytes (this yamux rejects less than 262144)")
	flag.Parse()

	if (*listen == "") == (*connect == "") {
		jsonline.Finish(&failure{}, errors.New("exactly one of -listen and -connect is required"))
	}
	if *role == "" {
		*role = "server"
		if *connect != "" {
			*role = "client"
		}
	}
	if *role != "client" && *role != "server" {
		jsonline.Finish(&failure{}, fmt.Errorf("unknown -role %q: want client or server", *role))
	}
	switch *mode {
	case "echo", "send", "ping", "goaway":
	default:
		jsonline.Finish(&failure{}, fmt.Errorf("unknown -mode %q: want echo, send, ping or goaway", *mode))
	}

	cfg := yamux.DefaultConfig()
	cfg.LogOutput = os.Stderr
	cfg.EnableKeepAlive = *keepalive > 0
	if *keepalive > 0 {
		cfg.KeepAliveInterval = *keepalive
	}
	cfg.MaxStreamWindowSize = uint32(*window)
	if err := yamux.VerifyConfig(cfg); err != nil {
		jsonline.Finish(&failure{}, fmt.Errorf("yamux config: %w", err))
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		if *listen != "" {
			os.Remove(*listen)
		}
		jsonline.Finish(&failure{}, fmt.Errorf("interrupted by %v", sig))
	}()

	conn, err := dial(*listen, *connect)
	if err != nil {
		jsonline.Finish(&failure{}, err)
	}
	var session *yamux.Session
	if *role == "client" {
		session, err = yamux.Client(conn, cfg)
	} else {
		session, err = yamux.Server(conn, cfg)
	}
	if err != nil {
		jsonline.Finish(&failure{}, fmt.Errorf("yamux %s: %w", *role, err))
	}
	log.Printf("go-yamux-peer: yamux %s session, mode %s", *role, *mode)

	switch *mode {
	case "echo":
		res := &echoResult{}
		jsonline.Finish(res, echo(session, res))
	case "send":
		res := &sendResult{Streams: *streams}
		err := send(session, *streams, *nbytes, res)
		session.Close()
		jsonline.Finish(res, err)
	case "ping":
		res := &pingResult{RTTMicros: []int64{}}
		err := ping(session, res)
		session.Close()
		jsonline.Finish(res, err)
	case "goaway":
		res := &goAwayResult{}
		jsonline.Finish(res, goAway(session, res))
	}
}

// dial accepts one connection on a fresh Unix socket at listen, printing
// "listening" once it can be connected to, or connects to connect.
func dial(listen, connect string) (net.Conn, error) {
	if connect != "" {
		c, err := net.Dial("unix", connect)
		if err != nil {
			return nil, fmt.Errorf("connect %s: %w", connect, err)
		}
		return c, nil
	}
	if fi, err := os.Lstat(listen); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(listen)
	}
	l, err := net.Listen("unix", listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", listen, err)
	}
	// Closing the listener removes the socket file.
	defer l.Close()
	fmt.Println("listening")
	c, err := l.Accept()
	if err != nil {
		return nil, fmt.Errorf("accept on %s: %w", listen, err)
	}
	return c, nil
}

// echoStream copies everything back until EOF, then closes the stream.
func echoStream(s net.Conn, total *int64) error {
	defer s.Close()
	n, err := io.Copy(s, s)
	atomic.AddInt64(total, n)
	return err
}

// echo echoes every stream the peer opens until the session ends.
func echo(session *yamux.Session, res *echoResult) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	var end error
	for {
		s, err := session.AcceptStream()
		if err != nil {
			end = err
			log.Printf("go-yamux-peer: accept ended: %v", err)
			break
		}
		atomic.AddInt64(&res.Streams, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := echoStream(s, &res.Bytes); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("stream %d: %w", s.StreamID(), err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	session.Close()
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d streams failed, first: %w", len(errs), res.Streams, errs[0])
	}
	return sessionEnd(end)
}

// sessionEnd is nil if the session ended because the peer closed the
// connection (io.EOF), otherwise why it ended (protocol error, keep-alive
// timeout, window exceeded, ...).
func sessionEnd(err error) error {
	if err == io.EOF {
		return nil
	}
	return fmt.Errorf("session ended: %w", err)
}

// pattern is stream index's data: byte i is (i*31 + index) % 251.
func pattern(index int, n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((int64(i)*31 + int64(index)) % 251)
	}
	return b
}

// send opens n streams at once, writes m patterned bytes on each and closes
// it (FIN, a half-close) while reading the echo, checks the echo, and waits
// for the peer's FIN on every stream.
//
// Debian's yamux (git 2019-09) has Read return io.EOF on a stream closed
// locally whenever its buffer is empty, even before the peer's FIN (later
// yamux fixed this). So the echo is read by polling until m bytes are in,
// and the peer's FIN is seen as the stream leaving the session, which
// happens once both sides have sent FIN.
func send(session *yamux.Session, n int, m int64, res *sendResult) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	// Streams the peer opens (it should not; go-yamux-peer -mode goaway
	// does) are closed at once, so that they leave the session too.
	go func() {
		for {
			s, err := session.AcceptStream()
			if err != nil {
				return
			}
			log.Printf("go-yamux-peer: closing stream %d the peer opened", s.StreamID())
			s.Close()
		}
	}()
	start := time.Now()
	var opened []*yamux.Stream
	var gots [][]byte
	for i := 0; i < n; i++ {
		s, err := session.OpenStream()
		if err != nil {
			fail(fmt.Errorf("open stream %d: %w", i, err))
			break
		}
		opened = append(opened, s)
		gots = append(gots, nil)
	}
	for i, s := range opened {
		want := pattern(i, m)
		wg.Add(2)
		go func(i int, s *yamux.Stream) {
			defer wg.Done()
			if _, err := s.Write(want); err != nil {
				fail(fmt.Errorf("stream %d: write: %w", i, err))
			}
			s.Close()
		}(i, s)
		go func(i int, s *yamux.Stream) {
			defer wg.Done()
			got, err := readEcho(s, m)
			gots[i] = got
			if err != nil {
				fail(fmt.Errorf("stream %d: read: %w", i, err))
			}
		}(i, s)
	}
	wg.Wait()

	// A stream leaves the session once both sides have sent FIN.
	deadline := time.Now().Add(closeWait)
	for session.NumStreams() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	res.Seconds = time.Since(start).Seconds()
	if k := session.NumStreams(); k > 0 {
		fail(fmt.Errorf("%d streams not closed by the peer (no FIN) within %v", k, closeWait))
	}

	for i, s := range opened {
		// All the peer sent is buffered by now: anything past m is extra.
		var extra bytes.Buffer
		extra.ReadFrom(s)
		got := append(gots[i], extra.Bytes()...)
		res.Bytes += int64(len(got))
		if want := pattern(i, m); !bytes.Equal(got, want) {
			res.Mismatches++
			fail(fmt.Errorf("stream %d: echo of %d bytes differs from the %d sent%s", i, len(got), m, firstDiff(got, want)))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d failures, first: %w", len(errs), errs[0])
	}
	return nil
}

// closeWait bounds the waits for the peer's echo and for its FINs.
const closeWait = 30 * time.Second

// readEcho reads from s until it has m bytes, polling through the spurious
// io.EOF of a locally closed stream (see send).
func readEcho(s *yamux.Stream, m int64) ([]byte, error) {
	got := make([]byte, 0, m)
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(closeWait)
	for int64(len(got)) < m {
		k, err := s.Read(buf)
		got = append(got, buf[:k]...)
		if err == io.EOF {
			if time.Now().After(deadline) {
				return got, fmt.Errorf("echo stopped at %d of %d bytes", len(got), m)
			}
			time.Sleep(100 * time.Microsecond)
			continue
		}
		if err != nil {
			return got, err
		}
	}
	return got, nil
}
func firstDiff(got, want []byte) string {
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i] != want[i] {
			return fmt.Sprintf(" (first at offset %d: %d, want %d)", i, got[i], want[i])
		}
	}
	return ""
}

// ping pings the peer 3 times.
func ping(session *yamux.Session, res *pingResult) error {
	for i := 0; i < 3; i++ {
		rtt, err := session.Ping()
		if err != nil {
			return fmt.Errorf("ping %d: %w", i+1, err)
		}
		res.Pings++
		res.RTTMicros = append(res.RTTMicros, rtt.Microseconds())
	}
	return nil
}

// goAway waits for the first stream, sends GoAway, tries to open a stream
// itself (closing it at once if that works), echoes the first stream until
// EOF and waits for the peer to close the connection. Streams the peer opens
// after the GoAway are refused by yamux with RST.
func goAway(session *yamux.Session, res *goAwayResult) error {
	first, err := session.AcceptStream()
	if err != nil {
		return fmt.Errorf("accept the first stream: %w", err)
	}
	res.Streams = 1
	if err := session.GoAway(); err != nil {
		return fmt.Errorf("GoAway: %w", err)
	}
	res.GoAway = true
	log.Printf("go-yamux-peer: sent GoAway after stream %d", first.StreamID())
	if s, err := session.OpenStream(); err != nil {
		res.OpenAfterFailed = true
		res.OpenError = err.Error()
	} else {
		log.Printf("go-yamux-peer: opening stream %d after GoAway worked; closing it", s.StreamID())
		s.Close()
	}
	if err := echoStream(first, &res.Bytes); err != nil {
		return fmt.Errorf("echo stream %d: %w", first.StreamID(), err)
	}
	// Streams the peer opens now are refused (RST) without reaching
	// AcceptStream, which so returns only once the session ends.
	_, err = session.AcceptStream()
	return sessionEnd(err)
}
