package catalog

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestGroupCommitGroups checks that SQLite writers queued behind a running
// transaction commit together; what each one commits is checked by the
// conformance suite's ConcurrentTxIsolation.
func TestGroupCommitGroups(t *testing.T) {
	ctx := context.Background()
	c := testSQLite(t)
	release := holdWriter(c)
	var wg sync.WaitGroup
	const n = 10
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.InTx(ctx, func(tx *Tx) error {
				tx.AppendOutbox(OutboxMessage{EventID: fmt.Sprint("e", i), Subject: "ih.test"})
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	waitQueued(c, n)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got := c.group.largest.Load(); got != n {
		t.Errorf("largest group = %d, want %d (all queued writers in one commit)", got, n)
	}
	if b, err := c.OutboxBacklog(ctx); err != nil || b != n {
		t.Errorf("OutboxBacklog = %d, %v; want %d", b, err, n)
	}
}

// TestGroupCommitAbandoned checks that a writer whose context ends while it
// waits for its turn returns at once and its function never runs.
func TestGroupCommitAbandoned(t *testing.T) {
	ctx := context.Background()
	c := testSQLite(t)
	release := holdWriter(c)
	qctx, cancel := context.WithCancel(ctx)
	ran := false
	queued := make(chan error, 1)
	go func() {
		queued <- c.InTx(qctx, func(tx *Tx) error { ran = true; return nil })
	}()
	for c.queued() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-queued; err != context.Canceled {
		t.Errorf("queued writer: err = %v, want context.Canceled", err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	// The leaders have skipped the abandoned job by the time a later one commits.
	if err := c.InTx(ctx, func(tx *Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if ran {
		t.Error("the abandoned writer's function ran")
	}
}

// TestGroupCommitReady checks the commit precondition: statements run
// first, the commit waits for every job's ready, and a failing ready fails
// the group without committing anything of it.
func TestGroupCommitReady(t *testing.T) {
	ctx := context.Background()
	c := testSQLite(t)
	write := func(id string) func(tx *Tx) error {
		return func(tx *Tx) error {
			tx.AppendOutbox(OutboxMessage{EventID: id, Subject: "ih.test"})
			return nil
		}
	}
	// Alone: a ready that fails rolls back; one that succeeds commits.
	errDisk := fmt.Errorf("disk failed")
	if err := c.inTx(ctx, txOpts{ready: func() error { return errDisk }}, write("a")); err != errDisk {
		t.Fatalf("failing ready: err = %v", err)
	}
	if err := c.inTx(ctx, txOpts{ready: func() error { return nil }}, write("b")); err != nil {
		t.Fatal(err)
	}
	// In a group: queue three behind a held transaction, one of them with
	// a failing ready.
	release := holdWriter(c)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready := func() error { return nil }
			if i == 1 {
				ready = func() error { return errDisk }
			}
			errs[i] = c.inTx(ctx, txOpts{ready: ready}, write(fmt.Sprint("g", i)))
		}()
	}
	waitQueued(c, 3)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if errs[1] != errDisk || errs[0] == nil || errs[2] == nil {
		t.Errorf("group errors = %v, want the failing ready's own error and the others failed", errs)
	}
	if b, err := c.OutboxBacklog(ctx); err != nil || b != 1 {
		t.Errorf("OutboxBacklog = %d, %v; want 1 (only b)", b, err)
	}
}

func TestValuesChunks(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 127, 128, 129, 300, 1000} {
		next := 0
		for lo, hi := range ValuesChunks(n) {
			if lo != next || hi <= lo || hi-lo > maxChunk {
				t.Fatalf("n=%d: chunk [%d,%d) after %d", n, lo, hi, next)
			}
			if k := hi - lo; k&(k-1) != 0 {
				t.Errorf("n=%d: chunk of %d rows, want a power of two", n, k)
			}
			next = hi
		}
		if next != n {
			t.Errorf("n=%d: chunks cover %d rows", n, next)
		}
	}
	if got, want := ValuesList(2, 3), "(?, ?, ?), (?, ?, ?)"; got != want {
		t.Errorf("ValuesList(2, 3) = %q, want %q", got, want)
	}
}

// testSQLite opens a new SQLite catalog that closes when the test ends.
func testSQLite(t *testing.T) *Catalog {
	t.Helper()
	c, err := Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "c.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// holdWriter starts a transaction that holds c's writer until release is
// called; release waits for it to commit and returns its error.
func holdWriter(c *Catalog) (release func() error) {
	started, rel := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- c.InTx(context.Background(), func(*Tx) error { close(started); <-rel; return nil })
	}()
	<-started
	return func() error { close(rel); return <-held }
}

// waitQueued waits (up to 5 s) until n writers queue for c's writer.
func waitQueued(c *Catalog, n int) {
	deadline := time.Now().Add(5 * time.Second)
	for c.queued() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}
