package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"
	"unicode/utf8"
)

// maxTxAttempts bounds how often InTx runs a function whose transaction
// PostgreSQL aborted for a deadlock or serialization failure.
const maxTxAttempts = 5

// Tx is a catalog write transaction, given to the function passed to
// InTx. Its SQL methods take "?" placeholders on every backend. A Tx must
// not be used after that function returns.
type Tx struct {
	c      *Catalog
	tx     *sql.Tx
	outbox []OutboxMessage
	misses []string // statements to prepare once the connection is free
	// noCancel: statements ignore the caller's cancellation (group commit).
	noCancel bool
}

// stmtCtx is the context a statement runs under.
func (tx *Tx) stmtCtx(ctx context.Context) context.Context {
	if tx.noCancel {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// maxCachedStmts bounds the SQLite statement cache.
const maxCachedStmts = 256

// stmt returns the cached prepared form of query for this transaction, or
// nil. On SQLite, parsing and planning a statement costs more than running
// it, so statements are prepared once on the single writer connection and
// reused; they cannot be prepared while this transaction holds that
// connection, so a miss is prepared after it ends. PostgreSQL's pgx keeps
// its own statement cache.
func (tx *Tx) stmt(ctx context.Context, query string) *sql.Stmt {
	if tx.c.d.name != "sqlite" {
		return nil
	}
	if s, ok := tx.c.stmts.Load(query); ok {
		return tx.tx.StmtContext(ctx, s.(*sql.Stmt))
	}
	tx.misses = append(tx.misses, query)
	return nil
}

// prepareMisses prepares the statements a finished transaction missed.
func (c *Catalog) prepareMisses(ctx context.Context, misses []string) {
	for _, q := range misses {
		if c.nstmts.Load() >= maxCachedStmts {
			return
		}
		if _, ok := c.stmts.Load(q); ok {
			continue
		}
		s, err := c.writer.PrepareContext(ctx, q)
		if err != nil {
			continue // the statement runs unprepared
		}
		if _, loaded := c.stmts.LoadOrStore(q, s); loaded {
			s.Close()
			continue
		}
		c.nstmts.Add(1)
	}
}

// Backend names the database: "sqlite" or "postgres", for the rare
// statement that must differ.
func (tx *Tx) Backend() string { return tx.c.d.name }

// ExecContext runs a statement in the transaction.
func (tx *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = tx.stmtCtx(ctx)
	q := tx.c.d.rebind(query)
	if s := tx.stmt(ctx, q); s != nil {
		r, err := s.ExecContext(ctx, args...)
		return r, tx.c.d.wrap(err)
	}
	r, err := tx.tx.ExecContext(ctx, q, args...)
	return r, tx.c.d.wrap(err)
}

// QueryContext runs a query in the transaction.
func (tx *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = tx.stmtCtx(ctx)
	q := tx.c.d.rebind(query)
	if s := tx.stmt(ctx, q); s != nil {
		r, err := s.QueryContext(ctx, args...)
		return r, tx.c.d.wrap(err)
	}
	r, err := tx.tx.QueryContext(ctx, q, args...)
	return r, tx.c.d.wrap(err)
}

// QueryRowContext runs a query expected to return at most one row.
func (tx *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = tx.stmtCtx(ctx)
	q := tx.c.d.rebind(query)
	if s := tx.stmt(ctx, q); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return tx.tx.QueryRowContext(ctx, q, args...)
}

// Time encodes t for a timestamp column of this backend.
func (tx *Tx) Time(t time.Time) any { return tx.c.d.timeArg(t) }

// AppendOutbox queues messages to be inserted into the outbox just before
// the transaction commits; they are committed with it or not at all.
func (tx *Tx) AppendOutbox(msgs ...OutboxMessage) {
	tx.outbox = append(tx.outbox, msgs...)
}

func validateOutbox(msgs []OutboxMessage) error {
	for i, m := range msgs {
		if m.EventID == "" || m.Subject == "" {
			return fmt.Errorf("%w: outbox message %d needs EventID and Subject", ErrInvalid, i)
		}
		if !utf8.ValidString(m.EventID+m.Subject) || strings.IndexByte(m.EventID+m.Subject, 0) >= 0 {
			return fmt.Errorf("%w: outbox message %d: EventID and Subject must be UTF-8 text", ErrInvalid, i)
		}
	}
	return nil
}

// InTx runs fn in a write transaction and commits if fn returns nil,
// together with the outbox rows fn appended. If fn returns an error or
// panics, everything is rolled back and no outbox row is written.
//
// On PostgreSQL a transaction aborted by a deadlock or serialization
// failure is run again, so fn may be called more than once and must not
// have effects outside tx. On SQLite transactions are serialized (BEGIN
// IMMEDIATE on the single writer connection): fn must not call other
// Catalog write methods, which would wait for the connection fn holds.
// There fn runs on the writer's goroutine, possibly in one transaction
// with other callers' functions (group commit, each in its own
// savepoint), and its statements ignore ctx's cancellation once it runs;
// a ctx that ends while it waits for its turn returns ctx.Err().
func (c *Catalog) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	return c.inTx(ctx, txOpts{}, fn)
}

// inTxLazy is InTx for bookkeeping whose loss in a power failure or OS
// crash costs nothing but a repeat, such as the relay's claims and sent
// marks (a lost mark re-publishes an event, which JetStream drops by its
// id or consumers drop as already processed). Its commit does not wait for
// the disk: SQLite commits it with synchronous=NORMAL, PostgreSQL with
// synchronous_commit off. Commit order is kept, so a lazy write is durable
// once any later durable commit is. A process crash loses nothing.
func (c *Catalog) inTxLazy(ctx context.Context, fn func(tx *Tx) error) error {
	return c.inTx(ctx, txOpts{lazy: true}, fn)
}

// txOpts are the variants of a write transaction.
type txOpts struct {
	// lazy: the commit need not wait for the disk (see inTxLazy).
	lazy bool
	// ready, if set, is called after fn succeeded and before the commit;
	// an error rolls the transaction back. It lets a caller run the
	// statements while something the commit depends on (a file's fsync)
	// completes. It may be called more than once (PostgreSQL retries).
	ready func() error
}

func (c *Catalog) inTx(ctx context.Context, o txOpts, fn func(tx *Tx) error) error {
	var err error
	for attempt := 1; attempt <= maxTxAttempts; attempt++ {
		err = c.inTxOnce(ctx, o, fn)
		if err == nil || !c.d.retryable(err) || ctx.Err() != nil {
			return err
		}
		c.log.DebugContext(ctx, "catalog transaction retried", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
		}
	}
	return err
}

func (c *Catalog) inTxOnce(ctx context.Context, o txOpts, fn func(tx *Tx) error) (err error) {
	if c.d.name == "sqlite" {
		return c.inGroupTx(ctx, o, fn)
	}
	sqlTx, err := c.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("catalog: begin: %w", c.d.wrap(err))
	}
	if o.lazy {
		if _, err := sqlTx.ExecContext(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
			_ = sqlTx.Rollback()
			return fmt.Errorf("catalog: begin: %w", c.d.wrap(err))
		}
	}
	tx := &Tx{c: c, tx: sqlTx}
	defer func() {
		if len(tx.misses) > 0 {
			defer c.prepareMisses(context.WithoutCancel(ctx), tx.misses)
		}
		if p := recover(); p != nil {
			_ = sqlTx.Rollback()
			panic(p)
		}
		if err != nil {
			if rbErr := sqlTx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
				c.log.WarnContext(ctx, "catalog rollback failed", "err", rbErr)
			}
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.flushOutbox(ctx); err != nil {
		return err
	}
	if o.ready != nil {
		if err = o.ready(); err != nil {
			return err
		}
	}
	if err = sqlTx.Commit(); err != nil {
		return fmt.Errorf("catalog: commit: %w", c.d.wrap(err))
	}
	return nil
}

func (tx *Tx) flushOutbox(ctx context.Context) error {
	if len(tx.outbox) == 0 {
		return nil
	}
	if err := validateOutbox(tx.outbox); err != nil {
		return err
	}
	now := tx.Time(time.Now())
	// Multi-row inserts: a batch's events cost a statement per chunk, not
	// one each. Rows take their ids in VALUES order, so ids follow the
	// order the messages were appended in.
	for lo, hi := range ValuesChunks(len(tx.outbox)) {
		args := make([]any, 0, 4*(hi-lo))
		for _, m := range tx.outbox[lo:hi] {
			payload := m.Payload
			if payload == nil {
				payload = []byte{} // NOT NULL column; an empty payload is allowed
			}
			args = append(args, m.EventID, m.Subject, payload, now)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO outbox (event_id, subject, payload, created_at) VALUES `+ValuesList(hi-lo, 4), args...); err != nil {
			return fmt.Errorf("catalog: append outbox: %w", err)
		}
	}
	tx.outbox = nil
	return nil
}

// maxChunk is the most rows ValuesChunks puts in one statement.
const maxChunk = 128

// ValuesChunks splits n rows for multi-row statements into runs of 128,
// 64, …, 1 rows and yields each run's bounds [lo, hi): a handful of
// distinct statement texts for the statement caches whatever n is, and
// far below both backends' bound-parameter limits.
func ValuesChunks(n int) iter.Seq2[int, int] {
	return func(yield func(int, int) bool) {
		for lo := 0; lo < n; {
			chunk := maxChunk
			for chunk > n-lo {
				chunk /= 2
			}
			if !yield(lo, lo+chunk) {
				return
			}
			lo += chunk
		}
	}
}

// ValuesList is the VALUES list of a multi-row insert of rows rows of
// cols columns: "(?, ?), (?, ?)".
func ValuesList(rows, cols int) string {
	row := "(" + placeholders(cols) + ")"
	return strings.TrimSuffix(strings.Repeat(row+", ", rows), ", ")
}
