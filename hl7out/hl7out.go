// Package hl7out sends HL7 v2 messages to peers over MLLP reliably: Enqueue
// stores a message on a durable per-destination queue (the work-queue
// stream IH_HL7_OUT, subject ihhl7.out.<destination token>), and the
// component "hl7out" runs one worker per destination that keeps a
// persistent connection, sends the queued messages one at a time in order
// and waits for each acknowledgment (HL7 2.5.1 §2.9.2 original mode).
//
// AA (or CA) completes a message. AE, AR, a timeout or a broken connection
// make it retry after a back-off; after hl7.send_attempts tries it is
// dead-lettered, listed by GET /api/hl7/failed and replayable with
// POST /api/hl7/failed/{id}/replay.
package hl7out

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hl7"
	"github.com/imaginghub/imaginghub/hl7intake"
	"github.com/imaginghub/imaginghub/hub"
)

const (
	// StreamName is the base name of the outbound queue stream.
	StreamName = hl7intake.OutStreamName
	// SubjectRoot is the first two tokens of every queue subject.
	SubjectRoot = "ihhl7.out"
	// HeaderDestination carries the host:port a queued message goes to.
	HeaderDestination = "Ih-Hl7-Destination"
)

// Sentinel errors.
var (
	// ErrDestination: the destination is not a host:port.
	ErrDestination = errors.New("hl7out: destination must be host:port")
	// ErrMessage: the message is not an HL7 v2 message with a usable MSH.
	ErrMessage = errors.New("hl7out: not an HL7 message")
	// ErrNotAccepted: the peer answered AE or AR.
	ErrNotAccepted = errors.New("hl7out: peer did not accept the message")
)

// DefaultBackOff is the delay before the 2nd, 3rd, … attempt.
var DefaultBackOff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}

// Token is the subject token of a destination: the hex of host:port, which
// keeps destinations apart whatever characters they hold and can be read
// back (see Destination).
func Token(destination string) string { return hex.EncodeToString([]byte(destination)) }

// Destination reverses Token.
func Destination(token string) (string, error) {
	b, err := hex.DecodeString(token)
	return string(b), err
}

// Subject is the queue subject of a destination.
func Subject(destination string) string { return SubjectRoot + "." + Token(destination) }

// StreamSpec is the outbound queue stream: work-queue retention, so a
// message is gone once its worker acknowledged it.
func StreamSpec() events.StreamSpec {
	return events.StreamSpec{
		Name:        StreamName,
		Description: "HL7 v2 messages waiting to be sent over MLLP, one subject per destination",
		Subjects:    []string{SubjectRoot + ".*"},
		Retention:   jetstream.WorkQueuePolicy,
		Duplicates:  24 * time.Hour,
	}
}

// Enqueue stores msg durably for delivery to destination (host:port) and
// returns once it is stored. Enqueueing the same message (destination,
// MSH-3, MSH-4, MSH-10) again within a day stores it once. Anyone may call
// it; the hl7out component delivers.
func Enqueue(ctx context.Context, bus *events.Bus, destination string, msg []byte) error {
	if _, port, err := net.SplitHostPort(destination); err != nil || port == "" {
		return fmt.Errorf("%w: %q", ErrDestination, destination)
	}
	m, err := hl7.Parse(msg)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMessage, err)
	}
	sum := sha256.Sum256([]byte(destination + "\x00" + hl7intake.MessageKey(m.Header())))
	h := nats.Header{}
	h.Set(HeaderDestination, destination)
	h.Set(hl7intake.HeaderMessageType, m.Header().MessageType+"^"+m.Header().TriggerEvent)
	if _, err := bus.PublishRaw(ctx, Subject(destination), hex.EncodeToString(sum[:16]), msg, h); err != nil {
		return fmt.Errorf("hl7out: enqueue: %w", err)
	}
	return nil
}

// Sender is the component "hl7out".
type Sender struct {
	rt  *hub.Runtime
	log *slog.Logger
	// Timeout bounds the wait for each acknowledgment (hl7.send_timeout).
	Timeout time.Duration
	// Attempts is how many tries a message gets before it is
	// dead-lettered (hl7.send_attempts).
	Attempts int
	// BackOff is the delay after the n-th failed try; DefaultBackOff if nil.
	BackOff []time.Duration
	// ScanInterval is how often queues filled by other processes are
	// looked for; default 5s.
	ScanInterval time.Duration

	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	workers map[string]*worker
	done    chan struct{}
}

type worker struct {
	client *hl7.Client
	cons   *events.Consumer
}

// New builds the sender on rt with hl7.send_timeout and hl7.send_attempts.
func New(rt *hub.Runtime) *Sender {
	return &Sender{
		rt:       rt,
		log:      rt.Log.With("component", "hl7out"),
		Timeout:  rt.Config.HL7.SendTimeout,
		Attempts: rt.Config.HL7.SendAttempts,
		workers:  map[string]*worker{},
	}
}

// Name implements hub.Component.
func (s *Sender) Name() string { return "hl7out" }

// Start implements hub.Component: it starts a worker for every destination
// with queued messages, and keeps looking for new ones.
func (s *Sender) Start(ctx context.Context) error {
	if _, err := s.rt.Bus.EnsureStream(ctx, StreamSpec()); err != nil {
		return fmt.Errorf("hl7out: stream: %w", err)
	}
	s.mu.Lock()
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.done = make(chan struct{})
	s.mu.Unlock()
	if err := s.scan(ctx); err != nil {
		return err
	}
	interval := s.ScanInterval
	if interval <= 0 {
		interval = 5 * time.Second
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
				if err := s.scan(s.ctx); err != nil && s.ctx.Err() == nil {
					s.log.Warn("outbound queue scan failed", "err", err)
				}
			}
		}
	}()
	return nil
}

// scan starts workers for destinations that have queued messages.
func (s *Sender) scan(ctx context.Context) error {
	st, err := s.rt.Bus.JetStream().Stream(ctx, s.rt.Bus.StreamName(StreamName))
	if err != nil {
		return fmt.Errorf("hl7out: stream: %w", err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(s.rt.Bus.Subject(SubjectRoot+".*")))
	if err != nil {
		return fmt.Errorf("hl7out: stream info: %w", err)
	}
	for subj := range info.State.Subjects {
		tok := subj[strings.LastIndexByte(subj, '.')+1:]
		dest, err := Destination(tok)
		if err != nil {
			continue
		}
		if err := s.ensureWorker(ctx, dest); err != nil {
			return err
		}
	}
	return nil
}

// Enqueue stores msg for destination (see the package function) and makes
// sure this process delivers it.
func (s *Sender) Enqueue(ctx context.Context, destination string, msg []byte) error {
	if err := Enqueue(ctx, s.rt.Bus, destination, msg); err != nil {
		return err
	}
	return s.ensureWorker(ctx, destination)
}

func (s *Sender) ensureWorker(ctx context.Context, dest string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil || s.ctx.Err() != nil {
		return nil // not running here; a running sender's scan finds the queue
	}
	if _, ok := s.workers[dest]; ok {
		return nil
	}
	w := &worker{client: &hl7.Client{Addr: dest, Timeout: s.Timeout}}
	backOff := s.BackOff
	if backOff == nil {
		backOff = DefaultBackOff
	}
	ackWait := s.Timeout + 30*time.Second
	cons, err := s.rt.Bus.ConsumeRaw(s.ctx, events.ConsumerSpec{
		Name:           "hl7out-" + Token(dest),
		Description:    "MLLP sender to " + dest,
		Stream:         StreamName,
		FilterSubjects: []string{Subject(dest)},
		MaxDeliver:     s.Attempts,
		BackOff:        backOff,
		AckWait:        ackWait,
		// MLLP allows one outstanding message per connection, and the
		// receiver expects them in the order queued.
		Concurrency:   1,
		MaxAckPending: 1,
	}, func(ctx context.Context, d events.Delivery) error { return s.send(ctx, w.client, dest, d) })
	if err != nil {
		return fmt.Errorf("hl7out: worker for %s: %w", dest, err)
	}
	w.cons = cons
	s.workers[dest] = w
	s.log.Info("outbound MLLP worker started", "destination", dest)
	return nil
}

func (s *Sender) send(ctx context.Context, c *hl7.Client, dest string, d events.Delivery) error {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = hl7.DefaultSendTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ack, err := c.Send(ctx, d.Data)
	if err != nil {
		s.log.Warn("outbound MLLP send failed", "destination", dest, "attempt", d.NumDelivered, "err", err)
		c.Close() // a fresh connection for the next try
		return fmt.Errorf("hl7out: send to %s: %w", dest, err)
	}
	switch code := ack.AckCode(); code {
	case hl7.AA, hl7.CA:
		return nil
	default:
		s.log.Warn("outbound message not accepted", "destination", dest, "ack", string(code), "attempt", d.NumDelivered)
		return fmt.Errorf("%w: %s answered %s (%s)", ErrNotAccepted, dest, code, ack.Get("ERR-3.2"))
	}
}

// Shutdown implements hub.Component: each worker finishes the message in
// hand, then its connection is closed.
func (s *Sender) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.cancel == nil {
		s.mu.Unlock()
		return nil
	}
	s.cancel()
	workers := s.workers
	s.workers = map[string]*worker{}
	done := s.done
	s.mu.Unlock()
	finished := make(chan struct{})
	go func() {
		for _, w := range workers {
			w.cons.Stop()
			w.client.Close()
		}
		<-done
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
