package catalog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Group commit (SQLite).
//
// SQLite has one writer, and with synchronous=FULL every commit writes the
// pages it touched to the WAL and fsyncs it. Writers that arrive while a
// transaction runs would each pay that in turn; instead they wait in a
// queue, and the next transaction runs all of them, each inside its own
// savepoint, and commits once. A function that fails is rolled back to its
// savepoint alone and its caller gets the error; the others commit. Every
// caller returns only after the commit that holds its writes (or with an
// error, having written nothing): durability is the same as one
// transaction each, the fsync and the shared pages are paid once per
// group. A lone writer runs in a plain transaction, as before. A caller
// whose context ends while it waits for its turn leaves the queue.
//
// The transactions run on the callers' own goroutines, one at a time: a
// caller that finds no transaction running runs its own at once (the
// leader); those arriving meanwhile queue, and when the leader's commit is
// done the oldest of them leads the next group, of everything queued by
// then. No goroutine of the catalog's own has to be woken, and wait for a
// processor, before a transaction starts; each caller is woken once, when
// its group has committed or when it is its turn to lead.
//
// Statements inside a group ignore their callers' cancellation: SQLite
// answers an interrupted write by rolling back the whole transaction,
// which would take the other callers' work with it. A caller whose context
// ends before its turn gets ctx.Err() and writes nothing.

// maxGroup bounds how many transactions one commit carries.
const maxGroup = 64

type groupJob struct {
	ctx context.Context
	txOpts
	fn       func(tx *Tx) error
	err      error
	panicked any
	// wake is signalled once: when the job's group has committed (state
	// running), or when its caller is to lead the next group (leading).
	wake chan struct{}
	// state moves from queued to running (a leader takes it into its
	// group), to leading, or to abandoned (its caller's context ended
	// first), never to two of them.
	state atomic.Int32
}

const (
	jobQueued int32 = iota
	jobRunning
	jobAbandoned
	jobLeading
)

type group struct {
	mu      sync.Mutex
	shut    bool
	leading bool        // a caller is running a group
	queue   []*groupJob // waiting for the next group, oldest first; empty unless leading
	idle    *sync.Cond  // broadcast when the last leader steps down (Close waits for it)

	largest atomic.Int64 // the most jobs one transaction carried (tests)
	relaxed bool         // the writer runs with synchronous=NORMAL; leaders only
}

// inGroupTx runs fn in the next group transaction and waits for its commit.
func (c *Catalog) inGroupTx(ctx context.Context, o txOpts, fn func(tx *Tx) error) error {
	g := &c.group
	j := &groupJob{ctx: ctx, txOpts: o, fn: fn, wake: make(chan struct{}, 1)}
	if err := ctx.Err(); err != nil {
		return err
	}
	g.mu.Lock()
	if g.shut {
		g.mu.Unlock()
		return ErrClosed
	}
	if g.leading {
		g.queue = append(g.queue, j)
		g.mu.Unlock()
		select {
		case <-j.wake:
		case <-ctx.Done():
			if j.state.CompareAndSwap(jobQueued, jobAbandoned) {
				return ctx.Err() // the leaders skip it
			}
			<-j.wake // taken into a group, or made the leader: that decides
		}
		if j.state.Load() == jobLeading {
			c.lead(j)
		}
	} else {
		g.leading = true
		g.mu.Unlock()
		c.lead(j)
	}
	if j.panicked != nil {
		panic(j.panicked)
	}
	return j.err
}

// lead runs the group of j (a job no one else holds: new, or handed the
// lead) and of the jobs queued before the call (up to maxGroup), then
// hands the lead to the oldest job still queued, or steps down.
func (c *Catalog) lead(j *groupJob) {
	g := &c.group
	g.mu.Lock()
	batch := make([]*groupJob, 1, min(len(g.queue)+1, maxGroup))
	batch[0] = j
	n := 0
	for _, q := range g.queue {
		if len(batch) == maxGroup {
			break
		}
		n++
		if q.state.CompareAndSwap(jobQueued, jobRunning) {
			batch = append(batch, q)
		}
	}
	clear(g.queue[:n]) // the array may live on under later appends
	g.queue = g.queue[n:]
	g.mu.Unlock()
	j.state.Store(jobRunning)
	ran := false
	defer func() {
		if !ran {
			// runGroup itself panicked (not a job's function: runJob
			// hands those to their callers); nothing of it committed.
			for _, q := range batch {
				q.err = errGroupFailed
			}
		}
		for _, q := range batch[1:] {
			q.wake <- struct{}{}
		}
		c.handOver()
	}()
	c.runGroup(batch)
	ran = true
}

var errGroupFailed = errors.New("catalog: group commit failed")

// handOver makes the oldest job still queued the next leader, or ends the
// lead when there is none.
func (c *Catalog) handOver() {
	g := &c.group
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.queue) > 0 {
		q := g.queue[0]
		g.queue[0] = nil
		g.queue = g.queue[1:]
		if q.state.CompareAndSwap(jobQueued, jobLeading) {
			q.wake <- struct{}{}
			return
		}
	}
	g.queue = nil
	g.leading = false
	g.idle.Broadcast()
}

// startGroup readies the group commit; openSQLite calls it once.
func (c *Catalog) startGroup() {
	c.group.idle = sync.NewCond(&c.group.mu)
}

// stopGroup lets the running and queued jobs finish and refuses new ones;
// for Close.
func (c *Catalog) stopGroup() {
	g := &c.group
	g.mu.Lock()
	defer g.mu.Unlock()
	g.shut = true
	for g.leading {
		g.idle.Wait()
	}
}

// queued is how many jobs wait for a group (tests).
func (c *Catalog) queued() int {
	c.group.mu.Lock()
	defer c.group.mu.Unlock()
	return len(c.group.queue)
}

// runGroup runs the jobs in one transaction and sets each one's err.
func (c *Catalog) runGroup(batch []*groupJob) {
	ctx := context.Background()
	live := batch[:0:0]
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil {
			j.err = err
			continue
		}
		live = append(live, j)
	}
	if len(live) == 0 {
		return
	}
	if n := int64(len(live)); n > c.group.largest.Load() {
		c.group.largest.Store(n)
	}
	// A group of lazy jobs only commits without the fsync; the next
	// durable commit syncs the WAL, and the lazy writes before it, to disk.
	lazy := true
	for _, j := range live {
		lazy = lazy && j.lazy
	}
	if lazy != c.group.relaxed {
		mode := "FULL"
		if lazy {
			mode = "NORMAL"
		}
		if _, err := c.writer.ExecContext(ctx, "PRAGMA synchronous = "+mode); err != nil {
			err = fmt.Errorf("catalog: synchronous=%s: %w", mode, c.d.wrap(err))
			for _, j := range live {
				j.err = err
			}
			return
		}
		c.group.relaxed = lazy
	}
	sqlTx, err := c.writer.BeginTx(ctx, nil)
	if err != nil {
		err = fmt.Errorf("catalog: begin: %w", c.d.wrap(err))
		for _, j := range live {
			j.err = err
		}
		return
	}
	tx := &Tx{c: c, tx: sqlTx, noCancel: true}
	defer func() {
		if len(tx.misses) > 0 {
			c.prepareMisses(ctx, tx.misses)
		}
	}()
	savepoints := len(live) > 1
	var (
		fatal error       // the transaction itself failed: nothing commits
		ok    []*groupJob // jobs whose writes are in the transaction
	)
	for _, j := range live {
		if savepoints {
			if _, err := sqlTx.ExecContext(ctx, "SAVEPOINT g"); err != nil {
				fatal = fmt.Errorf("catalog: savepoint: %w", c.d.wrap(err))
				break
			}
		}
		tx.outbox = nil
		j.err = runJob(j, tx)
		if !savepoints {
			if j.err == nil {
				ok = append(ok, j)
			}
			break
		}
		if j.err != nil {
			// ROLLBACK TO keeps the savepoint open; RELEASE ends it. If
			// either fails the transaction is gone (SQLite rolls it back
			// on some errors): nothing of the group may commit.
			if _, err := sqlTx.ExecContext(ctx, "ROLLBACK TO g"); err != nil {
				fatal = fmt.Errorf("catalog: rollback to savepoint: %w", c.d.wrap(err))
				break
			}
		}
		if _, err := sqlTx.ExecContext(ctx, "RELEASE g"); err != nil {
			fatal = fmt.Errorf("catalog: release savepoint: %w", c.d.wrap(err))
			if j.err == nil {
				j.err = fatal
			}
			break
		}
		if j.err == nil {
			ok = append(ok, j)
		}
	}
	// What the commit depends on (the jobs' files being durable) was
	// under way while the statements ran; wait for it now. A job whose
	// precondition fails cannot be taken out of the released savepoints,
	// so the group fails (it is a disk error, which the others would meet
	// too).
	if fatal == nil {
		for _, j := range ok {
			if j.ready == nil {
				continue
			}
			if err := j.ready(); err != nil {
				j.err = err
				fatal = fmt.Errorf("catalog: group commit abandoned: a writer's precondition failed: %w", err)
				break
			}
		}
	}
	if fatal != nil || len(ok) == 0 {
		if err := sqlTx.Rollback(); err != nil {
			c.log.DebugContext(ctx, "catalog group rollback", "err", err)
		}
		if fatal != nil {
			// The writes of the jobs that succeeded are gone, and the
			// jobs after the failure never ran.
			for _, j := range live {
				if j.err == nil {
					j.err = fatal
				}
			}
		}
		return
	}
	if err := sqlTx.Commit(); err != nil {
		err = fmt.Errorf("catalog: commit: %w", c.d.wrap(err))
		for _, j := range ok {
			j.err = err
		}
	}
}

// runJob runs one job's function and its outbox rows; a panic is handed to
// the job's caller.
func runJob(j *groupJob, tx *Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			j.panicked = p
			err = fmt.Errorf("catalog: transaction function panicked")
		}
	}()
	if err := j.fn(tx); err != nil {
		return err
	}
	return tx.flushOutbox(j.ctx)
}
