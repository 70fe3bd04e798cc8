package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultBackOff is the redelivery delay after the 1st, 2nd, … failed
// delivery; the last value repeats.
var DefaultBackOff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}

// ConsumerSpec describes a durable pull consumer. Zero fields take defaults.
type ConsumerSpec struct {
	// Name is the durable consumer name, also the last token of its
	// dead-letter subject ihdlq.<Name>. Required; no '.', '*', '>' or
	// whitespace.
	Name        string
	Description string
	// Stream is the base name of the stream to consume; default
	// EventsStream.
	Stream string
	// FilterSubjects are unprefixed subjects or event types
	// ("ih.dicom.study.stable", "ih.order.>"); empty means the whole stream.
	FilterSubjects []string
	// MaxDeliver is how many times a message is handed to the handler
	// before it is dead-lettered; default 5.
	MaxDeliver int
	// BackOff holds the delay before redelivery after the n-th failure,
	// the last value repeating; default DefaultBackOff.
	BackOff []time.Duration
	// AckWait is how long the server waits for an ack before redelivering;
	// default 30s. A handler that runs longer is kept alive with
	// "in progress" signals, so AckWait only matters if the process dies.
	AckWait time.Duration
	// MaxAckPending bounds unacknowledged messages across all instances of
	// this consumer; default 1000.
	MaxAckPending int
	// Concurrency is how many handlers run at once in this process;
	// default 1.
	Concurrency int
	// DeliverPolicy applies when the consumer is first created; default
	// all messages in the stream.
	DeliverPolicy jetstream.DeliverPolicy
	// DrainTimeout bounds how long Stop waits for running handlers before
	// cancelling their context; default AckWait.
	DrainTimeout time.Duration
	// Batch is the most messages ConsumeRawBatch hands its handler at once;
	// default 1. Batches run one after another, in delivery order.
	Batch int
}

// Delivery describes one delivery of a message to a handler.
type Delivery struct {
	Consumer string
	Stream   string
	// Subject is the full subject the message was published to.
	Subject string
	Header  nats.Header
	Data    []byte
	// StreamSeq and ConsumerSeq are the message's sequence in the stream
	// and the delivery's sequence in the consumer.
	StreamSeq, ConsumerSeq uint64
	// NumDelivered counts deliveries of this message, 1 on the first.
	NumDelivered uint64
	// Timestamp is when the message was stored.
	Timestamp time.Time
	// Replay reports that an operator replayed this message from the
	// dead-letter stream.
	Replay bool
}

// Handler processes one event. A nil error acknowledges it; an error
// schedules a redelivery after the spec's back-off, until MaxDeliver is
// reached and the event is dead-lettered; a Permanent error dead-letters at
// once. Handlers must be idempotent: delivery is at least once.
type Handler func(ctx context.Context, e Event, d Delivery) error

// RawHandler is Handler for streams whose payload is not an envelope.
type RawHandler func(ctx context.Context, d Delivery) error

// RawBatchHandler processes the messages that were waiting, in delivery
// order, all or nothing: a nil error acknowledges every one of them. After
// an error each message of the batch is handed over again alone, in a
// batch of one, and then settled as a RawHandler's message would be (retry
// after the back-off, dead letter). Handlers must be idempotent.
type RawBatchHandler func(ctx context.Context, ds []Delivery) error

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as one no retry can fix (a malformed payload, a
// reference that will never resolve): the consumer dead-letters the event
// at once. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err or an error it wraps came from Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Consumer runs a handler over a durable pull consumer until its context
// ends or Stop is called.
type Consumer struct {
	bus     *Bus
	spec    ConsumerSpec
	stream  string
	handle  func(ctx context.Context, msg jetstream.Msg, d Delivery) error
	batch   RawBatchHandler // set by ConsumeRawBatch
	log     *slog.Logger
	cons    jetstream.Consumer
	stopCh  chan struct{}
	stopOne sync.Once
	done    chan struct{}
}

// Consume creates or updates the durable consumer spec.Name and runs h over
// it in the background. Envelopes that fail to decode are dead-lettered
// without calling h.
func (b *Bus) Consume(ctx context.Context, spec ConsumerSpec, h Handler) (*Consumer, error) {
	if h == nil {
		return nil, errors.New("events: Consume needs a handler")
	}
	return b.consume(ctx, spec, func(ctx context.Context, msg jetstream.Msg, d Delivery) error {
		e, err := Unmarshal(d.Data)
		if err != nil {
			return Permanent(err)
		}
		return h(ctx, e, d)
	})
}

// ConsumeRaw is Consume for non-envelope payloads.
func (b *Bus) ConsumeRaw(ctx context.Context, spec ConsumerSpec, h RawHandler) (*Consumer, error) {
	if h == nil {
		return nil, errors.New("events: ConsumeRaw needs a handler")
	}
	return b.consume(ctx, spec, func(ctx context.Context, _ jetstream.Msg, d Delivery) error {
		return h(ctx, d)
	})
}

// ConsumeRawBatch is ConsumeRaw handing the handler up to spec.Batch
// messages at a time, so that it can apply them in one transaction. It
// always runs one batch at a time (Concurrency is ignored).
func (b *Bus) ConsumeRawBatch(ctx context.Context, spec ConsumerSpec, h RawBatchHandler) (*Consumer, error) {
	if h == nil {
		return nil, errors.New("events: ConsumeRawBatch needs a handler")
	}
	spec.Concurrency = 1
	return b.consume(ctx, spec, func(ctx context.Context, _ jetstream.Msg, d Delivery) error {
		return h(ctx, []Delivery{d})
	}, h)
}

func (b *Bus) consume(ctx context.Context, spec ConsumerSpec, handle func(context.Context, jetstream.Msg, Delivery) error, batch ...RawBatchHandler) (*Consumer, error) {
	if err := validToken(spec.Name); err != nil {
		return nil, fmt.Errorf("events: consumer name: %w", err)
	}
	if spec.Stream == "" {
		spec.Stream = EventsStream
	}
	if spec.MaxDeliver <= 0 {
		spec.MaxDeliver = 5
	}
	if len(spec.BackOff) == 0 {
		spec.BackOff = DefaultBackOff
	}
	if spec.AckWait <= 0 {
		spec.AckWait = 30 * time.Second
	}
	if spec.MaxAckPending <= 0 {
		spec.MaxAckPending = 1000
	}
	if spec.Concurrency <= 0 {
		spec.Concurrency = 1
	}
	if spec.DrainTimeout <= 0 {
		spec.DrainTimeout = spec.AckWait
	}
	if spec.Batch <= 0 {
		spec.Batch = 1
	}
	c := &Consumer{
		bus:    b,
		spec:   spec,
		stream: b.StreamName(spec.Stream),
		handle: handle,
		log:    b.log.With("consumer", spec.Name),
		stopCh: make(chan struct{}),
		done:   make(chan struct{}),
	}
	if len(batch) > 0 && spec.Batch > 1 {
		c.batch = batch[0]
	}
	if err := c.ensure(ctx); err != nil {
		return nil, err
	}
	go func() {
		select {
		case <-ctx.Done():
			c.stopOne.Do(func() { close(c.stopCh) })
		case <-c.done:
		}
	}()
	go c.run()
	return c, nil
}

// ensure creates or updates the durable consumer.
func (c *Consumer) ensure(ctx context.Context) error {
	filters := make([]string, len(c.spec.FilterSubjects))
	for i, f := range c.spec.FilterSubjects {
		filters[i] = c.bus.Subject(f)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        c.spec.Name,
		Description:    c.spec.Description,
		DeliverPolicy:  c.spec.DeliverPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.spec.AckWait,
		MaxAckPending:  c.spec.MaxAckPending,
		FilterSubjects: filters,
		// The server never gives up on a message: the helper counts
		// deliveries and dead-letters the message itself, so that one whose
		// handler crashed the process on its last delivery still reaches
		// the dead-letter stream instead of silently stopping.
		MaxDeliver: -1,
	}
	if len(filters) == 1 {
		cfg.FilterSubject, cfg.FilterSubjects = filters[0], nil
	}
	cons, err := c.bus.js.CreateOrUpdateConsumer(ctx, c.stream, cfg)
	if err != nil {
		return fmt.Errorf("events: consumer %s on %s: %w", c.spec.Name, c.stream, err)
	}
	c.cons = cons
	return nil
}

// Stop stops fetching, waits for running handlers to finish (at most
// DrainTimeout, then their context is cancelled) and returns.
func (c *Consumer) Stop() {
	c.stopOne.Do(func() { close(c.stopCh) })
	<-c.done
}

// Done is closed when the consumer has stopped.
func (c *Consumer) Done() <-chan struct{} { return c.done }

// Info returns the server's view of the consumer.
func (c *Consumer) Info(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	return c.cons.Info(ctx)
}

func (c *Consumer) stopping() bool {
	select {
	case <-c.stopCh:
		return true
	default:
		return false
	}
}

func (c *Consumer) run() {
	defer close(c.done)
	// Handlers get a context that outlives Stop, so in-flight work can
	// finish; it is cancelled only when draining takes too long.
	hctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	sem := make(chan struct{}, c.spec.Concurrency)

	for attempt := 0; !c.stopping(); attempt++ {
		iter, err := c.cons.Messages(jetstream.PullMaxMessages(max(c.spec.Concurrency, c.spec.Batch)))
		if err != nil {
			c.log.Warn("consumer cannot pull; retrying", "err", err)
			c.pause(retryDelay(attempt))
			continue
		}
		watched := make(chan struct{})
		go func() {
			select {
			case <-c.stopCh:
				iter.Drain()
			case <-watched:
			}
		}()
		var fatal error
		if c.batch != nil {
			fatal = c.pullBatches(iter, hctx)
		} else {
			fatal = c.pull(iter, hctx, &wg, sem)
		}
		close(watched)
		iter.Stop()
		if fatal != nil || c.stopping() {
			break
		}
		// The iterator ended without Stop: the consumer was deleted or the
		// server restarted without its state. Recreate and go on.
		c.pause(retryDelay(attempt))
		ectx, ecancel := context.WithTimeout(context.Background(), c.bus.opts.PublishTimeout)
		if err := c.ensure(ectx); err != nil {
			c.log.Warn("consumer cannot be recreated; retrying", "err", err)
		}
		ecancel()
	}

	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(c.spec.DrainTimeout):
		c.log.Warn("handlers still running after drain timeout; cancelling them")
		cancel()
		<-finished
	}
}

// pull hands messages to handlers until the iterator ends. It returns a
// non-nil error when the consumer cannot go on (connection closed).
func (c *Consumer) pull(iter jetstream.MessagesContext, hctx context.Context, wg *sync.WaitGroup, sem chan struct{}) error {
	for {
		msg, err := iter.Next()
		if err != nil {
			if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrConnectionClosed) {
				return err
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			c.log.Warn("consumer pull", "err", err)
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.process(hctx, msg)
		}()
	}
}

// pullBatches hands the messages that are waiting, up to spec.Batch, to
// the batch handler, one batch after another, until the iterator ends.
func (c *Consumer) pullBatches(iter jetstream.MessagesContext, hctx context.Context) error {
	type next struct {
		msg jetstream.Msg
		err error
	}
	// A reader goroutine turns the blocking iterator into a channel, so
	// that a batch takes what has arrived without waiting for more.
	ch := make(chan next, c.spec.Batch)
	go func() {
		defer close(ch)
		for {
			msg, err := iter.Next()
			if err != nil {
				if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrConnectionClosed) || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					ch <- next{err: err}
					return
				}
				c.log.Warn("consumer pull", "err", err)
				continue
			}
			ch <- next{msg: msg}
		}
	}()
	var batch []jetstream.Msg
	for {
		n, ok := <-ch
		if !ok {
			return nil
		}
		if n.err != nil {
			if errors.Is(n.err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return n.err
		}
		batch = append(batch[:0], n.msg)
		var end *next
	fill:
		for len(batch) < c.spec.Batch {
			select {
			case n, ok := <-ch:
				if !ok {
					break fill
				}
				if n.err != nil {
					end = &n
					break fill
				}
				batch = append(batch, n.msg)
			default:
				break fill
			}
		}
		c.processBatch(hctx, batch)
		if end != nil {
			if errors.Is(end.err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return end.err
		}
	}
}

// processBatch runs the batch handler over msgs and acknowledges them all,
// or, if it fails, processes each message alone.
func (c *Consumer) processBatch(ctx context.Context, msgs []jetstream.Msg) {
	if len(msgs) == 1 {
		c.process(ctx, msgs[0])
		return
	}
	var take []jetstream.Msg
	var ds []Delivery
	for _, msg := range msgs {
		d, ok := c.delivery(msg)
		if !ok {
			continue
		}
		take = append(take, msg)
		ds = append(ds, d)
	}
	if len(ds) == 0 {
		return
	}
	start := time.Now()
	err := c.runBatch(ctx, take, ds)
	c.bus.metrics.observe(c.spec.Name, time.Since(start))
	if err != nil {
		c.log.Debug("batch failed; processing its messages one by one", "messages", len(ds), "err", err)
		for _, msg := range take {
			c.process(ctx, msg)
		}
		return
	}
	// The server handles one connection's acks in order: once the last
	// ack is confirmed, the ones sent before it were recorded too.
	for i, msg := range take {
		if i < len(take)-1 {
			c.settle(msg.Ack())
			c.bus.metrics.processed(c.spec.Name)
			continue
		}
		c.doubleAck(msg)
	}
}

// doubleAck acknowledges msg and waits for the server to confirm, so that
// a processed message is not redelivered after a lost ack. An ack that
// cannot reach the server (NATS restarting, the connection reconnecting)
// is tried again within the publish timeout; after that the server
// redelivers the message after AckWait, and handlers drop the repeat.
func (c *Consumer) doubleAck(msg jetstream.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), c.bus.opts.PublishTimeout)
	defer cancel()
	var err error
	for attempt := 0; ; attempt++ {
		if err = msg.DoubleAck(ctx); err == nil || !retryable(err) || ctx.Err() != nil {
			break
		}
		if sleep(ctx, min(retryDelay(attempt), 500*time.Millisecond)) != nil {
			break
		}
	}
	c.settle(err)
	if err == nil {
		c.bus.metrics.processed(c.spec.Name)
	}
}

// runBatch calls the batch handler (see guard).
func (c *Consumer) runBatch(ctx context.Context, msgs []jetstream.Msg, ds []Delivery) error {
	return c.guard(msgs, func() error { return c.batch(ctx, ds) })
}

// guard runs fn, turning a panic into an error and keeping msgs alive with
// "in progress" signals every half AckWait until it returns.
func (c *Consumer) guard(msgs []jetstream.Msg, fn func() error) (err error) {
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(c.spec.AckWait / 2)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				for _, msg := range msgs {
					_ = msg.InProgress()
				}
			case <-done:
				return
			}
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("handler panicked", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("events: handler panic: %v", r)
		}
	}()
	return fn()
}

func (c *Consumer) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.stopCh:
	}
}

// process runs the handler on one message and settles it: ack, delayed
// nak, or dead letter.
func (c *Consumer) process(ctx context.Context, msg jetstream.Msg) {
	d, ok := c.delivery(msg)
	if !ok {
		return
	}

	start := time.Now()
	herr := c.run1(ctx, msg, d)
	c.bus.metrics.observe(c.spec.Name, time.Since(start))

	switch {
	case herr == nil:
		c.doubleAck(msg)
	case IsPermanent(herr) || d.NumDelivered >= uint64(c.spec.MaxDeliver):
		c.deadLetter(msg, d, herr)
	default:
		delay := c.backOff(d.NumDelivered)
		c.log.Warn("handler failed; will redeliver", "subject", d.Subject, "stream_seq", d.StreamSeq,
			"delivery", d.NumDelivered, "delay", delay, "err", herr)
		c.settle(msg.NakWithDelay(delay))
		c.bus.metrics.retried(c.spec.Name)
	}
}

// delivery describes msg for a handler. It reports false when msg is not
// for the handler and has been settled already: a replay meant for another
// consumer, or a message past MaxDeliver, which is dead-lettered.
func (c *Consumer) delivery(msg jetstream.Msg) (Delivery, bool) {
	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream message; nothing to settle.
		c.log.Warn("message without JetStream metadata", "err", err)
		return Delivery{}, false
	}
	d := Delivery{
		Consumer:     c.spec.Name,
		Stream:       meta.Stream,
		Subject:      msg.Subject(),
		Header:       msg.Headers(),
		Data:         msg.Data(),
		StreamSeq:    meta.Sequence.Stream,
		ConsumerSeq:  meta.Sequence.Consumer,
		NumDelivered: meta.NumDelivered,
		Timestamp:    meta.Timestamp,
	}
	if target := d.Header.Get(HeaderReplayConsumer); target != "" {
		if target != c.spec.Name {
			// A replay meant for another consumer on the same subject.
			c.settle(msg.Ack())
			return Delivery{}, false
		}
		d.Replay = true
	}
	if d.NumDelivered > uint64(c.spec.MaxDeliver) {
		// The previous delivery was the last allowed one and never
		// settled: the process died or hung past AckWait.
		c.deadLetter(msg, d, fmt.Errorf("events: no ack after %d deliveries (handler crashed or exceeded AckWait)", c.spec.MaxDeliver))
		return Delivery{}, false
	}
	return d, true
}

// run1 calls the handler on one message (see guard).
func (c *Consumer) run1(ctx context.Context, msg jetstream.Msg, d Delivery) error {
	return c.guard([]jetstream.Msg{msg}, func() error { return c.handle(ctx, msg, d) })
}

func (c *Consumer) backOff(delivered uint64) time.Duration {
	i := int(delivered) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(c.spec.BackOff) {
		i = len(c.spec.BackOff) - 1
	}
	return c.spec.BackOff[i]
}

func (c *Consumer) settle(err error) {
	if err != nil {
		// The server redelivers after AckWait; handlers are idempotent.
		c.log.Warn("cannot settle message", "err", err)
	}
}

// deadLetter copies the message to ihdlq.<consumer> and terminates the
// original. If the copy cannot be stored the original is redelivered later
// instead: a message is never dropped.
func (c *Consumer) deadLetter(msg jetstream.Msg, d Delivery, cause error) {
	dl := nats.NewMsg(c.bus.Subject(deadLetterRoot + "." + c.spec.Name))
	dl.Data = d.Data
	for k, v := range d.Header {
		if strings.HasPrefix(k, "Nats-") || strings.HasPrefix(k, dlqHeaderPrefix) || strings.HasPrefix(k, replayHeaderPrefix) {
			continue
		}
		dl.Header[k] = v
	}
	errText := "unknown error"
	if cause != nil {
		errText = cause.Error()
	}
	dl.Header.Set(HeaderDLQSubject, d.Subject)
	dl.Header.Set(HeaderDLQStream, d.Stream)
	dl.Header.Set(HeaderDLQStreamSeq, fmt.Sprint(d.StreamSeq))
	dl.Header.Set(HeaderDLQConsumer, c.spec.Name)
	dl.Header.Set(HeaderDLQError, headerSafe(errText))
	dl.Header.Set(HeaderDLQDeliveries, fmt.Sprint(d.NumDelivered))
	dl.Header.Set(HeaderDLQTime, time.Now().UTC().Format(time.RFC3339Nano))
	if id := d.Header.Get(nats.MsgIdHdr); id != "" {
		dl.Header.Set(HeaderDLQMsgID, id)
	}
	// Keyed by consumer, stream and sequence, so a dead letter written
	// twice (ack of the original lost) is stored once.
	id := fmt.Sprintf("dlq:%s:%s:%d", c.spec.Name, d.Stream, d.StreamSeq)
	pctx, cancel := context.WithTimeout(context.Background(), 2*c.bus.opts.PublishTimeout)
	_, err := c.bus.publishMsg(pctx, dl, id)
	cancel()
	if err != nil {
		c.log.Error("cannot dead-letter; will redeliver", "subject", d.Subject, "stream_seq", d.StreamSeq, "err", err)
		c.settle(msg.NakWithDelay(c.backOff(d.NumDelivered)))
		return
	}
	c.log.Warn("dead-lettered", "subject", d.Subject, "stream_seq", d.StreamSeq, "deliveries", d.NumDelivered, "err", errText)
	// Plain Term: TermWithReason is silently ignored by servers before
	// 2.10.4, which would leave the message to be redelivered.
	c.settle(msg.Term())
	c.bus.metrics.deadLettered(c.spec.Name)
}

// headerSafe keeps an error text to one header line of bounded length.
func headerSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	const max = 1024
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "")
	}
	return s
}

// validToken checks a name used as a NATS subject token and durable name.
func validToken(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if strings.ContainsAny(s, ".*> \t\r\n/\\") {
		return fmt.Errorf("%q contains '.', '*', '>', '/', '\\' or whitespace", s)
	}
	return nil
}
