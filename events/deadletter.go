package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers of a dead letter, describing the delivery that failed. The
// payload is the original message's, byte for byte.
const (
	dlqHeaderPrefix     = "Ih-Dlq-"
	HeaderDLQSubject    = "Ih-Dlq-Subject"    // subject the message was published to
	HeaderDLQStream     = "Ih-Dlq-Stream"     // stream it was stored in
	HeaderDLQStreamSeq  = "Ih-Dlq-Stream-Seq" // its sequence there
	HeaderDLQConsumer   = "Ih-Dlq-Consumer"   // the consumer that gave up
	HeaderDLQError      = "Ih-Dlq-Error"      // the last handler error
	HeaderDLQDeliveries = "Ih-Dlq-Deliveries" // deliveries made
	HeaderDLQTime       = "Ih-Dlq-Time"       // RFC 3339 time it was dead-lettered
	HeaderDLQMsgID      = "Ih-Dlq-Msg-Id"     // its Nats-Msg-Id

	replayHeaderPrefix = "Ih-Replay-"
	// HeaderReplayConsumer on a replayed message names the one consumer it
	// is meant for; the consumer helper makes every other consumer on the
	// subject acknowledge and skip it.
	HeaderReplayConsumer = "Ih-Replay-Consumer"
	// HeaderReplayOf is the dead-letter sequence a replayed message came from.
	HeaderReplayOf = "Ih-Replay-Of"
)

// ErrDeadLetterNotFound is returned for a dead-letter sequence that does not
// exist (never did, or was replayed or discarded).
var ErrDeadLetterNotFound = errors.New("events: dead letter not found")

// DeadLetter is one message in the dead-letter stream.
type DeadLetter struct {
	// Sequence identifies the dead letter in the dead-letter stream; pass it
	// to ReplayDeadLetter or DiscardDeadLetter.
	Sequence uint64
	Consumer string
	// Subject, Stream and StreamSeq locate the original message.
	Subject   string
	Stream    string
	StreamSeq uint64
	MsgID     string
	// EventID and EventType are those of the envelope, when it is one.
	EventID   string
	EventType string
	Error     string
	// Deliveries is how many times the consumer received the message.
	Deliveries uint64
	// Time is when the message was dead-lettered.
	Time   time.Time
	Header nats.Header
	Data   []byte
}

// DeadLetterFilter selects dead letters; the zero value selects all.
type DeadLetterFilter struct {
	// Consumer keeps only this consumer's dead letters.
	Consumer string
	// After skips dead letters with Sequence <= After (for paging).
	After uint64
	// Limit caps the result; 0 means 1000.
	Limit int
}

// ListDeadLetters returns dead letters oldest first.
func (b *Bus) ListDeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error) {
	subject := b.Subject(deadLetterSubjects)
	if f.Consumer != "" {
		if err := validToken(f.Consumer); err != nil {
			return nil, fmt.Errorf("events: consumer name: %w", err)
		}
		subject = b.Subject(deadLetterRoot + "." + f.Consumer)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	st, err := b.js.Stream(ctx, b.StreamName(DeadLetterStream))
	if err != nil {
		return nil, fmt.Errorf("events: dead-letter stream: %w", err)
	}
	var out []DeadLetter
	// One "next message at or after seq on subject" request per dead
	// letter: the stream is small and operator-paced, and this needs no
	// consumer state on the server.
	for seq := f.After + 1; len(out) < limit; {
		raw, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("events: read dead letter at %d: %w", seq, err)
		}
		out = append(out, parseDeadLetter(raw))
		seq = raw.Sequence + 1
	}
	return out, nil
}

// GetDeadLetter returns one dead letter.
func (b *Bus) GetDeadLetter(ctx context.Context, seq uint64) (DeadLetter, error) {
	st, err := b.js.Stream(ctx, b.StreamName(DeadLetterStream))
	if err != nil {
		return DeadLetter{}, fmt.Errorf("events: dead-letter stream: %w", err)
	}
	raw, err := st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return DeadLetter{}, fmt.Errorf("%w: sequence %d", ErrDeadLetterNotFound, seq)
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("events: read dead letter %d: %w", seq, err)
	}
	return parseDeadLetter(raw), nil
}

// ReplayDeadLetter republishes a dead letter's original payload to its
// original subject and then removes it from the dead-letter stream.
//
// The republished message carries Nats-Msg-Id "<original id>:replay:<seq>"
// because the original id may still be inside the duplicate window, and
// header Ih-Replay-Consumer naming the consumer that gave up: consumers run
// by this package's helper other than that one acknowledge and skip it, so
// only the failed consumer sees the event again. Consumers reading the
// subject some other way receive it too and must tolerate the repeat, as
// they must any redelivery.
func (b *Bus) ReplayDeadLetter(ctx context.Context, seq uint64) error {
	dl, err := b.GetDeadLetter(ctx, seq)
	if err != nil {
		return err
	}
	if dl.Subject == "" {
		return fmt.Errorf("events: dead letter %d has no %s header", seq, HeaderDLQSubject)
	}
	m := nats.NewMsg(dl.Subject)
	m.Data = dl.Data
	for k, v := range dl.Header {
		if strings.HasPrefix(k, "Nats-") || strings.HasPrefix(k, dlqHeaderPrefix) || strings.HasPrefix(k, replayHeaderPrefix) {
			continue
		}
		m.Header[k] = v
	}
	if dl.Consumer != "" {
		m.Header.Set(HeaderReplayConsumer, dl.Consumer)
	}
	m.Header.Set(HeaderReplayOf, strconv.FormatUint(seq, 10))
	orig := dl.MsgID
	if orig == "" {
		orig = dl.EventID
	}
	if orig == "" {
		orig = fmt.Sprintf("%s:%d", dl.Stream, dl.StreamSeq)
	}
	// The dead-letter sequence makes the id unique per replay, and the same
	// on a retry of this call, so a crash between publish and delete cannot
	// deliver the replay twice within the duplicate window.
	if _, err := b.publishMsg(ctx, m, fmt.Sprintf("%s:replay:%d", orig, seq)); err != nil {
		return fmt.Errorf("events: replay dead letter %d: %w", seq, err)
	}
	return b.DiscardDeadLetter(ctx, seq)
}

// DiscardDeadLetter deletes a dead letter without replaying it.
func (b *Bus) DiscardDeadLetter(ctx context.Context, seq uint64) error {
	st, err := b.js.Stream(ctx, b.StreamName(DeadLetterStream))
	if err != nil {
		return fmt.Errorf("events: dead-letter stream: %w", err)
	}
	if err := st.DeleteMsg(ctx, seq); err != nil {
		// The server answers a missing sequence with a generic delete
		// failure (JSStreamMsgDeleteFailedF) whose text says so.
		if errors.Is(err, jetstream.ErrMsgNotFound) || strings.Contains(err.Error(), "no message found") {
			return fmt.Errorf("%w: sequence %d", ErrDeadLetterNotFound, seq)
		}
		return fmt.Errorf("events: delete dead letter %d: %w", seq, err)
	}
	return nil
}

// parseDeadLetter reads a dead letter from its stored form. Fields whose
// headers are missing or malformed stay zero: an operator should still see
// the entry to discard it.
func parseDeadLetter(raw *jetstream.RawStreamMsg) DeadLetter {
	h := raw.Header
	if h == nil {
		h = nats.Header{}
	}
	dl := DeadLetter{
		Sequence:  raw.Sequence,
		Consumer:  h.Get(HeaderDLQConsumer),
		Subject:   h.Get(HeaderDLQSubject),
		Stream:    h.Get(HeaderDLQStream),
		MsgID:     h.Get(HeaderDLQMsgID),
		EventID:   h.Get(HeaderEventID),
		EventType: h.Get(HeaderEventType),
		Error:     h.Get(HeaderDLQError),
		Header:    h,
		Data:      raw.Data,
		Time:      raw.Time,
	}
	dl.StreamSeq, _ = strconv.ParseUint(h.Get(HeaderDLQStreamSeq), 10, 64)
	dl.Deliveries, _ = strconv.ParseUint(h.Get(HeaderDLQDeliveries), 10, 64)
	if t, err := time.Parse(time.RFC3339Nano, h.Get(HeaderDLQTime)); err == nil {
		dl.Time = t
	}
	if dl.EventID == "" || dl.EventType == "" {
		// Published without the Bus's headers: look inside, best effort.
		var e struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		}
		if json.Unmarshal(raw.Data, &e) == nil {
			if dl.EventID == "" {
				dl.EventID = e.ID
			}
			if dl.EventType == "" {
				dl.EventType = e.Type
			}
		}
	}
	return dl
}
