// Package outbox relays events that writers committed to the catalog's
// outbox table (in the same transaction as their domain change) to NATS
// JetStream, then marks them sent.
//
// Delivery is at least once: a relay that dies between publishing and
// marking publishes the same rows again after restart, and JetStream drops
// the repeats because Nats-Msg-Id is the event id. Several relays may run
// against one PostgreSQL catalog: each claims rows with a lease.
package outbox

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/events"
)

// Source is the outbox side of the catalog.
type Source interface {
	ClaimOutbox(ctx context.Context, lease time.Duration, limit int) ([]catalog.OutboxMessage, error)
	MarkOutboxSent(ctx context.Context, ids ...int64) error
	OutboxBacklog(ctx context.Context) (int64, error)
	PurgeSentOutbox(ctx context.Context, olderThan time.Duration) (int64, error)
}

// Publisher is the JetStream side.
type Publisher interface {
	PublishMsgs(ctx context.Context, batch []events.Message) error
}

// Relay moves outbox rows to JetStream.
type Relay struct {
	Source    Source
	Publisher Publisher
	// BatchSize is the most rows published at once; 500 if zero.
	BatchSize int
	// PollInterval is how often the table is read when nobody Kicks the
	// relay (writes by other processes); 200ms if zero.
	PollInterval time.Duration
	// Lease is how long claimed rows are kept from other relays; 5s if
	// zero. It should exceed the time to publish one batch; it is also how
	// long the rows a crashed relay had claimed wait before another (or the
	// restarted one) takes them. A lease that lapses costs a duplicate
	// publish, which JetStream drops.
	Lease time.Duration
	// Gather is the least time between two passes while events keep
	// coming: a kick soon after a pass waits out the rest of it, so that a
	// burst of commits (an association storing hundreds of instances a
	// second) goes out in batches rather than one claim, publish and mark
	// per event. A kick after a quiet spell is served at once. 5ms if zero;
	// negative: never wait.
	Gather time.Duration
	// RetryMax caps the backoff while NATS or the catalog is down; 5s if zero.
	RetryMax time.Duration
	// KeepSent is how long sent rows stay in the table (for inspection)
	// before they are purged; 1h if zero.
	KeepSent time.Duration
	Log      *slog.Logger

	kick      chan struct{}
	published prometheus.Counter
	failures  prometheus.Counter
	backlog   prometheus.GaugeFunc
	lastErr   error

	// held are claimed rows not yet published (NATS was down). They are
	// retried as they are rather than claimed again: their lease may lapse
	// during a long outage, and if another relay then publishes them too,
	// JetStream drops the repeat by Nats-Msg-Id.
	held []catalog.OutboxMessage
}

// New returns a relay with defaults, registering its metrics on reg (nil:
// none).
func New(src Source, pub Publisher, reg prometheus.Registerer, log *slog.Logger) *Relay {
	if log == nil {
		log = slog.Default()
	}
	r := &Relay{Source: src, Publisher: pub, Log: log, kick: make(chan struct{}, 1)}
	r.published = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "imaginghub_outbox_published_total", Help: "Outbox events published to JetStream.",
	})
	r.failures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "imaginghub_outbox_publish_failures_total", Help: "Failed outbox relay attempts (NATS or catalog unavailable).",
	})
	r.backlog = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "imaginghub_outbox_backlog", Help: "Outbox events committed but not yet published.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := src.OutboxBacklog(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	})
	if reg != nil {
		reg.MustRegister(r.published, r.failures, r.backlog)
	}
	return r
}

// Kick wakes the relay after a commit, so events leave at once instead of
// at the next poll. It never blocks.
func (r *Relay) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	if r.kick == nil {
		r.kick = make(chan struct{}, 1)
	}
	batch := orDefault(r.BatchSize, 500)
	poll := orDefaultDur(r.PollInterval, 200*time.Millisecond)
	retryMax := orDefaultDur(r.RetryMax, 5*time.Second)
	backoff := time.Duration(0)
	gather := orDefaultDur(r.Gather, 5*time.Millisecond)
	if r.Gather < 0 {
		gather = 0
	}
	purge := time.NewTicker(time.Minute)
	defer purge.Stop()
	var last time.Time
	for {
		last = time.Now()
		n, err := r.once(ctx, batch)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			r.failures.Inc()
			backoff = min(max(2*backoff, 100*time.Millisecond), retryMax)
			if r.lastErr == nil || r.lastErr.Error() != err.Error() {
				r.Log.Warn("outbox relay: will retry", "err", err, "backoff", backoff)
			}
			r.lastErr = err
			if !sleep(ctx, backoff, nil) {
				return nil
			}
			continue
		}
		if r.lastErr != nil {
			r.Log.Info("outbox relay: publishing again")
			r.lastErr = nil
		}
		backoff = 0
		if n == batch {
			continue // more waiting
		}
		select {
		case <-purge.C:
			if _, err := r.Source.PurgeSentOutbox(ctx, orDefaultDur(r.KeepSent, time.Hour)); err != nil && ctx.Err() == nil {
				r.Log.Warn("outbox relay: purge", "err", err)
			}
		default:
		}
		if !sleep(ctx, poll, r.kick) {
			return nil
		}
		if wait := gather - time.Since(last); wait > 0 && !sleep(ctx, wait, nil) {
			return nil
		}
	}
}

// Flush relays until the outbox is empty or ctx ends; for tests and
// graceful shutdown. It must not run beside Run on the same Relay.
func (r *Relay) Flush(ctx context.Context) error {
	for {
		n, err := r.once(ctx, orDefault(r.BatchSize, 500))
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

// once publishes one batch and returns how many rows it relayed.
func (r *Relay) once(ctx context.Context, limit int) (int, error) {
	rows := r.held
	if len(rows) == 0 {
		var err error
		rows, err = r.Source.ClaimOutbox(ctx, orDefaultDur(r.Lease, 5*time.Second), limit)
		if err != nil || len(rows) == 0 {
			return 0, err
		}
	}
	r.held = rows
	msgs := make([]events.Message, len(rows))
	for i, row := range rows {
		msgs[i] = events.Message{Subject: row.Subject, MsgID: row.EventID, Data: row.Payload}
	}
	err := r.Publisher.PublishMsgs(ctx, msgs)
	ids := make([]int64, 0, len(rows))
	var failed []catalog.OutboxMessage
	var be *events.BatchError
	switch {
	case err == nil:
		for _, row := range rows {
			ids = append(ids, row.ID)
		}
	case errors.As(err, &be) && len(be.Errs) == len(rows):
		// Mark what JetStream stored; the rest go again after the lease.
		for i, row := range rows {
			if be.Errs[i] == nil {
				ids = append(ids, row.ID)
			} else {
				failed = append(failed, row)
			}
		}
	default:
		return 0, err
	}
	if len(ids) > 0 {
		if merr := r.Source.MarkOutboxSent(ctx, ids...); merr != nil {
			return 0, merr
		}
		r.published.Add(float64(len(ids)))
	}
	r.held = failed
	if len(ids) < len(rows) {
		return len(ids), err
	}
	return len(rows), nil
}

func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}

func orDefault(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

func orDefaultDur(v, d time.Duration) time.Duration {
	if v <= 0 {
		return d
	}
	return v
}
