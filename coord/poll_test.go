package coord_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/coord"
	"github.com/imaginghub/imaginghub/internal/testenv"
)

// backends returns, per backend, a function opening "processes" that share
// one coordination state: the same in-process Coordinator, or separate
// Redis connections on one key prefix.
func backends(t *testing.T) map[string]func(t *testing.T) *coord.Coordinator {
	return map[string]func(t *testing.T) *coord.Coordinator{
		"memory": func() func(t *testing.T) *coord.Coordinator {
			var once sync.Once
			var c *coord.Coordinator
			return func(t *testing.T) *coord.Coordinator {
				once.Do(func() { c = newMemory(t) })
				return c
			}
		}(),
		"redis": func() func(t *testing.T) *coord.Coordinator {
			var url, prefix string
			return func(t *testing.T) *coord.Coordinator {
				if prefix == "" {
					url, prefix = testenv.RedisURL(t)
					t.Cleanup(func() {
						if err := deletePrefix(url, prefix); err != nil {
							t.Errorf("clean up %s: %v", prefix, err)
						}
					})
				}
				c, err := coord.Open(t.Context(), url, coord.Options{KeyPrefix: prefix})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
		}(),
	}
}

// firings counts fire calls per key.
type firings struct {
	mu sync.Mutex
	n  map[string]int
}

func (f *firings) add(k string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = make(map[string]int)
	}
	f.n[k]++
	return f.n[k]
}

func (f *firings) snapshot() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.n))
	for k, v := range f.n {
		out[k] = v
	}
	return out
}

// TestPollTimers runs three pollers, as three hub processes would, over
// timers that are left alone, re-armed while firing, or failing once.
func TestPollTimers(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			seed := open(t)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()

			const plain = 40
			start := time.Now()
			for i := range plain {
				if err := seed.ArmTimer(ctx, "stable", fmt.Sprintf("study-%02d", i), start.Add(time.Duration(i)*time.Millisecond)); err != nil {
					t.Fatal(err)
				}
			}
			for _, k := range []string{"rearmed", "failing"} {
				if err := seed.ArmTimer(ctx, "stable", k, start.Add(10*time.Millisecond)); err != nil {
					t.Fatal(err)
				}
			}

			var got firings
			fire := func(c *coord.Coordinator) func(context.Context, coord.Timer) error {
				return func(ctx context.Context, tm coord.Timer) error {
					n := got.add(tm.Key)
					switch {
					case tm.Key == "rearmed" && n == 1:
						// A late instance arrives while the study is being announced.
						return c.ArmTimer(ctx, "stable", tm.Key, time.Now().Add(20*time.Millisecond))
					case tm.Key == "failing" && n == 1:
						return errors.New("downstream refused")
					}
					return nil
				}
			}
			pollCtx, stop := context.WithCancel(ctx)
			var wg sync.WaitGroup
			errs := make(chan error, 3)
			for range 3 {
				c := open(t)
				wg.Go(func() {
					errs <- c.PollTimers(pollCtx, "stable", coord.PollOptions{
						Lease: 100 * time.Millisecond, Limit: 5, MaxWait: 10 * time.Millisecond,
						Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
					}, fire(c))
				})
			}
			// Wait until the set drains: every timer completed.
			for {
				_, armed, err := seed.NextDue(ctx, "stable")
				if err != nil {
					t.Fatal(err)
				}
				if !armed {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("timers still armed at deadline; fired %v", got.snapshot())
				}
				time.Sleep(5 * time.Millisecond)
			}
			stop()
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("PollTimers returned %v after cancel, want nil", err)
				}
			}
			counts := got.snapshot()
			if len(counts) != plain+2 {
				t.Errorf("%d keys fired, want %d", len(counts), plain+2)
			}
			for k, n := range counts {
				want := 1
				if k == "rearmed" || k == "failing" {
					want = 2
				}
				if n != want {
					t.Errorf("%s fired %d times, want %d", k, n, want)
				}
			}
		})
	}
}

func TestPollTimersClosed(t *testing.T) {
	c := newMemory(t)
	c.Close()
	err := c.PollTimers(t.Context(), "s", coord.PollOptions{}, func(context.Context, coord.Timer) error { return nil })
	if !errors.Is(err, coord.ErrClosed) {
		t.Fatalf("PollTimers on closed Coordinator = %v, want ErrClosed", err)
	}
}
