package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers the Bus sets on every event message, so that tools and consumers
// can route without decoding the envelope.
const (
	HeaderEventID   = "Ih-Event-Id"
	HeaderEventType = "Ih-Event-Type"
)

// ErrNoStream is returned when no stream is bound to the subject published
// to; the subject is likely misspelled, or EnsureStreams has not run.
var ErrNoStream = errors.New("events: no stream for subject")

// PubAck is JetStream's acknowledgement of a stored message.
type PubAck struct {
	Stream   string
	Sequence uint64
	// Duplicate reports that the stream already held a message with this
	// Nats-Msg-Id within its duplicate window, so nothing new was stored.
	// After a retried attempt it can also mean that an earlier attempt of
	// this same call was stored and only its ack was lost.
	Duplicate bool
}

// Message is one non-envelope message for PublishMsgs.
type Message struct {
	// Subject is unprefixed; the Bus adds its prefix.
	Subject string
	// MsgID becomes Nats-Msg-Id, the key of JetStream's duplicate window.
	MsgID  string
	Data   []byte
	Header nats.Header
}

// BatchError reports which messages of a batch were not stored. Errs is
// aligned with the batch: nil entries were stored.
type BatchError struct {
	Errs []error
}

func (e *BatchError) Error() string {
	n, first := 0, error(nil)
	for _, err := range e.Errs {
		if err != nil {
			if first == nil {
				first = err
			}
			n++
		}
	}
	return fmt.Sprintf("events: %d of %d messages not published: %v", n, len(e.Errs), first)
}

// Unwrap exposes the per-message errors to errors.Is and errors.As.
func (e *BatchError) Unwrap() []error {
	var errs []error
	for _, err := range e.Errs {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Publish stores e on the event stream under Subject(prefix, e.Type) with
// Nats-Msg-Id = e.ID, and returns once JetStream acknowledged it (durable).
// While NATS is unreachable it keeps retrying until ctx ends; the
// deterministic id makes every retry safe.
func (b *Bus) Publish(ctx context.Context, e Event) (PubAck, error) {
	m, err := b.eventMsg(e)
	if err != nil {
		return PubAck{}, err
	}
	return b.publishMsg(ctx, m, e.ID)
}

// PublishRaw stores a non-envelope payload (a raw HL7 message, a forwarding
// job) on subject (unprefixed) with the given Nats-Msg-Id and headers.
func (b *Bus) PublishRaw(ctx context.Context, subject, msgID string, data []byte, header nats.Header) (PubAck, error) {
	return b.publishMsg(ctx, b.rawMsg(Message{Subject: subject, MsgID: msgID, Data: data, Header: header}), msgID)
}

func (b *Bus) publishMsg(ctx context.Context, m *nats.Msg, msgID string) (PubAck, error) {
	var last error
	start := time.Now()
	for attempt := 0; ; attempt++ {
		if b.nc.IsClosed() {
			return PubAck{}, ErrClosed
		}
		actx, cancel := context.WithTimeout(ctx, b.opts.PublishTimeout)
		ack, err := b.js.PublishMsg(actx, m, jetstream.WithMsgID(msgID), jetstream.WithRetryAttempts(0))
		cancel()
		if err == nil {
			b.metrics.published(ack.Duplicate)
			return PubAck{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
		}
		last = err
		if ctx.Err() != nil {
			return PubAck{}, fmt.Errorf("events: publish %s: %w (last error: %v)", m.Subject, ctx.Err(), last)
		}
		if !b.shouldRetry(err, start) {
			return PubAck{}, b.publishErr(m.Subject, err)
		}
		if attempt == 0 {
			b.log.Warn("publish failed; retrying", "subject", m.Subject, "err", err)
		}
		if err := sleep(ctx, retryDelay(attempt)); err != nil {
			return PubAck{}, fmt.Errorf("events: publish %s: %w (last error: %v)", m.Subject, err, last)
		}
	}
}

func (b *Bus) publishErr(subject string, err error) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("%w %s: %w", ErrNoStream, subject, err)
	}
	return fmt.Errorf("events: publish %s: %w", subject, err)
}

// PublishBatch publishes events asynchronously and waits for every
// PubAck, retrying the ones that failed for a transient reason until ctx
// ends. It is the outbox relay's fast path: thousands of events a second
// instead of one round trip each. Order across retried events is not
// kept; consumers must not depend on it. On failure the error is a
// *BatchError saying which events were not stored.
func (b *Bus) PublishBatch(ctx context.Context, events []Event) error {
	msgs := make([]*nats.Msg, len(events))
	ids := make([]string, len(events))
	for i, e := range events {
		m, err := b.eventMsg(e)
		if err != nil {
			return err
		}
		msgs[i], ids[i] = m, e.ID
	}
	return b.publishAsync(ctx, msgs, ids)
}

// PublishMsgs is PublishBatch for non-envelope messages, such as outbox
// rows that already hold the serialized envelope.
func (b *Bus) PublishMsgs(ctx context.Context, batch []Message) error {
	msgs := make([]*nats.Msg, len(batch))
	ids := make([]string, len(batch))
	for i, m := range batch {
		msgs[i], ids[i] = b.rawMsg(m), m.MsgID
	}
	return b.publishAsync(ctx, msgs, ids)
}

// publishAsync sends every message without waiting, then collects the
// PubAcks. Messages whose ack did not come (outage, slow server, no
// stream) are retried one by one through publishMsg, which knows how long
// each kind of failure is worth retrying.
func (b *Bus) publishAsync(ctx context.Context, msgs []*nats.Msg, ids []string) error {
	if b.nc.IsClosed() {
		return ErrClosed
	}
	errs := make([]error, len(msgs))
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		// No retries inside the client: they would reuse m while the
		// fallback below publishes it again.
		futures[i], errs[i] = b.js.PublishMsgAsync(m, jetstream.WithMsgID(ids[i]),
			jetstream.WithStallWait(b.opts.PublishTimeout), jetstream.WithRetryAttempts(0))
	}
	deadline := time.NewTimer(b.opts.PublishTimeout)
	defer deadline.Stop()
	expired := false
	var retry []int
	for i, f := range futures {
		if errs[i] == nil {
			var ack *jetstream.PubAck
			ack, errs[i] = waitAck(ctx, f, deadline.C, &expired)
			if errs[i] == nil {
				b.metrics.published(ack.Duplicate)
				continue
			}
		}
		retry = append(retry, i)
	}
	if len(retry) > 0 && ctx.Err() == nil {
		b.log.Warn("batch publish incomplete; retrying one by one", "failed", len(retry), "of", len(msgs), "err", errs[retry[0]])
	}
	failed := false
	for _, i := range retry {
		if ctx.Err() != nil {
			errs[i] = fmt.Errorf("events: publish %s: %w (last error: %v)", msgs[i].Subject, ctx.Err(), errs[i])
		} else {
			// A copy: a late ack timer in the client may still hold msgs[i].
			_, errs[i] = b.publishMsg(ctx, copyMsg(msgs[i]), ids[i])
		}
		failed = failed || errs[i] != nil
	}
	if failed {
		return &BatchError{Errs: errs}
	}
	return nil
}

func (b *Bus) eventMsg(e Event) (*nats.Msg, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	data, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("events: marshal %s: %w", e.ID, err)
	}
	m := nats.NewMsg(b.Subject(e.Type))
	m.Data = data
	m.Header.Set(HeaderEventID, e.ID)
	m.Header.Set(HeaderEventType, e.Type)
	return m, nil
}

func copyMsg(m *nats.Msg) *nats.Msg {
	c := nats.NewMsg(m.Subject)
	c.Data = m.Data
	for k, v := range m.Header {
		c.Header[k] = append([]string(nil), v...)
	}
	return c
}

func (b *Bus) rawMsg(msg Message) *nats.Msg {
	m := nats.NewMsg(b.Subject(msg.Subject))
	m.Data = msg.Data
	for k, v := range msg.Header {
		m.Header[k] = append([]string(nil), v...)
	}
	return m
}

// waitAck waits for one PubAck of a batch. Once the batch's deadline has
// passed (*expired), acks that already arrived are still taken but none is
// waited for; a later retry with the same Nats-Msg-Id is harmless.
func waitAck(ctx context.Context, f jetstream.PubAckFuture, deadline <-chan time.Time, expired *bool) (*jetstream.PubAck, error) {
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		return nil, err
	default:
	}
	if *expired {
		return nil, context.DeadlineExceeded
	}
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		return nil, err
	case <-deadline:
		*expired = true
		return nil, context.DeadlineExceeded
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// shouldRetry decides whether a failed attempt begun at start is tried
// again. "No responders" is retried only for PublishTimeout: while NATS
// restarts, JetStream answers again within seconds, but a subject that no
// stream binds never will.
func (b *Bus) shouldRetry(err error, start time.Time) bool {
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
		return time.Since(start) < b.opts.PublishTimeout
	}
	return retryable(err)
}

// retryable reports whether a publish error is worth another attempt: the
// server is away (no responders, closed socket, reconnecting) or slow.
func retryable(err error) bool {
	switch {
	case errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrReconnectBufExceeded),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, jetstream.ErrAsyncPublishTimeout),
		errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// 503: JetStream temporarily unavailable (leader election, restart).
		return apiErr.Code == 503
	}
	return strings.Contains(err.Error(), "connection")
}

// retryDelay grows from 100ms to 2s: short enough to resume quickly after a
// NATS restart, long enough not to spin.
func retryDelay(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 5)
	return min(d, 2*time.Second)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
