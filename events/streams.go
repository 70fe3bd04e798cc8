package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Base names and subjects of the streams every deployment has. The Bus puts
// its stream and subject prefixes in front.
const (
	// EventsStream holds every ih.> event.
	EventsStream = "IH_EVENTS"
	// DeadLetterStream holds events consumers gave up on, under
	// ihdlq.<consumer>.
	DeadLetterStream = "IH_DLQ"

	eventsSubjects     = "ih.>"
	deadLetterRoot     = "ihdlq"
	deadLetterSubjects = deadLetterRoot + ".>"
)

// StreamSpec describes a stream the hub needs. Name and Subjects are
// unprefixed; the Bus adds its prefixes. Zero fields take the Bus's
// defaults (file storage, limits retention, Options.Replicas,
// Options.DuplicateWindow).
type StreamSpec struct {
	Name        string
	Description string
	Subjects    []string
	// Retention is limits (the default), interest or work-queue. A
	// per-destination forwarding queue uses jetstream.WorkQueuePolicy.
	Retention jetstream.RetentionPolicy
	// Storage is file (the default) or memory.
	Storage jetstream.StorageType
	// MaxAge, MaxBytes and MaxMsgs bound the stream; 0 means unlimited.
	MaxAge   time.Duration
	MaxBytes int64
	MaxMsgs  int64
	// Duplicates is the Nats-Msg-Id duplicate window.
	Duplicates time.Duration
	Replicas   int
}

// DefaultStreams are the streams EnsureStreams always creates: the event
// stream and the dead-letter stream.
func (b *Bus) DefaultStreams() []StreamSpec {
	return []StreamSpec{
		{
			Name:        EventsStream,
			Description: "imaginghub events (CloudEvents 1.0 JSON)",
			Subjects:    []string{eventsSubjects},
			MaxAge:      b.opts.EventsMaxAge,
		},
		{
			Name:        DeadLetterStream,
			Description: "imaginghub dead letters: events consumers gave up on",
			Subjects:    []string{deadLetterSubjects},
			MaxAge:      b.opts.DeadLetterMaxAge,
		},
	}
}

// EnsureStreams creates the default streams and any extra ones, or updates
// them in place when their configuration changed. Calling it at every start
// is the intended use: it is idempotent, and an update keeps the stored
// messages.
func (b *Bus) EnsureStreams(ctx context.Context, extra ...StreamSpec) error {
	for _, s := range append(b.DefaultStreams(), extra...) {
		if _, err := b.EnsureStream(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// createStream creates a stream, trying again a few times over about a
// second when the server answers with a server-side error (API code 5xx):
// a NATS server busy creating many streams at once, or electing a leader,
// can fail one for a moment ("error creating store for stream",
// "insufficient resources"). Other errors return at once.
func (b *Bus) createStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	for attempt := 1; ; attempt++ {
		st, err := b.js.CreateStream(ctx, cfg)
		var apiErr *jetstream.APIError
		if err == nil || attempt == 4 || !errors.As(err, &apiErr) || apiErr.Code < 500 {
			return st, err
		}
		b.log.Warn("stream not created; trying again", "stream", cfg.Name, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempt) * 150 * time.Millisecond):
		}
	}
}

// EnsureStream creates or updates one stream and returns its info.
func (b *Bus) EnsureStream(ctx context.Context, s StreamSpec) (*jetstream.StreamInfo, error) {
	cfg, err := b.streamConfig(s)
	if err != nil {
		return nil, err
	}
	// Look first rather than calling CreateOrUpdateStream blindly, so that an
	// unchanged stream costs one read and an immutable change (storage type,
	// say) comes back as an error naming the stream.
	st, err := b.js.Stream(ctx, cfg.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		st, err = b.createStream(ctx, cfg)
		if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil, fmt.Errorf("events: create stream %s: %w", cfg.Name, err)
		}
		if err == nil {
			b.log.Info("stream created", "stream", cfg.Name)
			return st.CachedInfo(), nil
		}
		// Another process created it in between: fall through to update.
		st, err = b.js.Stream(ctx, cfg.Name)
		if err != nil {
			return nil, fmt.Errorf("events: stream %s: %w", cfg.Name, err)
		}
	case err != nil:
		return nil, fmt.Errorf("events: stream %s: %w", cfg.Name, err)
	}
	cur := st.CachedInfo().Config
	if sameStreamConfig(cur, cfg) {
		return st.CachedInfo(), nil
	}
	st, err = b.js.UpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("events: update stream %s: %w", cfg.Name, err)
	}
	b.log.Info("stream updated", "stream", cfg.Name)
	return st.CachedInfo(), nil
}

func (b *Bus) streamConfig(s StreamSpec) (jetstream.StreamConfig, error) {
	if s.Name == "" || len(s.Subjects) == 0 {
		return jetstream.StreamConfig{}, fmt.Errorf("events: stream spec needs a name and subjects")
	}
	subjects := make([]string, len(s.Subjects))
	for i, sub := range s.Subjects {
		subjects[i] = b.Subject(sub)
	}
	cfg := jetstream.StreamConfig{
		Name:        b.StreamName(s.Name),
		Description: s.Description,
		Subjects:    subjects,
		Retention:   s.Retention,
		Storage:     s.Storage,
		MaxAge:      s.MaxAge,
		MaxBytes:    s.MaxBytes,
		MaxMsgs:     s.MaxMsgs,
		Duplicates:  s.Duplicates,
		Replicas:    s.Replicas,
		Discard:     jetstream.DiscardOld,
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = -1
	}
	if cfg.MaxMsgs == 0 {
		cfg.MaxMsgs = -1
	}
	if cfg.Duplicates == 0 {
		cfg.Duplicates = b.opts.DuplicateWindow
	}
	// JetStream refuses a duplicate window longer than MaxAge.
	if cfg.MaxAge > 0 && cfg.Duplicates > cfg.MaxAge {
		cfg.Duplicates = cfg.MaxAge
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = b.opts.Replicas
	}
	return cfg, nil
}

// sameStreamConfig compares the fields a StreamSpec controls.
func sameStreamConfig(cur, want jetstream.StreamConfig) bool {
	if cur.Description != want.Description || cur.Retention != want.Retention ||
		cur.Storage != want.Storage || cur.MaxAge != want.MaxAge ||
		cur.MaxBytes != want.MaxBytes || cur.MaxMsgs != want.MaxMsgs ||
		cur.Duplicates != want.Duplicates || cur.Replicas != want.Replicas ||
		cur.Discard != want.Discard || len(cur.Subjects) != len(want.Subjects) {
		return false
	}
	for i := range cur.Subjects {
		if cur.Subjects[i] != want.Subjects[i] {
			return false
		}
	}
	return true
}
