package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/ioutil"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// startTimeout is how long the plugin has to print its handshake line, as
// go-plugin's default StartTimeout.
const startTimeout = time.Minute

// gracefulWait is how long the plugin has to exit after Shutdown before it is
// SIGKILLed, as go-plugin's Kill.
const gracefulWait = 2 * time.Second

// process is the launched plugin.
type process struct {
	cmd *exec.Cmd
	// dir is PLUGIN_UNIX_SOCKET_DIR, also where the non-mux broker listens.
	dir string
	// lines yields the first stdout line, or is closed at EOF without one.
	lines chan string
	// exited is closed once the process has been waited for.
	exited chan struct{}

	mu    sync.Mutex
	state *os.ProcessState
}

// launch starts cmdline (split on spaces) with the go-plugin environment:
// the host's minus PLUGIN_* and the cookie, plus the handshake variables and,
// if mux, PLUGIN_MULTIPLEX_GRPC=true.
func launch(cmdline string, mux bool) (*process, error) {
	args := strings.Fields(cmdline)
	if len(args) == 0 {
		return nil, errors.New("-plugin is required")
	}
	dir, err := ioutil.TempDir("", "go-mux-host")
	if err != nil {
		return nil, err
	}
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PLUGIN_") || strings.HasPrefix(kv, cookieKey+"=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		cookieKey+"="+cookieValue,
		"PLUGIN_PROTOCOL_VERSIONS=1",
		"PLUGIN_MIN_PORT=10000",
		"PLUGIN_MAX_PORT=25000",
		"PLUGIN_UNIX_SOCKET_DIR="+dir,
	)
	if mux {
		env = append(env, "PLUGIN_MULTIPLEX_GRPC=true")
	}

	// Our own pipe rather than StdoutPipe, so Wait returns when the plugin
	// exits even if a child of it still holds stdout.
	r, w, err := os.Pipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Stdin = nil // /dev/null
	cmd.Stdout = w
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	w.Close()

	p := &process{cmd: cmd, dir: dir, lines: make(chan string, 1), exited: make(chan struct{})}
	go p.readStdout(r)
	go func() {
		cmd.Wait()
		p.mu.Lock()
		p.state = cmd.ProcessState
		p.mu.Unlock()
		close(p.exited)
	}()
	return p, nil
}

// readStdout hands on the first line and drains the rest, as go-plugin does.
func (p *process) readStdout(r *os.File) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	if sc.Scan() {
		p.lines <- strings.TrimSuffix(sc.Text(), "\r")
	} else {
		close(p.lines)
	}
	for sc.Scan() {
	}
	io.Copy(ioutil.Discard, r)
}

// handshakeLine waits for the first stdout line.
func (p *process) handshakeLine() (string, error) {
	select {
	case line, ok := <-p.lines:
		if !ok {
			return "", errors.New("plugin closed stdout (exited?) without printing a handshake line")
		}
		return line, nil
	case <-time.After(startTimeout):
		return "", fmt.Errorf("no handshake line from the plugin within %v", startTimeout)
	}
}

// endpoint is what the handshake line says to connect to.
type endpoint struct {
	network, address string
}

// parseHandshake checks line (CORE|APPVER|NETWORK|ADDRESS|PROTOCOL|CERT|MUX)
// against what this host supports: core 1, app version 1, grpc, no AutoMTLS,
// and if mux was requested a 7th field that ParseBool reads as true.
func parseHandshake(line string, mux bool) (endpoint, error) {
	f := strings.Split(strings.TrimSpace(line), "|")
	if len(f) < 4 {
		return endpoint{}, fmt.Errorf("unrecognized handshake line %q: want CORE|APPVER|NETWORK|ADDRESS|PROTOCOL[|CERT[|MUX]]", line)
	}
	if f[0] != "1" {
		return endpoint{}, fmt.Errorf("handshake line %q: core protocol version %q, want 1", line, f[0])
	}
	if f[1] != "1" {
		return endpoint{}, fmt.Errorf("handshake line %q: app protocol version %q, want 1", line, f[1])
	}
	if f[2] != "unix" && f[2] != "tcp" {
		return endpoint{}, fmt.Errorf("handshake line %q: network %q, want unix or tcp", line, f[2])
	}
	protocol := "netrpc"
	if len(f) >= 5 {
		protocol = f[4]
	}
	if protocol != "grpc" {
		return endpoint{}, fmt.Errorf("handshake line %q: protocol %q, want grpc", line, protocol)
	}
	if len(f) >= 6 && len(f[5]) > 50 {
		return endpoint{}, fmt.Errorf("handshake line %q carries a server certificate (AutoMTLS), which go-mux-host does not support", line)
	}
	if mux {
		if len(f) < 7 {
			return endpoint{}, fmt.Errorf("plugin does not support gRPC broker multiplexing: PLUGIN_MULTIPLEX_GRPC=true was set but its handshake line %q has %d fields, without the 7th (MUX-SUPPORTED) field; go-plugin < 1.6 plugins print 6", line, len(f))
		}
		ok, err := strconv.ParseBool(f[6])
		if err != nil {
			return endpoint{}, fmt.Errorf("handshake line %q: MUX-SUPPORTED field %q is not a boolean", line, f[6])
		}
		if !ok {
			return endpoint{}, fmt.Errorf("plugin does not support gRPC broker multiplexing: MUX-SUPPORTED field is %q in handshake line %q", f[6], line)
		}
	}
	return endpoint{network: f[2], address: f[3]}, nil
}

// waitExit waits up to d for the process to exit by itself.
func (p *process) waitExit(d time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// kill SIGKILLs the process if it is still running and waits for it.
func (p *process) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// exitCode is the exit status, or -1 if a signal ended the process or it
// has not been waited for.
func (p *process) exitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		return -1
	}
	return p.state.ExitCode()
}

// cleanup kills the process and removes its socket directory.
func (p *process) cleanup() {
	p.kill()
	os.RemoveAll(p.dir)
}
