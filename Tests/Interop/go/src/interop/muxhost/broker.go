package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"path/filepath"
	"sync"

	"github.com/hashicorp/yamux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginproto "goplugin/plugin"
)

// broker is the host side of plugin.GRPCBroker/StartStream (spec §3.7),
// accepting only: the host serves under an ID and the plugin dials it.
// Multiplexed, a served ID waits for the plugin's knock and then takes the
// next yamux stream the plugin opens; otherwise it listens on a Unix socket
// whose address goes to the plugin as ConnInfo.
type broker struct {
	stream  pluginproto.GRPCBroker_StartStreamClient
	cancel  context.CancelFunc
	session *yamux.Session // nil unless multiplexed
	dir     string         // where non-mux listeners go

	sendMu sync.Mutex

	mu        sync.Mutex
	listeners map[uint32]*streamListener
	servers   []*grpc.Server

	// knocks queues the IDs whose knock was acknowledged, for acceptLoop to
	// take one plugin-opened stream each, in order.
	knocks chan uint32
	done   chan struct{}
	// recvDone is closed when StartStream ends.
	recvDone chan struct{}
}

// startBroker opens StartStream on conn and runs its receive loop, and if
// session is not nil the loop that hands plugin-opened streams to listeners.
func startBroker(conn *grpc.ClientConn, session *yamux.Session, dir string) (*broker, error) {
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := pluginproto.NewGRPCBrokerClient(conn).StartStream(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("plugin.GRPCBroker/StartStream: %w", err)
	}
	b := &broker{
		stream:    stream,
		cancel:    cancel,
		session:   session,
		dir:       dir,
		listeners: map[uint32]*streamListener{},
		knocks:    make(chan uint32, 64),
		done:      make(chan struct{}),
		recvDone:  make(chan struct{}),
	}
	go b.recvLoop()
	if session != nil {
		go b.acceptLoop()
	}
	return b, nil
}

func (b *broker) send(msg *pluginproto.ConnInfo) error {
	b.sendMu.Lock()
	defer b.sendMu.Unlock()
	return b.stream.Send(msg)
}

func (b *broker) recvLoop() {
	defer close(b.recvDone)
	for {
		msg, err := b.stream.Recv()
		if err != nil {
			// Canceled: we ended it, before Shutdown.
			if err != io.EOF && status.Code(err) != codes.Canceled {
				log.Printf("go-mux-host: broker stream ended: %v", err)
			}
			return
		}
		k := msg.GetKnock()
		switch {
		case k != nil && k.Knock && !k.Ack:
			b.knock(msg.ServiceId)
		case k != nil:
			log.Printf("go-mux-host: broker: ignoring knock reply for id %d (knock=%v ack=%v error=%q): this host dials nothing", msg.ServiceId, k.Knock, k.Ack, k.Error)
		default:
			log.Printf("go-mux-host: broker: ignoring ConnInfo for id %d (%s %s): this host dials nothing", msg.ServiceId, msg.Network, msg.Address)
		}
	}
}

// knock answers the plugin's knock for id: an ack, with an error if nothing
// is served under id, and then the next stream the plugin opens goes to id.
func (b *broker) knock(id uint32) {
	b.mu.Lock()
	l := b.listeners[id]
	b.mu.Unlock()
	ack := &pluginproto.ConnInfo_Knock{Knock: true, Ack: true}
	if l == nil {
		ack.Error = fmt.Sprintf("no listener for id %d", id)
	}
	log.Printf("go-mux-host: broker: knock for id %d, replying ack error=%q", id, ack.Error)
	if err := b.send(&pluginproto.ConnInfo{ServiceId: id, Knock: ack}); err != nil {
		log.Printf("go-mux-host: broker: sending knock ack for id %d: %v", id, err)
		return
	}
	if l == nil {
		return
	}
	select {
	case b.knocks <- id:
	case <-b.done:
	}
}

// acceptLoop gives each acknowledged knock, in order, the next stream the
// plugin opens. Streams are accepted (yamux-ACKed) only for a knock, as
// go-plugin's host does.
func (b *broker) acceptLoop() {
	for {
		var id uint32
		select {
		case id = <-b.knocks:
		case <-b.done:
			return
		}
		conn, err := b.session.Accept()
		if err != nil {
			log.Printf("go-mux-host: broker: accepting the stream for id %d: %v", id, err)
			return
		}
		log.Printf("go-mux-host: broker: stream %d goes to id %d", conn.(*yamux.Stream).StreamID(), id)
		b.mu.Lock()
		l := b.listeners[id]
		b.mu.Unlock()
		if l == nil {
			conn.Close()
			continue
		}
		l.deliver(conn)
	}
}

// acceptAndServe serves a gRPC server that register fills under id until
// close: multiplexed it waits for knocks, otherwise it listens on a Unix
// socket and sends its address as ConnInfo.
func (b *broker) acceptAndServe(id uint32, register func(*grpc.Server)) error {
	var l net.Listener
	if b.session != nil {
		sl := newStreamListener(id)
		b.mu.Lock()
		b.listeners[id] = sl
		b.mu.Unlock()
		l = sl
	} else {
		path := filepath.Join(b.dir, fmt.Sprintf("broker-%d", id))
		ul, err := net.Listen("unix", path)
		if err != nil {
			return err
		}
		l = ul
	}
	s := grpc.NewServer()
	register(s)
	b.mu.Lock()
	b.servers = append(b.servers, s)
	b.mu.Unlock()
	go func() {
		if err := s.Serve(l); err != nil && !errors.Is(err, errListenerClosed) {
			log.Printf("go-mux-host: broker: serving id %d: %v", id, err)
		}
	}()
	if b.session == nil {
		return b.send(&pluginproto.ConnInfo{ServiceId: id, Network: "unix", Address: l.Addr().String()})
	}
	return nil
}

// close ends StartStream and stops every server.
func (b *broker) close() {
	close(b.done)
	b.cancel()
	b.mu.Lock()
	servers := b.servers
	b.mu.Unlock()
	for _, s := range servers {
		s.Stop()
	}
}

var errListenerClosed = errors.New("broker listener closed")

// streamListener is a net.Listener over the yamux streams knocks give it.
type streamListener struct {
	id     uint32
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newStreamListener(id uint32) *streamListener {
	return &streamListener{id: id, conns: make(chan net.Conn, 1), closed: make(chan struct{})}
}

func (l *streamListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, errListenerClosed
	}
}

func (l *streamListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *streamListener) Addr() net.Addr { return brokerAddr(l.id) }

func (l *streamListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.closed:
		c.Close()
	}
}

// brokerAddr names a multiplexed broker listener.
type brokerAddr uint32

func (a brokerAddr) Network() string { return "yamux" }
func (a brokerAddr) String() string  { return fmt.Sprintf("broker-%d", uint32(a)) }
