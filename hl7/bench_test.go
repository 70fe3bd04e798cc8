package hl7

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// trivialHandler answers AA without looking at the message.
var trivialHandler = HandlerFunc(func(ctx context.Context, m *Message) []byte {
	b, _ := NewACK(m, AA, nil)
	return b
})

// BenchmarkRoundTrip measures messages per second, send to parsed ACK, on
// one connection and on 8 connections in parallel.
func BenchmarkRoundTrip(b *testing.B) {
	for _, conns := range []int{1, 8} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			addr := startServer(b, &Server{Handler: trivialHandler})
			msg := adt("BENCH1", "PAT-1")
			var next atomic.Int64
			clients := make([]*Client, conns)
			for i := range clients {
				clients[i] = &Client{Addr: addr}
				defer clients[i].Close()
			}
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			if conns == 1 {
				for b.Loop() {
					if _, err := clients[0].Send(context.Background(), msg); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				// Enough goroutines that each of the 8 clients stays busy.
				b.SetParallelism((conns + 1) / 2)
				b.RunParallel(func(pb *testing.PB) {
					cl := clients[int(next.Add(1)-1)%conns]
					for pb.Next() {
						if _, err := cl.Send(context.Background(), msg); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func BenchmarkParse(b *testing.B) {
	raw := mustRead(b, "adt_a01_v251_utf8.hl7")
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		m, err := Parse(raw)
		if err != nil {
			b.Fatal(err)
		}
		_ = m.Get("PID-5.2")
	}
}

func BenchmarkNewACK(b *testing.B) {
	m, err := Parse(mustRead(b, "adt_a01_v251_utf8.hl7"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := NewACK(m, AA, nil); err != nil {
			b.Fatal(err)
		}
	}
}
