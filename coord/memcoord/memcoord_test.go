package memcoord

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"
)

// TestExpiredKeysSwept: dedupe keys that lapsed are dropped by the sweep, so
// a long-running hub that remembers every message holds only live keys.
func TestExpiredKeysSwept(t *testing.T) {
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	d := New(Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	tests := []struct {
		name    string
		add     int
		advance time.Duration
		maxLive int
	}{
		{"first batch", 10_000, 2 * time.Second, 10_000},
		{"second batch after the first expired", 10_000, 2 * time.Second, 2 * 10_000},
		{"third batch", 50_000, 0, 2 * 50_000},
	}
	for i, tc := range tests {
		for j := range tc.add {
			first, err := d.Remember(ctx, fmt.Sprintf("b%d-%d", i, j), time.Second)
			if err != nil || !first {
				t.Fatalf("%s: Remember = %v, %v", tc.name, first, err)
			}
		}
		if n := len(d.keys.m); n > tc.maxLive {
			t.Fatalf("%s: %d keys held, want at most %d", tc.name, n, tc.maxLive)
		}
		now = now.Add(tc.advance)
	}
	// Keys of the first two batches are long expired and must be gone.
	for k := range d.keys.m {
		if k[:2] != "b2" {
			t.Fatalf("expired key %q still held", k)
		}
	}
}

// TestLockExpiryUsesClock: lock expiry follows Options.Now.
func TestLockExpiryUsesClock(t *testing.T) {
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	d := New(Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	steps := []struct {
		token   string
		advance time.Duration
		want    bool
	}{
		{"a", 0, true},
		{"b", 9 * time.Second, false},
		{"b", time.Second, true}, // a's 10 s have passed
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		ok, err := d.TryLock(ctx, "k", s.token, 10*time.Second)
		if err != nil || ok != s.want {
			t.Fatalf("step %d: TryLock(%s) = %v, %v; want %v", i, s.token, ok, err, s.want)
		}
	}
	if err := d.RefreshLock(ctx, "k", "a", time.Second); err == nil {
		t.Fatal("expired holder refreshed the new holder's lock")
	}
}

// BenchmarkClaim100k: claiming and completing from a set of 100,000 armed
// timers stays logarithmic.
func BenchmarkClaim100k(b *testing.B) {
	ctx := context.Background()
	base := time.UnixMilli(1_770_000_000_000)
	d := New(Options{})
	for i := range 100_000 {
		d.ArmTimer(ctx, "s", strconv.Itoa(i), base.Add(time.Duration(i)*time.Millisecond))
	}
	i := 100_000
	for b.Loop() {
		got, err := d.ClaimDue(ctx, "s", base.Add(time.Hour), time.Minute, 1, "c")
		if err != nil || len(got) != 1 {
			b.Fatalf("claim: %v, %v", got, err)
		}
		if ok, _ := d.CompleteTimer(ctx, "s", got[0]); !ok {
			b.Fatal("complete failed")
		}
		// Keep the set at 100k.
		d.ArmTimer(ctx, "s", strconv.Itoa(i), base.Add(time.Duration(i)*time.Millisecond))
		i++
	}
}
