package router

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
)

// ledger is the catalog's record of acknowledged deliveries, shared by all
// destinations. Lookups run at once, grouped with those that arrive
// meanwhile: one read-only transaction on the catalog's read pool per group
// (it neither waits for nor holds up the single writer on SQLite), one
// query per destination. Records are group-committed: they linger up to
// recordLinger (or until maxGroup are waiting) and commit together, so a
// stream of deliveries costs one durable commit per group instead of one
// each, and takes the catalog's single writer (SQLite) from ingest far less
// often. A caller still returns only once its own record is committed, and
// only then is its job acknowledged; the delivery handlers outnumber the
// associations so that the wait does not slow sending.
type ledger struct {
	cat *catalog.Catalog

	mu      sync.Mutex
	lookups []*ledgerOp
	records []*ledgerOp
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

const (
	recordLinger = 10 * time.Millisecond
	maxGroup     = 256
)

type ledgerOp struct {
	record bool // record the delivery; otherwise look it up
	dest   string
	job    *Job
	found  bool
	err    error
	done   chan struct{}
}

func newLedger(cat *catalog.Catalog) *ledger {
	l := &ledger{cat: cat, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

// close stops the ledger once the operations in hand are done.
func (l *ledger) close() {
	close(l.stop)
	<-l.done
}

func (l *ledger) run() {
	defer close(l.done)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	lingering := false
	for {
		select {
		case <-l.kick:
		case <-linger.C:
			lingering = false
			l.commit(true)
			continue
		case <-l.stop:
			l.commit(false)
			l.commit(true) // callers still waiting
			return
		}
		l.commit(false)
		l.mu.Lock()
		n := len(l.records)
		l.mu.Unlock()
		switch {
		case n >= maxGroup:
			if lingering {
				linger.Stop()
				lingering = false
			}
			l.commit(true)
		case n > 0 && !lingering:
			linger.Reset(recordLinger)
			lingering = true
		}
	}
}

// commit runs the waiting lookups, or the waiting records.
func (l *ledger) commit(records bool) {
	for {
		l.mu.Lock()
		var ops []*ledgerOp
		if records {
			ops, l.records = l.records, nil
		} else {
			ops, l.lookups = l.lookups, nil
		}
		l.mu.Unlock()
		if len(ops) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var err error
		if records {
			err = l.cat.InTx(ctx, func(tx *catalog.Tx) error {
				now := tx.Time(time.Now())
				for _, op := range ops {
					if err := op.insert(ctx, tx, now); err != nil {
						return err
					}
				}
				return nil
			})
		} else {
			err = l.cat.InReadTx(ctx, func(tx *catalog.ReadTx) error { return lookup(ctx, tx, ops) })
		}
		cancel()
		for _, op := range ops {
			if err != nil {
				op.err = fmt.Errorf("router: delivery ledger: %w", err)
			}
			close(op.done)
		}
		if records {
			return // the rest linger for the next group
		}
	}
}

func (op *ledgerOp) insert(ctx context.Context, tx *catalog.Tx, now any) error {
	j := op.job
	if j.IsWebhook() {
		_, err := tx.ExecContext(ctx, `INSERT INTO router_webhook_delivered (destination, event_id, delivered_at) VALUES (?, ?, ?)
			ON CONFLICT (destination, event_id) DO NOTHING`, op.dest, j.EventID, now)
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO router_forwarded (destination, sop_instance_uid, blob_key, forwarded_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (destination, sop_instance_uid, blob_key) DO NOTHING`, op.dest, j.SOPInstanceUID, j.BlobKey, now)
	return err
}

// lookupKey groups lookups that one query answers: one destination, and
// instances or events.
type lookupKey struct {
	dest    string
	webhook bool
}

// lookup sets found on every op: one query per destination and kind, with
// the keys of all its jobs, at most maxGroup at a time.
func lookup(ctx context.Context, tx *catalog.ReadTx, ops []*ledgerOp) error {
	groups := map[lookupKey][]*ledgerOp{}
	var order []lookupKey
	for _, op := range ops {
		k := lookupKey{op.dest, op.job.IsWebhook()}
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], op)
	}
	for _, k := range order {
		g := groups[k]
		for len(g) > 0 {
			n := min(len(g), maxGroup)
			if err := lookupGroup(ctx, tx, k, g[:n]); err != nil {
				return err
			}
			g = g[n:]
		}
	}
	return nil
}

func lookupGroup(ctx context.Context, tx *catalog.ReadTx, k lookupKey, ops []*ledgerOp) error {
	args := make([]any, 0, len(ops)+1)
	args = append(args, k.dest)
	for _, op := range ops {
		if k.webhook {
			args = append(args, op.job.EventID)
		} else {
			args = append(args, op.job.SOPInstanceUID)
		}
	}
	in := "?" + strings.Repeat(", ?", len(ops)-1)
	var q string
	if k.webhook {
		q = `SELECT event_id, '' FROM router_webhook_delivered WHERE destination = ? AND event_id IN (` + in + `)`
	} else {
		// The few files recorded per instance (one per stored version)
		// are told apart by blob key here rather than in the query.
		q = `SELECT sop_instance_uid, blob_key FROM router_forwarded WHERE destination = ? AND sop_instance_uid IN (` + in + `)`
	}
	type pair struct{ id, blob string }
	rows, err := catalog.Collect(ctx, tx, func(s catalog.Scanner) (pair, error) {
		var p pair
		err := s.Scan(&p.id, &p.blob)
		return p, err
	}, q, args...)
	if err != nil {
		return err
	}
	found := make(map[pair]bool, len(rows))
	for _, r := range rows {
		found[r] = true
	}
	for _, op := range ops {
		if k.webhook {
			op.found = found[pair{op.job.EventID, ""}]
		} else {
			op.found = found[pair{op.job.SOPInstanceUID, op.job.BlobKey}]
		}
	}
	return nil
}

func (l *ledger) do(ctx context.Context, op *ledgerOp) error {
	op.done = make(chan struct{})
	l.mu.Lock()
	if op.record {
		l.records = append(l.records, op)
	} else {
		l.lookups = append(l.lookups, op)
	}
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	select {
	case <-op.done:
		return op.err
	case <-ctx.Done():
		// The operation may still commit; a record that does is harmless
		// (the job is redelivered and then skipped).
		return ctx.Err()
	}
}

// delivered reports whether the destination acknowledged this delivery
// before.
func (l *ledger) delivered(ctx context.Context, dest string, j *Job) (bool, error) {
	op := &ledgerOp{dest: dest, job: j}
	if err := l.do(ctx, op); err != nil {
		return false, err
	}
	return op.found, nil
}

// record commits that the destination acknowledged the delivery.
func (l *ledger) record(ctx context.Context, dest string, j *Job) error {
	return l.do(ctx, &ledgerOp{record: true, dest: dest, job: j})
}
