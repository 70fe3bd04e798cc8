package coordtest

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// RunBenchmarks measures the hot operations of a driver: ArmTimer (one call
// per stored instance on ingest), Remember (one per received message) and a
// claim+complete cycle. Each reports ops/s; parallel variants use
// GOMAXPROCS goroutines, the way several ingest associations share one
// Coordinator.
func RunBenchmarks(b *testing.B, newCoordinator NewFunc) {
	b.Run("ArmTimer", func(b *testing.B) {
		c := newCoordinator(b)
		ctx := b.Context()
		i := 0
		for b.Loop() {
			// 1,000 studies re-armed over and over, like a busy archive.
			if err := c.ArmTimer(ctx, "stable", strconv.Itoa(i%1000), base.Add(time.Duration(i)*time.Millisecond)); err != nil {
				b.Fatal(err)
			}
			i++
		}
		opsPerSec(b)
	})
	b.Run("ArmTimerParallel", func(b *testing.B) {
		c := newCoordinator(b)
		ctx := b.Context()
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				if err := c.ArmTimer(ctx, "stable", strconv.FormatInt(i%1000, 10), base.Add(time.Duration(i)*time.Millisecond)); err != nil {
					b.Error(err)
					return
				}
			}
		})
		opsPerSec(b)
	})
	b.Run("Remember", func(b *testing.B) {
		c := newCoordinator(b)
		ctx := b.Context()
		i := 0
		for b.Loop() {
			if _, err := c.Remember(ctx, "msg:"+strconv.Itoa(i), time.Minute); err != nil {
				b.Fatal(err)
			}
			i++
		}
		opsPerSec(b)
	})
	b.Run("RememberParallel", func(b *testing.B) {
		c := newCoordinator(b)
		ctx := b.Context()
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Remember(ctx, fmt.Sprintf("msg:%d", n.Add(1)), time.Minute); err != nil {
					b.Error(err)
					return
				}
			}
		})
		opsPerSec(b)
	})
	b.Run("ClaimComplete", func(b *testing.B) {
		c := newCoordinator(b)
		ctx := b.Context()
		i := 0
		for b.Loop() {
			key := strconv.Itoa(i)
			if err := c.ArmTimer(ctx, "stable", key, base); err != nil {
				b.Fatal(err)
			}
			got, err := c.ClaimDue(ctx, "stable", base, time.Minute, 1)
			if err != nil || len(got) != 1 {
				b.Fatalf("claim: %v, %v", got, err)
			}
			if ok, err := c.CompleteTimer(ctx, "stable", got[0]); err != nil || !ok {
				b.Fatalf("complete: %v, %v", ok, err)
			}
			i++
		}
		opsPerSec(b)
	})
}

func opsPerSec(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "ops/s")
	}
}
