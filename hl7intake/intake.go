// Package hl7intake is the hub's HL7 v2 listener: it receives messages over
// MLLP, checks them, stores each accepted one durably on the JetStream stream
// IH_HL7_IN and only then answers AA (HL7 2.5.1 §2.9.2, original mode). The
// bridges (his-bridge, ris-bridge) consume that stream.
//
// Which messages are accepted is decided by Routes the bridges export: a
// route names the message type and trigger events it takes, the subject
// domain it is filed under and the content checks that must pass before the
// AA. The listener knows nothing of patients or orders itself.
package hl7intake

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hl7"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/outbox"
)

// Stream layout. Accepted messages are stored under
// ihhl7.in.<domain>.<MSH-9.1>, so that one bridge's durable consumer covers
// every message type it handles with a single wildcard filter
// (ihhl7.in.ris.>), which every NATS server version supports.
const (
	// StreamName is the base name of the stream of accepted raw messages.
	StreamName = "IH_HL7_IN"
	// SubjectRoot is the first two tokens of every subject in StreamName.
	SubjectRoot = "ihhl7.in"

	// HeaderMessageKey carries MessageKey of the stored message.
	HeaderMessageKey = "Ih-Hl7-Key"
	// HeaderMessageType carries MSH-9.1^MSH-9.2, for tools.
	HeaderMessageType = "Ih-Hl7-Type"
)

// DuplicateWindow is how long the stream recognises a repeated message by
// its key. Repeats later than that are caught by the bridges' processed-key
// table (see MarkProcessed).
const DuplicateWindow = 24 * time.Hour

// MaxAge is how long accepted raw messages are kept on the stream, as an
// audit trail and for replays.
const MaxAge = 30 * 24 * time.Hour

// SupportedVersions are the MSH-12 versions the hub accepts.
var SupportedVersions = []string{"2.3", "2.3.1", "2.4", "2.5", "2.5.1"}

// Subject returns the subject an accepted message of messageType (MSH-9.1)
// is stored under for a domain ("his", "ris").
func Subject(domain, messageType string) string {
	return SubjectRoot + "." + domain + "." + messageType
}

// DomainFilter is the consumer filter subject covering every message of a
// domain.
func DomainFilter(domain string) string { return SubjectRoot + "." + domain + ".>" }

// StreamSpec is the stream of accepted raw messages. The listener and the
// bridges all ensure it, so any of them may start first.
func StreamSpec() events.StreamSpec {
	return events.StreamSpec{
		Name:        StreamName,
		Description: "HL7 v2 messages accepted by the MLLP listener (AA sent)",
		Subjects:    []string{SubjectRoot + ".>"},
		MaxAge:      MaxAge,
		Duplicates:  DuplicateWindow,
	}
}

// MessageKey identifies a message for duplicate detection: a repeated
// message is one with the same MSH-10 from the same MSH-3 and MSH-4
// (HL7 2.5.1 §2.10.1: the sender's control ID is unique per sender). It is a
// hash, so it can serve as Nats-Msg-Id and as a database key without carrying
// anything from the message.
func MessageKey(h hl7.Header) string {
	s := sha256.New()
	for _, v := range []string{h.SendingApplication, h.SendingFacility, h.MessageControlID} {
		s.Write([]byte(v))
		s.Write([]byte{0})
	}
	return hex.EncodeToString(s.Sum(nil)[:16])
}

// Route admits one message type to the stream.
type Route struct {
	// Domain is the subject token after SubjectRoot ("his", "ris"); the
	// bridge of that domain consumes DomainFilter(Domain).
	Domain string
	// MessageType is MSH-9.1, e.g. "ADT".
	MessageType string
	// TriggerEvents are the MSH-9.2 values taken; others are rejected with
	// table 0357 code 201.
	TriggerEvents []string
	// Validate checks the content and returns the errors that make the
	// message unacceptable (answered AE); nil means acceptable.
	Validate func(msg *hl7.Message) []hl7.ErrorDetail
}

// Listener is the component "hl7": the MLLP listener on hl7.addr.
type Listener struct {
	rt     *hub.Runtime
	cfg    config.HL7
	routes []Route
	log    *slog.Logger

	srv      *hl7.Server
	ln       net.Listener
	serving  atomic.Bool
	serveErr chan error
	received *prometheus.CounterVec
}

// New builds the listener on rt for the given routes and registers its
// readiness check and admin routes (GET /api/hl7/failed, POST
// /api/hl7/failed/{id}/replay).
func New(rt *hub.Runtime, routes ...Route) (*Listener, error) {
	for _, r := range routes {
		if r.Domain == "" || r.MessageType == "" {
			return nil, fmt.Errorf("hl7intake: route without domain or message type")
		}
	}
	l := &Listener{
		rt:     rt,
		cfg:    rt.Config.HL7,
		routes: routes,
		log:    rt.Log.With("component", "hl7"),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imaginghub_hl7_messages_total",
			Help: "HL7 messages answered by the MLLP listener, by message type and MSA-1 acknowledgment code.",
		}, []string{"type", "ack"}),
	}
	if err := rt.Registerer().Register(l.received); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		l.received = are.ExistingCollector.(*prometheus.CounterVec)
	}
	rt.Server.AddCheck("hl7 listener", func(context.Context) error {
		if !l.serving.Load() {
			return errors.New("not listening")
		}
		return nil
	})
	l.registerAdmin(rt.Server.Mux)
	return l, nil
}

// Name implements hub.Component.
func (l *Listener) Name() string { return "hl7" }

// Addr is the bound MLLP address once started.
func (l *Listener) Addr() string {
	if l.ln == nil {
		return ""
	}
	return l.ln.Addr().String()
}

// Start implements hub.Component.
func (l *Listener) Start(ctx context.Context) error {
	if _, err := l.rt.Bus.EnsureStream(ctx, StreamSpec()); err != nil {
		return fmt.Errorf("hl7intake: stream: %w", err)
	}
	var tlsConfig *tls.Config
	if l.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(l.cfg.TLSCert, l.cfg.TLSKey)
		if err != nil {
			return &config.Error{Key: "hl7.tls_cert", Env: "IMAGINGHUB_HL7_TLS_CERT", Err: err}
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := hub.Listen("hl7.addr", l.cfg.Addr)
	if err != nil {
		return err
	}
	l.ln = ln
	l.srv = &hl7.Server{
		Handler:        l,
		MaxMessageSize: l.cfg.MaxMessageSize,
		IdleTimeout:    l.cfg.IdleTimeout,
		MaxConnections: l.cfg.MaxConnections,
		TLSConfig:      tlsConfig,
		Logger:         l.log,
	}
	l.serveErr = make(chan error, 1)
	l.serving.Store(true)
	go func() {
		err := l.srv.Serve(ln)
		l.serving.Store(false)
		if err != nil && !errors.Is(err, hl7.ErrServerClosed) {
			l.log.Error("MLLP listener stopped", "err", err)
		}
		l.serveErr <- err
	}()
	l.log.Info("HL7 MLLP listening", "addr", ln.Addr().String(), "tls", tlsConfig != nil)
	return nil
}

// Shutdown implements hub.Component: messages being handled are answered
// before their connections close.
func (l *Listener) Shutdown(ctx context.Context) error {
	if l.srv == nil {
		return nil
	}
	if err := l.srv.Shutdown(ctx); err != nil && !errors.Is(err, hl7.ErrServerClosed) {
		return err
	}
	return nil
}

// Verdict is the outcome of checking and storing one message.
type Verdict struct {
	Code   hl7.AckCode
	Errors []hl7.ErrorDetail
	// Internal marks a failure of the hub itself (the stream could not be
	// reached): the sender should resend, and nothing is recorded as
	// rejected.
	Internal bool
	// Duplicate reports that the stream already held the message.
	Duplicate bool
}

// ServeHL7 implements hl7.Handler: AA only once the message is stored.
func (l *Listener) ServeHL7(ctx context.Context, msg *hl7.Message) []byte {
	v := l.Accept(ctx, msg)
	h := msg.Header()
	l.received.WithLabelValues(h.MessageType, string(v.Code)).Inc()
	if v.Code != hl7.AA && !v.Internal {
		l.recordRejected(ctx, msg, v)
	}
	var text string
	if len(v.Errors) > 0 {
		text = v.Errors[0].Text
	}
	ack, err := hl7.NewACK(msg, v.Code, &hl7.ACKOptions{Text: text, Errors: v.Errors})
	if err != nil {
		l.log.Error("cannot build acknowledgment", "err", err)
		return nil // the server answers AE 207
	}
	return ack
}

// Check decides whether msg is acceptable without storing it: the route
// that takes it, or a reject (AR for header problems, HL7 2.5.1 §2.9.2) or
// error (AE for content problems).
func (l *Listener) Check(msg *hl7.Message) (Route, Verdict) {
	h := msg.Header()
	if !slices.Contains(SupportedVersions, h.VersionID) {
		return Route{}, reject(hl7.AR, hl7.UnsupportedVersionID, hl7.Location{Segment: "MSH", Field: 12}, "unsupported version "+h.VersionID)
	}
	// HL7 table 0103: P production, D debugging, T training.
	switch h.ProcessingID {
	case "P", "D", "T":
	default:
		return Route{}, reject(hl7.AR, hl7.UnsupportedProcessingID, hl7.Location{Segment: "MSH", Field: 11}, "unsupported processing ID "+h.ProcessingID)
	}
	typeKnown := false
	for _, r := range l.routes {
		if r.MessageType != h.MessageType {
			continue
		}
		typeKnown = true
		if len(r.TriggerEvents) > 0 && !slices.Contains(r.TriggerEvents, h.TriggerEvent) {
			continue
		}
		if r.Validate != nil {
			if errs := r.Validate(msg); len(errs) > 0 {
				return r, Verdict{Code: hl7.AE, Errors: errs}
			}
		}
		return r, Verdict{Code: hl7.AA}
	}
	if !typeKnown {
		return Route{}, reject(hl7.AR, hl7.UnsupportedMessageType, hl7.Location{Segment: "MSH", Field: 9, Component: 1}, "unsupported message type "+h.MessageType)
	}
	return Route{}, reject(hl7.AR, hl7.UnsupportedEventCode, hl7.Location{Segment: "MSH", Field: 9, Component: 2}, "unsupported trigger event "+h.MessageType+"^"+h.TriggerEvent)
}

func reject(code hl7.AckCode, ec hl7.ErrorCode, loc hl7.Location, text string) Verdict {
	return Verdict{Code: code, Errors: []hl7.ErrorDetail{{Location: loc, Code: ec, Text: text}}}
}

// storeTimeout bounds the wait for the stream's PubAck; past it the sender
// gets AE 207 and resends.
const storeTimeout = 10 * time.Second

// Accept checks msg and, if acceptable, stores it on the stream and waits
// for the PubAck. A repeat within DuplicateWindow is acknowledged AA again
// without being stored twice.
func (l *Listener) Accept(ctx context.Context, msg *hl7.Message) Verdict {
	route, v := l.Check(msg)
	if v.Code != hl7.AA {
		return v
	}
	h := msg.Header()
	key := MessageKey(h)
	hdr := nats.Header{}
	hdr.Set(HeaderMessageKey, key)
	hdr.Set(HeaderMessageType, h.MessageType+"^"+h.TriggerEvent)
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	ack, err := l.rt.Bus.PublishRaw(ctx, Subject(route.Domain, h.MessageType), key, msg.Raw(), hdr)
	if err != nil {
		l.log.Error("HL7 message not stored; answered AE", "type", h.MessageType, "err", err)
		return Verdict{Code: hl7.AE, Internal: true, Errors: []hl7.ErrorDetail{{
			Location: hl7.Location{Segment: "MSH", Field: 10},
			Code:     hl7.ApplicationInternalError,
			Text:     "message could not be stored; resend",
		}}}
	}
	if ack.Duplicate {
		l.log.Debug("repeated HL7 message acknowledged again", "key", key)
	}
	return Verdict{Code: hl7.AA, Duplicate: ack.Duplicate}
}

// MarkProcessed records, in the transaction that applies a message's
// effect, that consumer processed the message with this key. It returns
// false when the key was recorded before: the caller then changes nothing,
// which makes a repeated message's effect happen once even after the
// stream's duplicate window and across restarts.
func MarkProcessed(ctx context.Context, tx *catalog.Tx, consumer, key, messageType string) (bool, error) {
	res, err := tx.ExecContext(ctx,
		`INSERT INTO hl7_processed (message_key, consumer, message_type, processed_at) VALUES (?, ?, ?, ?) ON CONFLICT (message_key) DO NOTHING`,
		key, consumer, messageType, tx.Time(time.Now()))
	if err != nil {
		return false, fmt.Errorf("hl7intake: record processed message: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("hl7intake: record processed message: %w", err)
	}
	return n == 1, nil
}

// MarkProcessedBatch is MarkProcessed for the messages of a batch, in a
// few multi-row statements: first[i] reports that keys[i] (of type
// types[i]) was not recorded before, by an earlier transaction or earlier
// in keys.
func MarkProcessedBatch(ctx context.Context, tx *catalog.Tx, consumer string, keys, types []string) ([]bool, error) {
	first := make([]bool, len(keys))
	now := tx.Time(time.Now())
	for lo, hi := range catalog.ValuesChunks(len(keys)) {
		args := make([]any, 0, 4*(hi-lo))
		for i := lo; i < hi; i++ {
			args = append(args, keys[i], consumer, types[i], now)
		}
		q := `INSERT INTO hl7_processed (message_key, consumer, message_type, processed_at) VALUES ` +
			catalog.ValuesList(hi-lo, 4) + ` ON CONFLICT (message_key) DO NOTHING RETURNING message_key`
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("hl7intake: record processed messages: %w", err)
		}
		inserted := map[string]bool{}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return nil, fmt.Errorf("hl7intake: record processed messages: %w", err)
			}
			inserted[k] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("hl7intake: record processed messages: %w", err)
		}
		for i := lo; i < hi; i++ {
			// A key twice in the batch is inserted once: its first
			// occurrence takes it.
			first[i] = inserted[keys[i]]
			delete(inserted, keys[i])
		}
	}
	return first, nil
}

// Pending is one message of a batch, read and checked, ready to apply:
// its key (MessageKey), its type ("ADT^A08") and the change it makes,
// which returns the events announcing it.
type Pending struct {
	Key, Type string
	Apply     func(ctx context.Context, tx *catalog.Tx) ([]events.Event, error)
}

// ApplyBatch applies the messages of a batch in the order given, in one
// catalog transaction with the keys consumer has processed (a key it
// processed before is skipped) and the events' outbox rows, so the batch
// commits whole or not at all; after the commit it wakes the relay. It
// returns how many events the batch announced.
func ApplyBatch(ctx context.Context, rt *hub.Runtime, consumer string, batch []Pending) (int, error) {
	keys, types := make([]string, len(batch)), make([]string, len(batch))
	for i, p := range batch {
		keys[i], types[i] = p.Key, p.Type
	}
	var n int
	err := rt.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
		n = 0
		first, err := MarkProcessedBatch(ctx, tx, consumer, keys, types)
		if err != nil {
			return err
		}
		for i, p := range batch {
			if !first[i] {
				continue
			}
			evs, err := p.Apply(ctx, tx)
			if err != nil {
				return err
			}
			for _, e := range evs {
				m, err := outbox.Message(e)
				if err != nil {
					return err
				}
				tx.AppendOutbox(m)
			}
			n += len(evs)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if n > 0 {
		rt.Relay.Kick()
	}
	return n, nil
}

// Decode parses a stored message for a consumer and returns it with its
// key. A message that no longer parses can never be processed: the error is
// permanent, so it is dead-lettered at once.
func Decode(d events.Delivery) (*hl7.Message, string, error) {
	msg, err := hl7.Parse(d.Data)
	if err != nil {
		return nil, "", events.Permanent(fmt.Errorf("hl7intake: stored message does not parse: %w", err))
	}
	key := d.Header.Get(HeaderMessageKey)
	if key == "" {
		key = MessageKey(msg.Header())
	}
	return msg, key, nil
}

// ConsumeDomain starts the durable consumer name of one domain's accepted
// messages (StreamName, subject DomainFilter(domain)) on rt. The handler
// gets the messages that are waiting, up to batch, in the order they were
// acknowledged, one batch at a time, since a patient's or an order's
// messages must apply in the order sent; it applies them in one
// transaction. A batch is acknowledged only after the handler returns nil;
// after an error its messages are handed over again one by one (see
// events.RawBatchHandler), so a single bad message is retried and
// dead-lettered alone. Zero maxDeliver and backOff take the events package
// defaults. Stop it with hub.StopConsumer.
func ConsumeDomain(ctx context.Context, rt *hub.Runtime, name, description, domain string, batch, maxDeliver int, backOff []time.Duration, h events.RawBatchHandler) (*events.Consumer, error) {
	if _, err := rt.Bus.EnsureStream(ctx, StreamSpec()); err != nil {
		return nil, fmt.Errorf("%s: stream %s: %w", name, StreamName, err)
	}
	cons, err := rt.Bus.ConsumeRawBatch(ctx, events.ConsumerSpec{
		Name:           name,
		Description:    description,
		Stream:         StreamName,
		FilterSubjects: []string{DomainFilter(domain)},
		MaxDeliver:     maxDeliver,
		BackOff:        backOff,
		Batch:          batch,
	}, h)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	rt.AddConsumerCheck(name, cons)
	return cons, nil
}

// BatchSize is the most messages a bridge applies in one catalog
// transaction: when it is behind, one commit (and one flush to disk) then
// serves many messages instead of one each.
const BatchSize = 100

// DomainBridge is the component part of a bridge that consumes one
// domain's accepted messages: a bridge embeds it, fills it in and gets
// Name, Start and Shutdown.
type DomainBridge struct {
	RT  *hub.Runtime
	Log *slog.Logger
	// Consumer names the durable consumer and the component.
	Consumer, Description, Domain string
	// Handle applies a batch (see ConsumeDomain).
	Handle events.RawBatchHandler
	// MaxDeliver and BackOff bound retries before a message is
	// dead-lettered; zero values take the events package defaults.
	MaxDeliver int
	BackOff    []time.Duration

	cons *events.Consumer
}

// Name implements hub.Component.
func (b *DomainBridge) Name() string { return b.Consumer }

// Start implements hub.Component: it starts consuming the domain's
// messages, BatchSize at most at a time.
func (b *DomainBridge) Start(ctx context.Context) error {
	cons, err := ConsumeDomain(ctx, b.RT, b.Consumer, b.Description, b.Domain, BatchSize, b.MaxDeliver, b.BackOff, b.Handle)
	if err != nil {
		return err
	}
	b.cons = cons
	return nil
}

// Shutdown implements hub.Component: the batch in hand is finished.
func (b *DomainBridge) Shutdown(ctx context.Context) error {
	return hub.StopConsumer(ctx, b.cons)
}
