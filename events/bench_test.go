package events_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/internal/testenv"
)

func benchBus(b *testing.B) *events.Bus {
	b.Helper()
	srv, err := events.StartEmbedded(events.EmbeddedOptions{StoreDir: b.TempDir(), InProcessOnly: true, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	tok := testenv.Unique()
	ctx := context.Background()
	bus, err := events.Connect(ctx, "", events.Options{InProcessServer: srv, Logger: quiet,
		SubjectPrefix: "b" + tok + ".", StreamPrefix: "B" + strings.ToUpper(tok) + "_"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(bus.Close)
	if err := bus.EnsureStreams(ctx); err != nil {
		b.Fatal(err)
	}
	return bus
}

func benchEvents(b *testing.B, n int) []events.Event {
	evs := make([]events.Event, n)
	for i := range evs {
		e, err := events.New("/imaginghub/bench", events.TypeInstanceStored, "1.2.826.0.1.3680043.8.498.1",
			map[string]string{"SOPInstanceUID": fmt.Sprintf("1.2.826.0.1.3680043.8.498.%d", i)}, fmt.Sprint(i))
		if err != nil {
			b.Fatal(err)
		}
		evs[i] = e
	}
	return evs
}

// BenchmarkPublish measures one synchronous, acknowledged publish at a time
// to embedded JetStream: the baseline PublishBatch is compared against.
func BenchmarkPublish(b *testing.B) {
	bus := benchBus(b)
	evs := benchEvents(b, b.N)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if _, err := bus.Publish(ctx, evs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPublishBatch measures PublishBatch (async publish, all acks
// awaited) in batches of the size an outbox relay would read.
func BenchmarkPublishBatch(b *testing.B) {
	for _, size := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			bus := benchBus(b)
			evs := benchEvents(b, b.N)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i += size {
				if err := bus.PublishBatch(ctx, evs[i:min(i+size, b.N)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
