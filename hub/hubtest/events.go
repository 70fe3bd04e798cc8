package hubtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hub"
)

// Recorder collects the events a hub publishes on one subject filter, for
// tests to wait for and inspect.
type Recorder struct {
	mu  sync.Mutex
	evs []events.Event
}

// Record starts a durable consumer of filter (e.g. "ih.patient.>") on rt's
// bus that keeps every event; it stops when the test ends.
func Record(tb testing.TB, rt *hub.Runtime, filter string) *Recorder {
	tb.Helper()
	r := &Recorder{}
	c, err := rt.Bus.Consume(context.Background(), events.ConsumerSpec{
		Name:           fmt.Sprintf("test-%d", time.Now().UnixNano()),
		FilterSubjects: []string{filter},
		Concurrency:    1,
	}, func(_ context.Context, e events.Event, _ events.Delivery) error {
		r.mu.Lock()
		r.evs = append(r.evs, e)
		r.mu.Unlock()
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Stop)
	return r
}

// Wait returns the events recorded once there are at least n, failing the
// test after 60 s (CI runs many hubs at once against one NATS server).
func (r *Recorder) Wait(tb testing.TB, n int) []events.Event {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := r.Events()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			tb.Fatalf("got %d events, want %d", len(got), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Events returns the events recorded so far.
func (r *Recorder) Events() []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Event(nil), r.evs...)
}
