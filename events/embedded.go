package events

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultEmbeddedListen is where `imaginghub serve` lets its embedded NATS
// server listen so that the nats CLI can watch the streams. It is one above
// NATS's own default port, to stay clear of a NATS server already on the host.
const DefaultEmbeddedListen = "127.0.0.1:4223"

// ErrNoStoreDir is returned by StartEmbedded when EmbeddedOptions.StoreDir is
// empty: JetStream must keep events on a disk the operator chose, never in a
// shared temporary directory.
var ErrNoStoreDir = errors.New("events: embedded NATS needs a StoreDir")

// EmbeddedOptions configure an in-process NATS server.
type EmbeddedOptions struct {
	// StoreDir holds the JetStream file store. Required.
	StoreDir string
	// Listen is the host:port of the client listener. Empty or a port of 0
	// picks a free port (what tests want); production passes
	// DefaultEmbeddedListen.
	Listen string
	// InProcessOnly disables the TCP listener: clients can only connect
	// in-process (Options.InProcessServer).
	InProcessOnly bool
	// ServerName names the server in JetStream metadata; default "imaginghub".
	ServerName string
	// MaxStore and MaxMemory bound JetStream's file and memory storage in
	// bytes; 0 lets the server pick from the disk and RAM it finds.
	MaxStore, MaxMemory int64
	// StartTimeout bounds the wait for the server to accept connections;
	// default 10s.
	StartTimeout time.Duration
	// Logger receives the server's log; nil uses slog.Default(). Server
	// debug and trace lines are never enabled: they would carry payloads.
	Logger *slog.Logger
}

// EmbeddedServer is a NATS server with JetStream running in this process.
type EmbeddedServer struct {
	srv  *server.Server
	once sync.Once
}

// StartEmbedded starts a NATS server with JetStream in this process and waits
// until it accepts connections.
func StartEmbedded(opts EmbeddedOptions) (*EmbeddedServer, error) {
	if opts.StoreDir == "" {
		return nil, ErrNoStoreDir
	}
	if err := os.MkdirAll(opts.StoreDir, 0o750); err != nil {
		return nil, fmt.Errorf("events: embedded NATS store: %w", err)
	}
	name := opts.ServerName
	if name == "" {
		name = "imaginghub"
	}
	sopts := &server.Options{
		ServerName:         name,
		JetStream:          true,
		StoreDir:           opts.StoreDir,
		JetStreamMaxStore:  opts.MaxStore,
		JetStreamMaxMemory: opts.MaxMemory,
		NoSigs:             true,
		DontListen:         opts.InProcessOnly,
		// No monitoring, cluster, leafnode or websocket listeners: the
		// embedded server serves this process and the local nats CLI only.
	}
	if !opts.InProcessOnly {
		host, port, err := splitListen(opts.Listen)
		if err != nil {
			return nil, err
		}
		sopts.Host = host
		sopts.Port = port
		if port != server.RANDOM_PORT {
			// nats-server reports a failed listen only through its logger,
			// so probe the address first to give the operator a plain error.
			addr := net.JoinHostPort(host, strconv.Itoa(port))
			l, err := net.Listen("tcp", addr)
			if err != nil {
				if errors.Is(err, syscall.EADDRINUSE) {
					return nil, fmt.Errorf("nats listen %s: %w", addr, syscall.EADDRINUSE)
				}
				return nil, fmt.Errorf("nats listen %s: %w", addr, err)
			}
			l.Close()
		}
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("events: embedded NATS: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	sl := &serverLogger{log: logger.With("component", "nats-server")}
	srv.SetLogger(sl, false, false)
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	go srv.Start()
	if !srv.ReadyForConnections(timeout) {
		srv.Shutdown()
		if f := sl.fatal(); f != "" {
			return nil, fmt.Errorf("events: embedded NATS: %s", f)
		}
		return nil, fmt.Errorf("events: embedded NATS not ready after %s", timeout)
	}
	return &EmbeddedServer{srv: srv}, nil
}

// splitListen turns host:port into nats-server's host and port, mapping an
// empty address or port 0 to a random port (nats-server reads 0 as 4222).
func splitListen(listen string) (string, int, error) {
	if listen == "" {
		return "127.0.0.1", server.RANDOM_PORT, nil
	}
	host, ps, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("events: embedded NATS listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("events: embedded NATS listen %q: bad port", listen)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// ClientURL is the nats:// URL of the TCP listener, "" when InProcessOnly.
func (s *EmbeddedServer) ClientURL() string {
	if s.srv.Addr() == nil {
		return ""
	}
	return s.srv.ClientURL()
}

// InProcessConn implements nats.InProcessConnProvider, so that
// Options.InProcessServer can connect without a socket.
func (s *EmbeddedServer) InProcessConn() (net.Conn, error) { return s.srv.InProcessConn() }

// Shutdown stops the server and waits until it has; JetStream state is
// flushed to StoreDir. Safe to call more than once.
func (s *EmbeddedServer) Shutdown() {
	s.once.Do(func() {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	})
}

// serverLogger forwards nats-server's log to slog. Fatalf must not exit the
// process as the server's own logger does: the hub decides how to fail.
type serverLogger struct {
	log *slog.Logger

	mu       sync.Mutex
	firstErr string
}

// Noticef goes to debug: the server's notices are its start-up banner and
// routine chatter; the hub logs its own line when the server is up.
func (l *serverLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Errorf(format string, v ...any) {
	l.record(format, v...)
	l.log.Error(fmt.Sprintf(format, v...))
}
func (l *serverLogger) Fatalf(format string, v ...any) {
	l.record(format, v...)
	l.log.Error(fmt.Sprintf(format, v...), "fatal", true)
}
func (l *serverLogger) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Tracef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }

func (l *serverLogger) record(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.firstErr == "" {
		l.firstErr = fmt.Sprintf(format, v...)
	}
}

func (l *serverLogger) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstErr
}
