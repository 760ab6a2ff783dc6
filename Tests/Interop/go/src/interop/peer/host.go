package peer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// Host is a go-plugin client for one plugin, whose log goes to stderr and to a
// buffer that Kill reads to tell how the plugin ended.
type Host struct {
	Client *plugin.Client
	Logger hclog.Logger
	logs   syncBuffer
}

// NewHost makes the client for cmdline, split on spaces with the first word
// the executable, over gRPC only, logging at Debug as name. It does not start
// the plugin: Client.Client does.
func NewHost(name, cmdline string, plugins plugin.PluginSet, autoMTLS bool) (*Host, error) {
	return NewHostConfig(name, cmdline, plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          plugins,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         autoMTLS,
	})
}

// NewHostConfig is NewHost with the rest of the client's configuration given:
// it fills in Cmd from cmdline, Logger and Managed.
func NewHostConfig(name, cmdline string, config plugin.ClientConfig) (*Host, error) {
	args := strings.Fields(cmdline)
	if len(args) == 0 {
		return nil, errors.New("-plugin is required")
	}
	h := &Host{}
	h.Logger = hclog.New(&hclog.LoggerOptions{
		Name:   name,
		Level:  hclog.Debug,
		Output: io.MultiWriter(&h.logs, os.Stderr),
	})
	config.Cmd = exec.Command(args[0], args[1:]...)
	config.Logger = h.Logger
	config.Managed = true
	h.Client = plugin.NewClient(&config)
	return h, nil
}

// Kill kills the plugin and reads go-plugin's log: graceful unless Kill logged
// "plugin failed to exit gracefully" (no exit within 2 s of Shutdown, so it
// was SIGKILLed); exitedWithError if the "plugin process exited" line carries
// an error (non-zero exit or a signal).
func (h *Host) Kill() (graceful, exitedWithError bool) {
	h.Client.Kill()
	out := h.logs.String()
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "plugin process exited") && strings.Contains(line, "error=") {
			exitedWithError = true
		}
	}
	return !strings.Contains(out, "plugin failed to exit gracefully"), exitedWithError
}

// syncBuffer is written by go-plugin's goroutines while Kill may read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Result is a host's one JSON line, the contract in Tests/Interop/README.md.
type Result interface {
	// SetError records why the host failed, as the line's "error".
	SetError(string)
}

// finishing is locked by the first Finish and never unlocked, so a signal
// arriving while main finishes cannot print a second JSON line.
var finishing sync.Mutex

// Finish prints res as one JSON line and exits 0 if err is nil, otherwise 1
// with err recorded in res.
func Finish(res Result, err error) {
	finishing.Lock()
	code := 0
	if err != nil {
		res.SetError(err.Error())
		code = 1
	}
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	os.Exit(code)
}

// FinishOnSignal kills every plugin when the host gets SIGINT or SIGTERM
// (go-plugin plugins ignore SIGINT) and Finishes with a fresh result, as main
// may be writing to its own.
func FinishOnSignal(fresh func() Result) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		plugin.CleanupClients()
		Finish(fresh(), fmt.Errorf("interrupted by %v", sig))
	}()
}
