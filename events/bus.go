package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrClosed is returned by Bus methods after Close.
var ErrClosed = errors.New("events: bus closed")

// Options configure a Bus. The zero value works against a single NATS
// server with production names.
type Options struct {
	// Name is the NATS connection name shown by the server; default
	// "imaginghub".
	Name string
	// SubjectPrefix is put in front of every subject the Bus publishes,
	// consumes or binds a stream to ("" in production; "t<token>." in tests
	// that share a server). Callers always pass unprefixed subjects.
	SubjectPrefix string
	// StreamPrefix is put in front of every stream name ("" in production).
	StreamPrefix string
	// Replicas of the streams the Bus creates; default 1. A clustered
	// deployment uses 3.
	Replicas int
	// EventsMaxAge is how long the event stream keeps events; default 7 days.
	EventsMaxAge time.Duration
	// DuplicateWindow is how long JetStream remembers Nats-Msg-Id values to
	// drop repeats; default 10 minutes. It bounds how late a retried outbox
	// row is still recognised as a duplicate.
	DuplicateWindow time.Duration
	// DeadLetterMaxAge is how long dead letters wait for an operator;
	// default 90 days.
	DeadLetterMaxAge time.Duration
	// ReconnectWait is the pause between reconnect attempts; default 2s.
	// The Bus reconnects forever.
	ReconnectWait time.Duration
	// PublishTimeout bounds one publish attempt (request to PubAck); default
	// 5s. Publish retries attempts until its context ends.
	PublishTimeout time.Duration
	// InProcessServer, when set, connects without a socket (to an
	// EmbeddedServer); the url passed to Connect is then ignored.
	InProcessServer nats.InProcessConnProvider
	// NATSOptions are added to the connection options (credentials, TLS).
	NATSOptions []nats.Option
	// Registerer receives the Bus's Prometheus metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger receives connection and consumer logs; nil uses slog.Default().
	Logger *slog.Logger
}

// Bus is a connection to NATS JetStream with the hub's naming applied.
// It is safe for concurrent use.
type Bus struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	opts    Options
	log     *slog.Logger
	metrics *metrics
}

// Connect connects to the NATS server at url (or to Options.InProcessServer)
// and waits until the first connection is made or ctx ends. Later outages
// are ridden out: the connection reconnects forever, and publishers retry.
func Connect(ctx context.Context, url string, opts Options) (*Bus, error) {
	if opts.Name == "" {
		opts.Name = "imaginghub"
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.EventsMaxAge <= 0 {
		opts.EventsMaxAge = 7 * 24 * time.Hour
	}
	if opts.DuplicateWindow <= 0 {
		opts.DuplicateWindow = 10 * time.Minute
	}
	if opts.DeadLetterMaxAge <= 0 {
		opts.DeadLetterMaxAge = 90 * 24 * time.Hour
	}
	if opts.ReconnectWait <= 0 {
		opts.ReconnectWait = 2 * time.Second
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 5 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "events")
	if url == "" {
		url = nats.DefaultURL
	}

	connected := make(chan struct{}, 1)
	signal := func() {
		select {
		case connected <- struct{}{}:
		default:
		}
	}
	nopts := []nats.Option{
		nats.Name(opts.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(opts.ReconnectWait),
		nats.RetryOnFailedConnect(true),
		// No client-side buffering while disconnected: a publish fails at
		// once and Publish retries it, instead of sitting in a buffer that
		// is lost if the process dies before the server returns.
		nats.ReconnectBufSize(-1),
		nats.ConnectHandler(func(*nats.Conn) { signal() }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("NATS disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("NATS reconnected", "server", c.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("NATS async error", "subject", subj, "err", err)
		}),
	}
	if opts.InProcessServer != nil {
		nopts = append(nopts, nats.InProcessServer(opts.InProcessServer))
	}
	nopts = append(nopts, opts.NATSOptions...)
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		return nil, fmt.Errorf("events: connect NATS: %w", err)
	}
	if !nc.IsConnected() {
		log.Warn("NATS not reachable yet; retrying", "url", nc.Opts.Url)
		select {
		case <-connected:
		case <-ctx.Done():
			nc.Close()
			return nil, fmt.Errorf("events: connect NATS: %w", ctx.Err())
		}
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithDefaultTimeout(opts.PublishTimeout),
	)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("events: JetStream: %w", err)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &Bus{nc: nc, js: js, opts: opts, log: log, metrics: m}, nil
}

// Close closes the connection. Stop consumers first to drain them.
func (b *Bus) Close() { b.nc.Close() }

// Conn is the underlying NATS connection.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JetStream is the underlying JetStream context.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Subject is the full subject of an unprefixed subject or event type.
func (b *Bus) Subject(s string) string { return Subject(b.opts.SubjectPrefix, s) }

// StreamName is the full name of a stream given its base name ("IH_EVENTS").
func (b *Bus) StreamName(base string) string { return b.opts.StreamPrefix + base }

// SubjectPrefix and StreamPrefix report the prefixes in use.
func (b *Bus) SubjectPrefix() string { return b.opts.SubjectPrefix }

// StreamPrefix reports the stream-name prefix in use.
func (b *Bus) StreamPrefix() string { return b.opts.StreamPrefix }
