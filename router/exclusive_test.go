package router

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestExclusive: deliveries of one key run one at a time, other keys run
// beside them, and a waiter whose context ends gives up.
func TestExclusive(t *testing.T) {
	var x exclusive
	ctx := context.Background()
	var running, most atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := x.acquire(ctx, "job")
			if err != nil {
				t.Error(err)
				return
			}
			n := running.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
			running.Add(-1)
			release()
		}()
	}
	wg.Wait()
	if got := most.Load(); got != 1 {
		t.Errorf("%d deliveries of one job ran at once, want 1", got)
	}

	release, err := x.acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	other, err := x.acquire(ctx, "b") // another job is not held up
	if err != nil {
		t.Fatal(err)
	}
	other()
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := x.acquire(short, "a"); err != context.DeadlineExceeded {
		t.Errorf("waiting for a held job past the deadline: err = %v", err)
	}
	release()
	again, err := x.acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	again()
	if len(x.running) != 0 {
		t.Errorf("%d keys left", len(x.running))
	}
}
