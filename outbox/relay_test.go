package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/internal/testenv"
	"github.com/imaginghub/imaginghub/outbox"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type setup struct {
	cat *catalog.Catalog
	bus *events.Bus
}

func newSetup(tb testing.TB, dbURL string) setup {
	tb.Helper()
	ctx := context.Background()
	cat, err := catalog.Open(ctx, dbURL, catalog.Options{DataDir: tb.TempDir(), Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cat.Close() })
	srv, err := events.StartEmbedded(events.EmbeddedOptions{StoreDir: tb.TempDir(), InProcessOnly: true, Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Shutdown)
	bus, err := events.Connect(ctx, "", events.Options{InProcessServer: srv, Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(bus.Close)
	if err := bus.EnsureStreams(ctx); err != nil {
		tb.Fatal(err)
	}
	return setup{cat, bus}
}

// commit writes n outbox rows, 100 per transaction.
func commit(tb testing.TB, cat *catalog.Catalog, tag string, n int) {
	tb.Helper()
	for i := 0; i < n; {
		err := cat.InTx(context.Background(), func(tx *catalog.Tx) error {
			for j := 0; j < 100 && i+j < n; j++ {
				e, err := events.New("imaginghub/test", events.TypeInstanceStored, "1.2.3", map[string]int{"i": i + j}, tag, fmt.Sprint(i+j))
				if err != nil {
					return err
				}
				b, _ := json.Marshal(e)
				tx.AppendOutbox(catalog.OutboxMessage{EventID: e.ID, Subject: e.Type, Payload: b})
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
		i += 100
	}
}

func backends(tb testing.TB) map[string]string {
	m := map[string]string{"sqlite": ""}
	if u := testenv.External(tb).DatabaseURL; u != "" {
		m["postgres"] = u
	}
	return m
}

func TestFlushPublishesEachOnce(t *testing.T) {
	for name, url := range backends(t) {
		t.Run(name, func(t *testing.T) {
			s := newSetup(t, url)
			commit(t, s.cat, "a", 1234)
			r := outbox.New(s.cat, s.bus, nil, quiet)
			if err := r.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			// A second relay over the same rows (as after a crash before
			// marking) must not add messages: re-commit the same events.
			commit(t, s.cat, "a", 1234)
			if err := r.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			st, _ := s.bus.JetStream().Stream(context.Background(), s.bus.StreamName(events.EventsStream))
			info, _ := st.Info(context.Background())
			if info.State.Msgs != 1234 {
				t.Fatalf("stream holds %d, want 1234", info.State.Msgs)
			}
			if n, _ := s.cat.OutboxBacklog(context.Background()); n != 0 {
				t.Fatalf("backlog %d", n)
			}
		})
	}
}

// BenchmarkRelay measures outbox→JetStream throughput: rows committed
// beforehand, then relayed and marked sent.
func BenchmarkRelay(b *testing.B) {
	for name, url := range backends(b) {
		b.Run(name, func(b *testing.B) {
			s := newSetup(b, url)
			r := outbox.New(s.cat, s.bus, nil, quiet)
			b.StopTimer()
			commit(b, s.cat, fmt.Sprint(time.Now().UnixNano()), b.N)
			b.StartTimer()
			start := time.Now()
			if err := r.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// claimCounter counts the relay passes that found rows.
type claimCounter struct {
	outbox.Source
	passes atomic.Int64
}

func (c *claimCounter) ClaimOutbox(ctx context.Context, lease time.Duration, limit int) ([]catalog.OutboxMessage, error) {
	rows, err := c.Source.ClaimOutbox(ctx, lease, limit)
	if len(rows) > 0 {
		c.passes.Add(1)
	}
	return rows, err
}

// TestRunGathersBursts: commits that come one after another, each with a
// kick, go out in a few batches, not one pass each; all are published.
func TestRunGathersBursts(t *testing.T) {
	s := newSetup(t, "")
	src := &claimCounter{Source: s.cat}
	r := outbox.New(src, s.bus, nil, quiet)
	r.Gather = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	const n = 20
	for i := range n {
		commit(t, s.cat, fmt.Sprint("burst-", i), 1)
		r.Kick()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := s.cat.OutboxBacklog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog still %d", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if p := src.passes.Load(); p >= n/2 {
		t.Errorf("%d relay passes for %d kicked commits; want them gathered into a few", p, n)
	}
}
