// Package coordtest is the conformance suite every coordination driver
// runs, through the portable *coord.Coordinator, so that the in-process and
// Redis backends are interchangeable.
//
// Timer cases pass explicit times to ArmTimer and ClaimDue and need no
// sleeping; dedupe and lock cases depend on the backend's clock and sleep
// for a few tens of milliseconds.
package coordtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/coord"
)

// NewFunc returns a fresh, empty Coordinator for one test or benchmark and
// arranges (with tb.Cleanup) to close it and remove what it stored.
type NewFunc func(tb testing.TB) *coord.Coordinator

// base is a fixed timer clock; timers only ever see the times callers give.
var base = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return base.Add(d) }

// Run runs every conformance case as a subtest of t.
func Run(t *testing.T, newCoordinator NewFunc) {
	cases := []struct {
		name string
		fn   func(*testing.T, *coord.Coordinator)
	}{
		{"TimerDueOnlyAtFireAt", testTimerDueOnlyAtFireAt},
		{"TimerReArm", testTimerReArm},
		{"TimerClaimOrderAndLimit", testTimerClaimOrderAndLimit},
		{"TimerClaimExclusive", testTimerClaimExclusive},
		{"TimerLeaseExpiryRedelivers", testTimerLeaseExpiryRedelivers},
		{"TimerComplete", testTimerComplete},
		{"TimerCancel", testTimerCancel},
		{"TimerNextDue", testTimerNextDue},
		{"TimerSetsIndependent", testTimerSetsIndependent},
		{"TimerMillisecondResolution", testTimerMillisecondResolution},
		{"Remember", testRemember},
		{"LockExclusive", testLockExclusive},
		{"LockRefresh", testLockRefresh},
		{"LockExpiry", testLockExpiry},
		{"LockBlocking", testLockBlocking},
		{"LockMutualExclusion", testLockMutualExclusion},
		{"InvalidArguments", testInvalidArguments},
		{"Closed", testClosed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newCoordinator(t))
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func keys(ts []coord.Timer) []string {
	out := make([]string, len(ts))
	for i, tm := range ts {
		out[i] = tm.Key
	}
	return out
}

func claim(t *testing.T, c *coord.Coordinator, set string, now time.Time, lease time.Duration, limit int) []coord.Timer {
	t.Helper()
	got, err := c.ClaimDue(ctxT(t), set, now, lease, limit)
	if err != nil {
		t.Fatalf("ClaimDue(%s, %v): %v", set, now.Sub(base), err)
	}
	return got
}

func wantKeys(t *testing.T, what string, got []coord.Timer, want ...string) {
	t.Helper()
	if g := keys(got); !slices.Equal(g, want) && !(len(g) == 0 && len(want) == 0) {
		t.Fatalf("%s: claimed %q, want %q", what, g, want)
	}
}

func testTimerDueOnlyAtFireAt(t *testing.T, c *coord.Coordinator) {
	ctx := ctxT(t)
	must(t, c.ArmTimer(ctx, "stable", "1.2.3.4", at(60*time.Second)))
	steps := []struct {
		now  time.Duration
		want []string
	}{
		{0, nil},
		{59*time.Second + 999*time.Millisecond, nil},
		{60 * time.Second, []string{"1.2.3.4"}},
		{60*time.Second + 10*time.Millisecond, nil}, // leased until 90 s
	}
	for _, s := range steps {
		got := claim(t, c, "stable", at(s.now), 30*time.Second, 10)
		wantKeys(t, fmt.Sprintf("at %v", s.now), got, s.want...)
		if len(got) == 1 {
			if want := at(s.now + 30*time.Second); !got[0].FireAt.Equal(want) {
				t.Errorf("leased FireAt = %v, want now+lease %v", got[0].FireAt, want)
			}
		}
	}
}

func testTimerReArm(t *testing.T, c *coord.Coordinator) {
	ctx := ctxT(t)
	// Later arming postpones, as each new instance of a study does.
	must(t, c.ArmTimer(ctx, "s", "later", at(10*time.Millisecond)))
	must(t, c.ArmTimer(ctx, "s", "later", at(50*time.Millisecond)))
	// Earlier arming also replaces: the last ArmTimer wins.
	must(t, c.ArmTimer(ctx, "s", "earlier", at(80*time.Millisecond)))
	must(t, c.ArmTimer(ctx, "s", "earlier", at(20*time.Millisecond)))

	wantKeys(t, "at 10ms", claim(t, c, "s", at(10*time.Millisecond), time.Minute, 10))
	wantKeys(t, "at 20ms", claim(t, c, "s", at(20*time.Millisecond), time.Minute, 10), "earlier")
	wantKeys(t, "at 49ms", claim(t, c, "s", at(49*time.Millisecond), time.Minute, 10))
	wantKeys(t, "at 50ms", claim(t, c, "s", at(50*time.Millisecond), time.Minute, 10), "later")
}

func testTimerClaimOrderAndLimit(t *testing.T, c *coord.Coordinator) {
	ctx := ctxT(t)
	// Armed out of order; claimed earliest first.
	for _, i := range []int{5, 2, 7, 0, 3, 6, 1, 4} {
		must(t, c.ArmTimer(ctx, "s", fmt.Sprintf("k%d", i), at(time.Duration(i)*time.Second)))
	}
	now := at(time.Hour)
	wantKeys(t, "first", claim(t, c, "s", now, time.Minute, 3), "k0", "k1", "k2")
	wantKeys(t, "second", claim(t, c, "s", now, time.Minute, 3), "k3", "k4", "k5")
	wantKeys(t, "third", claim(t, c, "s", now, time.Minute, 3), "k6", "k7")
	wantKeys(t, "fourth", claim(t, c, "s", now, time.Minute, 3))
	// limit <= 0 means DefaultClaimLimit.
	for i := range coord.DefaultClaimLimit + 5 {
		must(t, c.ArmTimer(ctx, "d", fmt.Sprintf("k%03d", i), base))
	}
	if got := claim(t, c, "d", base, time.Minute, 0); len(got) != coord.DefaultClaimLimit {
		t.Fatalf("limit 0 claimed %d, want %d", len(got), coord.DefaultClaimLimit)
	}
}

func testTimerClaimExclusive(t *testing.T, c *coord.Coordinator) {
	ctx := ctxT(t)
	const n, claimers = 1000, 8
	for i := range n {
		must(t, c.ArmTimer(ctx, "s", fmt.Sprintf("study-%04d", i), at(time.Duration(i%50)*time.Millisecond)))
	}
	var (
		mu     sync.Mutex
		counts = make(map[string]int)
		wg     sync.WaitGroup
		errs   = make(chan error, claimers)
	)
	now := at(time.Second)
	for range claimers {
		wg.Go(func() {
			for {
				got, err := c.ClaimDue(ctx, "s", now, time.Minute, 7)
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				for _, tm := range got {
					ok, err := c.CompleteTimer(ctx, "s", tm)
					if err != nil || !ok {
						errs <- fmt.Errorf("complete %s: %v, %v", tm.Key, ok, err)
						return
					}
				}
				mu.Lock()
				for _, tm := range got {
					counts[tm.Key]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(counts) != n {
		t.Fatalf("claimed %d distinct timers, want %d", len(counts), n)
	}
	for k, v := range counts {
		if v != 1 {
			t.Errorf("%s claimed %d times", k, v)
		}
	}
	if _, ok, err := c.NextDue(ctx, "s"); err != nil || ok {
		t.Fatalf("NextDue after completing all = %v, %v; want empty", ok, err)
	}
}

func testTimerLeaseExpiryRedelivers(t *testing.T, c *coord.Coordinator) {
	ctx := ctxT(t)
	must(t, c.ArmTimer(ctx, "s", "k", base))
	first := claim(t, c, "s", base, 30*time.Millisecond, 1)
	wantKeys(t, "first claim", first, "k")
	// The first claimer "crashes": nothing completes the timer.
	wantKeys(t, "within lease", claim(t, c, "s", at(29*time.Millisecond), 30*time.Millisecond, 1))
	second := claim(t, c, "s", at(30*time.Millisecond), 30*time.Millisecond, 1)
	wantKeys(t, "after lease", second, "k")

	// The first claim was superseded; only the second completes.
	if ok, err := c.CompleteTimer(ctx, "s", first[0]); err != nil || ok {
		t.Fatalf("complete superseded claim = %v, %v; want false", ok, err)
	}
	if ok, err := c.CompleteTimer(ctx, "s", second[0]); err != nil || !ok {
		t.Fatalf("complete current claim = %v, %v; want true", ok, err)
	}
}

func testTimerComplete(t *testing.T, c *coord.Coordinator) {
	ctx := ctxT(t)
	tests := []struct {
		name       string
		afterClaim func(key string) error
		wantOK     bool
		wantNext   time.Time // zero: timer gone
	}{
		{"untouched", func(string) error { return nil }, true, time.Time{}},
		{"rearmed", func(k string) error { return c.ArmTimer(ctx, "s", k, at(time.Minute)) }, false, at(time.Minute)},
		// Re-armed to exactly the leased time: still a re-arm.
		{"rearmed-same-time", func(k string) error { return c.ArmTimer(ctx, "s", k, at(time.Second)) }, false, at(time.Second)},
		{"cancelled", func(k string) error { return c.CancelTimer(ctx, "s", k) }, false, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			must(t, c.ArmTimer(ctx, "s", tc.name, base))
			got := claim(t, c, "s", base, time.Second, 10)
			wantKeys(t, "claim", got, tc.name)
			must(t, tc.afterClaim(tc.name))
			ok, err := c.CompleteTimer(ctx, "s", got[0])
			if err != nil || ok != tc.wantOK {
				t.Fatalf("CompleteTimer = %v, %v; want %v", ok, err, tc.wantOK)
			}
			next, armed, err := c.NextDue(ctx, "s")
			must(t, err)
			if armed != !tc.wantNext.IsZero() || (armed && !next.Equal(tc.wantNext)) {
				t.Fatalf("NextDue = %v, %v; want %v", next, armed, tc.wantNext)
			}
			// Completing twice never succeeds.
			if ok, err := c.CompleteTimer(ctx, "s", got[0]); err != nil || ok {
				t.Fatalf("second CompleteTimer = %v, %v; want false", ok, err)
			}
			must(t, c.CancelTimer(ctx, "s", tc.name))
		})
	}
	// A Timer made by hand carries no claim and never completes.
	must(t, c.ArmTimer(ctx, "s", "forged", base))
	if ok, err := c.CompleteTimer(ctx, "s", coord.Timer{Key: "forged", FireAt: base}); err != nil || ok {
		t.Fatalf("complete unclaimed = %v, %v; want false", ok, err)
	}
}

func testTimerCancel(t *testing.T, c *coord.Coordinator) {
	ctx := ctxT(t)
	must(t, c.ArmTimer(ctx, "s", "a", base))
	must(t, c.ArmTimer(ctx, "s", "b", base))
	must(t, c.CancelTimer(ctx, "s", "a"))
	must(t, c.CancelTimer(ctx, "s", "never-armed"))
	must(t, c.CancelTimer(ctx, "no-such-set", "a"))
	wantKeys(t, "after cancel", claim(t, c, "s", at(time.Hour), time.Minute, 10), "b")
}

func testTimerNextDue(t *testing.T, c *coord.Coordinator) {
	ctx := ctxT(t)
	if _, ok, err := c.NextDue(ctx, "s"); err != nil || ok {
		t.Fatalf("NextDue on empty set = %v, %v", ok, err)
	}
	must(t, c.ArmTimer(ctx, "s", "a", at(3*time.Second)))
	must(t, c.ArmTimer(ctx, "s", "b", at(1*time.Second)))
	must(t, c.ArmTimer(ctx, "s", "c", at(2*time.Second)))
	steps := []struct {
		do   func() error
		want time.Time
	}{
		{func() error { return nil }, at(1 * time.Second)},
		{func() error { return c.CancelTimer(ctx, "s", "b") }, at(2 * time.Second)},
		// A claimed timer counts at its lease end.
		{func() error { _, err := c.ClaimDue(ctx, "s", at(2*time.Second), 5*time.Second, 1); return err }, at(3 * time.Second)},
		{func() error { return c.CancelTimer(ctx, "s", "a") }, at(7 * time.Second)},
	}
	for i, s := range steps {
		must(t, s.do())
		got, ok, err := c.NextDue(ctx, "s")
		if err != nil || !ok || !got.Equal(s.want) {
			t.Fatalf("step %d: NextDue = %v, %v, %v; want %v", i, got, ok, err, s.want)
		}
	}
}

func testTimerSetsIndependent(t *testing.T, c *coord.Coordinator) {
	ctx := ctxT(t)
	must(t, c.ArmTimer(ctx, "stable", "k", base))
	must(t, c.ArmTimer(ctx, "retry", "k", at(time.Hour)))
	wantKeys(t, "retry early", claim(t, c, "retry", base, time.Minute, 10))
	got := claim(t, c, "stable", base, time.Minute, 10)
	wantKeys(t, "stable", got, "k")
	ok, err := c.CompleteTimer(ctx, "stable", got[0])
	if err != nil || !ok {
		t.Fatalf("complete = %v, %v", ok, err)
	}
	if next, ok, err := c.NextDue(ctx, "retry"); err != nil || !ok || !next.Equal(at(time.Hour)) {
		t.Fatalf("other set's timer: %v, %v, %v", next, ok, err)
	}
}

func testTimerMillisecondResolution(t *testing.T, c *coord.Coordinator) {
	ctx := ctxT(t)
	must(t, c.ArmTimer(ctx, "s", "k", base.Add(1500*time.Microsecond)))
	next, ok, err := c.NextDue(ctx, "s")
	if err != nil || !ok || !next.Equal(at(time.Millisecond)) {
		t.Fatalf("NextDue = %v, %v, %v; want fire time truncated to %v", next, ok, err, at(time.Millisecond))
	}
	wantKeys(t, "at 1ms", claim(t, c, "s", at(time.Millisecond), time.Second, 1), "k")
}

func testRemember(t *testing.T, c *coord.Coordinator) {
	ctx := ctxT(t)
	remember := func(key string, ttl time.Duration, want bool) {
		t.Helper()
		first, err := c.Remember(ctx, key, ttl)
		if err != nil || first != want {
			t.Fatalf("Remember(%s) = %v, %v; want %v", key, first, err, want)
		}
	}
	remember("MSH-10:1001", time.Minute, true)
	remember("MSH-10:1001", time.Minute, false)
	remember("MSH-10:1002", time.Minute, true)
	must(t, c.Forget(ctx, "MSH-10:1001"))
	must(t, c.Forget(ctx, "never-remembered"))
	remember("MSH-10:1001", time.Minute, true)

	remember("short", 30*time.Millisecond, true)
	remember("short", 30*time.Millisecond, false)
	time.Sleep(60 * time.Millisecond)
	remember("short", 30*time.Millisecond, true)
	remember("MSH-10:1002", time.Minute, false)
}

func tryLock(t *testing.T, c *coord.Coordinator, key string, ttl time.Duration, want bool) *coord.Lock {
	t.Helper()
	l, ok, err := c.TryLock(ctxT(t), key, ttl)
	if err != nil || ok != want {
		t.Fatalf("TryLock(%s) = %v, %v; want %v", key, ok, err, want)
	}
	if ok && l.Key() != key {
		t.Fatalf("Lock.Key() = %q, want %q", l.Key(), key)
	}
	return l
}

func testLockExclusive(t *testing.T, c *coord.Coordinator) {
	ctx := ctxT(t)
	a := tryLock(t, c, "study/1.2.3", time.Minute, true)
	tryLock(t, c, "study/1.2.3", time.Minute, false)
	b := tryLock(t, c, "study/4.5.6", time.Minute, true)
	must(t, a.Unlock(ctx))
	if err := a.Unlock(ctx); !errors.Is(err, coord.ErrLockLost) {
		t.Fatalf("second Unlock = %v, want ErrLockLost", err)
	}
	tryLock(t, c, "study/1.2.3", time.Minute, true)
	must(t, b.Unlock(ctx))
}

func testLockRefresh(t *testing.T, c *coord.Coordinator) {
	ctx := ctxT(t)
	l := tryLock(t, c, "k", 40*time.Millisecond, true)
	// Refreshing keeps the lock past its first ttl.
	for range 4 {
		time.Sleep(20 * time.Millisecond)
		must(t, l.Refresh(ctx, 40*time.Millisecond))
	}
	tryLock(t, c, "k", time.Minute, false)
	must(t, l.Unlock(ctx))
	if err := l.Refresh(ctx, time.Minute); !errors.Is(err, coord.ErrLockLost) {
		t.Fatalf("Refresh after Unlock = %v, want ErrLockLost", err)
	}
}

func testLockExpiry(t *testing.T, c *coord.Coordinator) {
	ctx := ctxT(t)
	stale := tryLock(t, c, "k", 30*time.Millisecond, true)
	time.Sleep(60 * time.Millisecond)
	if err := stale.Refresh(ctx, time.Minute); !errors.Is(err, coord.ErrLockLost) {
		t.Fatalf("Refresh of expired lock = %v, want ErrLockLost", err)
	}
	fresh := tryLock(t, c, "k", time.Minute, true)
	// The stale holder can neither release nor extend the new holder's lock.
	if err := stale.Unlock(ctx); !errors.Is(err, coord.ErrLockLost) {
		t.Fatalf("stale Unlock = %v, want ErrLockLost", err)
	}
	if err := stale.Refresh(ctx, time.Minute); !errors.Is(err, coord.ErrLockLost) {
		t.Fatalf("stale Refresh = %v, want ErrLockLost", err)
	}
	tryLock(t, c, "k", time.Minute, false)
	must(t, fresh.Unlock(ctx))
}

func testLockBlocking(t *testing.T, c *coord.Coordinator) {
	ctx := ctxT(t)
	held := tryLock(t, c, "k", 50*time.Millisecond, true)
	_ = held // never unlocked: the waiter gets the lock once it expires
	start := time.Now()
	l, err := c.Lock(ctx, "k", time.Minute)
	if err != nil {
		t.Fatalf("Lock after expiry: %v", err)
	}
	if waited := time.Since(start); waited < 30*time.Millisecond {
		t.Fatalf("Lock returned after %v while the key was held for 50ms", waited)
	}
	short, cancel := context.WithTimeout(ctx, 40*time.Millisecond)
	defer cancel()
	if _, err := c.Lock(short, "k", time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock on held key = %v, want context.DeadlineExceeded", err)
	}
	must(t, l.Unlock(ctx))
}

func testLockMutualExclusion(t *testing.T, c *coord.Coordinator) {
	ctx := ctxT(t)
	const workers, rounds = 8, 10
	var (
		inside, maxInside, total atomic.Int32
		wg                       sync.WaitGroup
		errs                     = make(chan error, workers)
	)
	for range workers {
		wg.Go(func() {
			for range rounds {
				l, err := c.Lock(ctx, "shared", 5*time.Second)
				if err != nil {
					errs <- err
					return
				}
				n := inside.Add(1)
				if n > maxInside.Load() {
					maxInside.Store(n)
				}
				total.Add(1)
				time.Sleep(time.Millisecond)
				inside.Add(-1)
				if err := l.Unlock(ctx); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if m := maxInside.Load(); m != 1 {
		t.Fatalf("%d holders inside the lock at once", m)
	}
	if n := total.Load(); n != workers*rounds {
		t.Fatalf("%d critical sections ran, want %d", n, workers*rounds)
	}
}

func testInvalidArguments(t *testing.T, c *coord.Coordinator) {
	ctx := ctxT(t)
	tests := []struct {
		name string
		call func() error
	}{
		{"arm empty set", func() error { return c.ArmTimer(ctx, "", "k", base) }},
		{"arm empty key", func() error { return c.ArmTimer(ctx, "s", "", base) }},
		{"cancel empty key", func() error { return c.CancelTimer(ctx, "s", "") }},
		{"claim zero lease", func() error { _, err := c.ClaimDue(ctx, "s", base, 0, 1); return err }},
		{"claim sub-ms lease", func() error { _, err := c.ClaimDue(ctx, "s", base, time.Microsecond, 1); return err }},
		{"next due empty set", func() error { _, _, err := c.NextDue(ctx, ""); return err }},
		{"remember empty key", func() error { _, err := c.Remember(ctx, "", time.Second); return err }},
		{"remember zero ttl", func() error { _, err := c.Remember(ctx, "k", 0); return err }},
		{"remember negative ttl", func() error { _, err := c.Remember(ctx, "k", -time.Second); return err }},
		{"forget empty key", func() error { return c.Forget(ctx, "") }},
		{"lock empty key", func() error { _, _, err := c.TryLock(ctx, "", time.Second); return err }},
		{"lock zero ttl", func() error { _, _, err := c.TryLock(ctx, "k", 0); return err }},
	}
	for _, tc := range tests {
		if err := tc.call(); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tc.name, err)
		}
	}
	l := tryLock(t, c, "k", time.Second, true)
	if err := l.Refresh(ctx, 0); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("refresh zero ttl: err = %v, want ErrInvalid", err)
	}
	must(t, l.Unlock(ctx))
}

func testClosed(t *testing.T, c *coord.Coordinator) {
	ctx := ctxT(t)
	must(t, c.Ping(ctx))
	l := tryLock(t, c, "k", time.Minute, true)
	must(t, c.Close())
	must(t, c.Close()) // closing twice is harmless
	calls := map[string]func() error{
		"ping":   func() error { return c.Ping(ctx) },
		"arm":    func() error { return c.ArmTimer(ctx, "s", "k", base) },
		"claim":  func() error { _, err := c.ClaimDue(ctx, "s", base, time.Second, 1); return err },
		"unlock": func() error { return l.Unlock(ctx) },
		"remember": func() error {
			_, err := c.Remember(ctx, "k", time.Second)
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, coord.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
}
