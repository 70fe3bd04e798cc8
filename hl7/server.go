package hl7

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/imaginghub/imaginghub/hl7/mllp"
)

// A Handler answers one inbound message. It returns the complete reply,
// usually built with NewACK. Following HL7 2.5.1 §2.9.2 original mode, an
// AA must mean the message is committed (the hub's "never acknowledge
// before durable" rule). A nil reply, or a panic, makes the server answer
// AE with table 0357 code 207, so the sender is never left waiting.
//
// ctx is cancelled when the server is closed.
type Handler interface {
	ServeHL7(ctx context.Context, msg *Message) []byte
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, msg *Message) []byte

// ServeHL7 calls f(ctx, msg).
func (f HandlerFunc) ServeHL7(ctx context.Context, msg *Message) []byte { return f(ctx, msg) }

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown
// or Close.
var ErrServerClosed = errors.New("hl7: server closed")

// Defaults used for zero Server fields.
const (
	DefaultAddr           = ":2575"
	DefaultIdleTimeout    = 10 * time.Minute
	DefaultReadTimeout    = time.Minute
	DefaultWriteTimeout   = time.Minute
	DefaultMaxConnections = 1024
)

// Server receives HL7 v2 messages over MLLP and answers each with its
// handler's reply on the same connection, in order (HL7 v2 Transport,
// MLLP release 1: one message, one acknowledgment). The zero value of
// every field but Handler works.
//
// A message that does not parse is rejected by the server itself: AR with
// an ERR naming the problem when enough of MSH was readable to address a
// reply (MSH-1 at least), otherwise the connection is closed, since there
// is no HL7 peer to answer. A block larger than MaxMessageSize also closes
// the connection: its end cannot be found without reading it.
type Server struct {
	Addr           string        // TCP address to listen on; DefaultAddr if empty
	Handler        Handler       // required
	MaxMessageSize int           // bytes per message; mllp.DefaultMaxMessageSize (1 MiB) if zero
	IdleTimeout    time.Duration // wait for the next message; DefaultIdleTimeout if zero, none if negative
	ReadTimeout    time.Duration // read one message once it began; DefaultReadTimeout if zero, none if negative
	WriteTimeout   time.Duration // write one reply; DefaultWriteTimeout if zero, none if negative
	MaxConnections int           // concurrent connections; DefaultMaxConnections if zero, unlimited if negative
	TLSConfig      *tls.Config   // when set, connections are TLS (needs a certificate)
	Logger         *slog.Logger  // slog.Default() if nil

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	closed    bool
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

type serverConn struct {
	nc   net.Conn
	idle bool // guarded by Server.mu
}

func (s *Server) init() {
	if s.ctx == nil {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*serverConn]struct{}{}
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func durationOr(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// deadline returns the time d from now, or the zero time (no deadline).
func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// ListenAndServe listens on s.Addr and serves until Shutdown or Close.
func (s *Server) ListenAndServe() error {
	addr := s.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("hl7: listen: %w", err)
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln until Shutdown or Close, and always
// returns a non-nil error (ErrServerClosed after a shutdown). ln is
// wrapped in TLS when TLSConfig is set.
func (s *Server) Serve(ln net.Listener) error {
	if s.Handler == nil {
		return errors.New("hl7: Server.Handler is nil")
	}
	if s.TLSConfig != nil {
		ln = tls.NewListener(ln, s.TLSConfig)
	}
	s.mu.Lock()
	s.init()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	log := s.logger()
	maxConns := s.MaxConnections
	if maxConns == 0 {
		maxConns = DefaultMaxConnections
	}
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("hl7: accept: %w", err)
			}
			// Out of file descriptors and the like: wait and retry
			// rather than give up the listener.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Warn("hl7: accept failed; retrying", "err", err, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c := &serverConn{nc: nc, idle: true}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		if maxConns > 0 && len(s.conns) >= maxConns {
			s.mu.Unlock()
			// Closing at once lets the sender's retry logic take over,
			// rather than holding it in the kernel's backlog.
			log.Warn("hl7: connection refused: MaxConnections reached", "remote", nc.RemoteAddr().String(), "max", maxConns)
			nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// setIdle marks c idle or busy; it reports false when the server is
// shutting down and c should stop.
func (s *Server) setIdle(c *serverConn, idle bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.idle = idle
	return !s.closed
}

func (s *Server) serveConn(c *serverConn) {
	log := s.logger().With("remote", c.nc.RemoteAddr().String())
	defer func() {
		c.nc.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	idleTimeout := durationOr(s.IdleTimeout, DefaultIdleTimeout)
	readTimeout := durationOr(s.ReadTimeout, DefaultReadTimeout)
	writeTimeout := durationOr(s.WriteTimeout, DefaultWriteTimeout)
	br := bufio.NewReaderSize(c.nc, 16<<10)
	r := mllp.NewReader(br, s.MaxMessageSize)
	w := mllp.NewWriter(c.nc)
	log.Debug("hl7: connection opened")
	for {
		if !s.setIdle(c, true) {
			return
		}
		_ = c.nc.SetReadDeadline(deadline(idleTimeout))
		if err := r.WaitForBlock(); err != nil {
			s.logReadEnd(log, err, "idle")
			return
		}
		if !s.setIdle(c, false) {
			return
		}
		_ = c.nc.SetReadDeadline(deadline(readTimeout))
		raw, err := r.ReadMessage()
		if err != nil {
			s.logReadEnd(log, err, "reading message")
			return
		}
		reply := s.handle(log, raw)
		if reply == nil {
			return
		}
		_ = c.nc.SetWriteDeadline(deadline(writeTimeout))
		if err := w.WriteMessage(reply); err != nil {
			log.Warn("hl7: writing reply failed", "err", err)
			return
		}
	}
}

func (s *Server) logReadEnd(log *slog.Logger, err error, state string) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF):
		log.Debug("hl7: connection closed by peer")
	case errors.Is(err, mllp.ErrMessageTooLarge):
		log.Warn("hl7: closing connection: message too large", "max", s.MaxMessageSize)
	case errors.As(err, &ne) && ne.Timeout():
		log.Info("hl7: closing connection: timeout", "state", state)
	default:
		log.Info("hl7: closing connection", "state", state, "err", err)
	}
}

// handle turns one received message into its reply; nil closes the
// connection.
func (s *Server) handle(log *slog.Logger, raw []byte) []byte {
	msg, err := Parse(raw)
	if err != nil {
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Header == nil {
			log.Warn("hl7: closing connection: input is not an HL7 message", "err", err, "bytes", len(raw))
			return nil
		}
		text := pe.Code.String()
		if pe.Detail != "" {
			text += ": " + pe.Detail
		}
		log.Warn("hl7: rejecting message", "control_id", pe.Header.MessageControlID, "err", err)
		reply, berr := NewACKFromHeader(*pe.Header, AR, &ACKOptions{
			Errors: []ErrorDetail{{Location: pe.Location, Code: pe.Code, Text: text}},
		})
		if berr != nil {
			log.Error("hl7: building reject failed", "err", berr)
			return nil
		}
		return reply
	}
	h := msg.Header()
	reply := s.callHandler(log, msg)
	if reply == nil {
		log.Error("hl7: handler gave no reply; answering AE", "type", h.MessageType, "trigger", h.TriggerEvent, "control_id", h.MessageControlID)
		reply, err = NewACK(msg, AE, &ACKOptions{Errors: []ErrorDetail{{Code: ApplicationInternalError}}})
		if err != nil {
			return nil
		}
	}
	return reply
}

func (s *Server) callHandler(log *slog.Logger, msg *Message) (reply []byte) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("hl7: handler panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			reply = nil
		}
	}()
	return s.Handler.ServeHL7(s.ctx, msg)
}

// Shutdown stops accepting, closes idle connections, and waits for the
// messages being handled to be answered before closing their connections.
// If ctx ends first, the remaining connections are closed and ctx's error
// returned. A message half-received at shutdown is dropped unanswered;
// its sender will resend it.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.init()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for c := range s.conns {
			if c.idle {
				c.nc.Close()
			}
		}
		s.mu.Unlock()
		select {
		case <-done:
			s.cancel()
			return nil
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes the listeners and every connection at once, and cancels
// the handlers' context.
func (s *Server) Close() error {
	s.mu.Lock()
	s.init()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.cancel()
	return nil
}
