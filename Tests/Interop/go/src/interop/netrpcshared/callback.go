package netrpcshared

import (
	"fmt"
	"net/rpc"
	"os"
	"strings"

	"github.com/hashicorp/go-plugin"
)

// RelayArgs is Plugin.Relay's argument: the host serves Plugin.Upper on
// BrokerID and the plugin relays Text through it.
type RelayArgs struct {
	BrokerID uint32
	Text     string
}

// callbackPlugin is the plugin.Plugin of callback, which uses the MuxBroker
// in both directions and the plugin's stdout and stderr.
type callbackPlugin struct{}

func (p *callbackPlugin) Server(broker *plugin.MuxBroker) (interface{}, error) {
	return &CallbackServer{broker: broker}, nil
}

func (p *callbackPlugin) Client(broker *plugin.MuxBroker, c *rpc.Client) (interface{}, error) {
	return &CallbackClient{broker: broker, client: c}, nil
}

// CallbackServer is the plugin's net/rpc receiver of Plugin.Relay,
// Plugin.Offer and Plugin.Print.
type CallbackServer struct{ broker *plugin.MuxBroker }

// Relay dials the host's broker id, calls Plugin.Upper there with the text and
// answers "relayed: " + what came back.
func (s *CallbackServer) Relay(args RelayArgs, resp *string) error {
	conn, err := s.broker.Dial(args.BrokerID)
	if err != nil {
		return fmt.Errorf("relay: dial broker id %d: %w", args.BrokerID, err)
	}
	client := rpc.NewClient(conn)
	defer client.Close()
	var upper string
	if err := client.Call("Plugin.Upper", args.Text, &upper); err != nil {
		return fmt.Errorf("relay: Plugin.Upper on broker id %d: %w", args.BrokerID, err)
	}
	*resp = "relayed: " + upper
	return nil
}

// Offer serves Plugin.Echo, answering prefix + text, on a fresh broker id of
// the plugin's and answers that id for the host to dial (within 5 s, go-plugin's
// accept timeout).
func (s *CallbackServer) Offer(prefix string, resp *uint32) error {
	id := s.broker.NextId()
	go s.broker.AcceptAndServe(id, &EchoServer{prefix: prefix})
	*resp = id
	return nil
}

// Print writes to the plugin's stdout and stderr, which go-plugin's Serve has
// replaced by pipes it forwards over the stdout and stderr yamux streams.
func (s *CallbackServer) Print(text string, resp *bool) error {
	if _, err := fmt.Fprintf(os.Stdout, "stdout: %s\n", text); err != nil {
		return fmt.Errorf("print to stdout: %w", err)
	}
	if _, err := fmt.Fprintf(os.Stderr, "stderr: %s\n", text); err != nil {
		return fmt.Errorf("print to stderr: %w", err)
	}
	*resp = true
	return nil
}

// EchoServer is the plugin's Plugin.Echo behind an Offer.
type EchoServer struct{ prefix string }

func (e *EchoServer) Echo(text string, resp *string) error {
	*resp = e.prefix + text
	return nil
}

// UpperServer is the host's Plugin.Upper behind a Relay.
type UpperServer struct{}

func (UpperServer) Upper(text string, resp *string) error {
	*resp = strings.ToUpper(text)
	return nil
}

// CallbackClient is the host's side of callback.
type CallbackClient struct {
	broker *plugin.MuxBroker
	client *rpc.Client
}

// Relay serves Plugin.Upper on a fresh host broker id and asks the plugin to
// relay text through it. The server goroutine ends when the plugin closes the
// stream, or after go-plugin's 5 s accept timeout if it never dials.
func (c *CallbackClient) Relay(text string) (string, error) {
	id := c.broker.NextId()
	go c.broker.AcceptAndServe(id, UpperServer{})
	var resp string
	err := c.client.Call("Plugin.Relay", RelayArgs{BrokerID: id, Text: text}, &resp)
	return resp, err
}

// Offer asks the plugin to serve Plugin.Echo with prefix and dials it; the
// caller closes the client.
func (c *CallbackClient) Offer(prefix string) (*EchoClient, error) {
	var id uint32
	if err := c.client.Call("Plugin.Offer", prefix, &id); err != nil {
		return nil, err
	}
	conn, err := c.broker.Dial(id)
	if err != nil {
		return nil, fmt.Errorf("dial broker id %d: %w", id, err)
	}
	return &EchoClient{client: rpc.NewClient(conn)}, nil
}

// Print asks the plugin to print text to its stdout and stderr.
func (c *CallbackClient) Print(text string) (bool, error) {
	var ok bool
	err := c.client.Call("Plugin.Print", text, &ok)
	return ok, err
}

// EchoClient calls Plugin.Echo on what an Offer served.
type EchoClient struct{ client *rpc.Client }

func (e *EchoClient) Echo(text string) (string, error) {
	var resp string
	err := e.client.Call("Plugin.Echo", text, &resp)
	return resp, err
}

func (e *EchoClient) Close() error { return e.client.Close() }
