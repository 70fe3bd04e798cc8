package workflow_test

import (
	"context"
	"fmt"
	"github.com/imaginghub/imaginghub/internal/testenv"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/dicomjson"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hl7"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/worklist"
)

// arrivals records when a peer first received a message whose field loc
// has a value.
type arrivals struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (a *arrivals) wait(tb testing.TB, key string) time.Time {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		a.mu.Lock()
		t, ok := a.seen[key]
		a.mu.Unlock()
		if ok {
			return t
		}
		if time.Now().After(deadline) {
			tb.Fatalf("nothing arrived for %s", key)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// timedPeer is a test PMS or RIS that notes the arrival time of each
// message by the value at loc.
func timedPeer(tb testing.TB, loc string) (*peer, *arrivals) {
	p := startPeer(tb)
	a := &arrivals{seen: map[string]time.Time{}}
	inner := p.srv.Handler
	p.srv.Handler = hl7.HandlerFunc(func(ctx context.Context, m *hl7.Message) []byte {
		now := time.Now()
		a.mu.Lock()
		if _, ok := a.seen[m.Get(loc)]; !ok {
			a.seen[m.Get(loc)] = now
		}
		a.mu.Unlock()
		return inner.ServeHL7(ctx, m)
	})
	return p, a
}

func report(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	ms := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.90), "p90-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
	b.ReportMetric(ms(1), "max-ms")
	b.ReportMetric(0, "ns/op")
}

func benchHub(b *testing.B, ris, pms *peer) (*hub.Runtime, *parts) {
	cfg := testConfig(b, ris, pms)
	cfg.Study.StableAfter = 100 * time.Millisecond
	return startHub(b, cfg)
}

// BenchmarkMPPSCompletedToDFT measures the time from the N-SET that
// completes a Modality Performed Procedure Step to the DFT^P03 of its
// charge at the PMS (acknowledged with AA as it arrives). Target: p99
// under 100 ms.
func BenchmarkMPPSCompletedToDFT(b *testing.B) {
	pms, arrived := timedPeer(b, "FT1-23")
	ris := startPeer(b)
	_, p := benchHub(b, ris, pms)
	as := dialDICOM(b, p.in.Addr())
	defer as.Release(context.Background())
	ctx := context.Background()
	one := func(n int) time.Duration {
		s := newScenario(n)
		sendHL7(b, p.hl7.Addr(), s.orm())
		var items []dicomjson.DataSet
		testenv.WaitFor(b, "worklist item", 20*time.Second, func() bool {
			got, err := worklist.Find(ctx, as, worklist.Query{AccessionNumber: s.accession}.DataSet())
			items = got
			return err == nil && len(got) == 1
		})
		uid := synth.DerivedUID(int64(n), "bench-mpps")
		if _, err := worklist.CreateMPPS(ctx, as, uid, worklist.MPPSInProgress(items[0], "CT01_AE", fmt.Sprint("PPS-", n), s.today, "090000")); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := worklist.SetMPPS(ctx, as, uid, worklist.MPPSFinal(worklist.PPSCompleted, s.today, "091000")); err != nil {
			b.Fatal(err)
		}
		return arrived.wait(b, s.filler).Sub(start)
	}
	one(50000) // the sender's connection to the PMS is opened here
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		lat = append(lat, one(50001+i))
	}
	b.StopTimer()
	report(b, lat)
}

// BenchmarkStableToReconciled measures the time from ih.dicom.study.stable
// to ih.study.reconciled, both seen by one observer on the event stream,
// for studies that arrive without MPPS and are matched by their Study
// Instance UID. Target: p99 under 50 ms.
func BenchmarkStableToReconciled(b *testing.B) {
	rt, p := benchHub(b, nil, nil)
	as := dialDICOM(b, p.in.Addr())
	defer as.Release(context.Background())
	var mu sync.Mutex
	seen := map[string]time.Time{}
	for _, typ := range []string{events.TypeStudyStable, events.TypeStudyReconciled} {
		c, err := rt.Bus.Consume(context.Background(), events.ConsumerSpec{Name: fmt.Sprintf("bench-%d", time.Now().UnixNano()),
			FilterSubjects: []string{typ}, Concurrency: 4},
			func(_ context.Context, e events.Event, _ events.Delivery) error {
				now := time.Now()
				mu.Lock()
				if _, ok := seen[e.Type+e.Subject]; !ok {
					seen[e.Type+e.Subject] = now
				}
				mu.Unlock()
				return nil
			})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.Stop)
	}
	at := func(key string) time.Time {
		var t time.Time
		testenv.WaitFor(b, key, 20*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			var ok bool
			t, ok = seen[key]
			return ok
		})
		return t
	}
	one := func(n int) time.Duration {
		s := newScenario(n)
		sendHL7(b, p.hl7.Addr(), s.orm())
		orderID(b, rt.Catalog, s.placer)
		storeStudy(b, as, s, "WRONG^NAME", 1)
		return at(events.TypeStudyReconciled + s.studyUID).Sub(at(events.TypeStudyStable + s.studyUID))
	}
	one(60000)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		lat = append(lat, one(60001+i))
	}
	b.StopTimer()
	report(b, lat)
}
