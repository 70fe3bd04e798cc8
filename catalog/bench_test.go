package catalog_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/internal/testenv"
)

// backends opens a fresh catalog per backend for a benchmark; PostgreSQL
// is skipped unless IMAGINGHUB_TEST_DATABASE_URL is set.
var backends = []struct {
	name string
	open func(b *testing.B) *catalog.Catalog
}{
	{"sqlite", func(b *testing.B) *catalog.Catalog {
		return benchOpen(b, "", catalog.Options{DataDir: b.TempDir(), Logger: testLogger(b)})
	}},
	{"postgres", func(b *testing.B) *catalog.Catalog {
		return benchOpen(b, testenv.PostgresURL(b), catalog.Options{MaxConns: 16, Logger: testLogger(b)})
	}},
}

func benchOpen(b *testing.B, u string, o catalog.Options) *catalog.Catalog {
	c, err := catalog.Open(context.Background(), u, o)
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func benchRecord(study, series, n int64) catalog.InstanceRecord {
	return catalog.InstanceRecord{
		Patient: catalog.Patient{PatientID: fmt.Sprintf("BENCH-%d", study), PatientName: "BENCH^PATIENT"},
		Study:   catalog.Study{StudyInstanceUID: fmt.Sprintf("2.25.777.%d", study), StudyDate: "20240101"},
		Series:  catalog.Series{SeriesInstanceUID: fmt.Sprintf("2.25.777.%d.%d", study, series), Modality: "CT"},
		Instance: catalog.Instance{
			SOPInstanceUID: fmt.Sprintf("2.25.777.%d.%d.%d", study, series, n),
			SOPClassUID:    "1.2.840.10008.5.1.4.1.1.2",
			BlobKey:        fmt.Sprintf("bench/%d", n), SizeBytes: 524288,
		},
	}
}

// BenchmarkStoreInstance measures committed StoreInstance calls per
// second with parallel writers: "samestudy" is one scanner sending one
// study over several associations (serialized on the study row),
// "manystudies" several scanners at once.
func BenchmarkStoreInstance(b *testing.B) {
	for _, be := range backends {
		for _, shape := range []string{"samestudy", "manystudies"} {
			b.Run(be.name+"/"+shape, func(b *testing.B) {
				c := be.open(b)
				var seq atomic.Int64
				b.SetParallelism(4)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					ctx := context.Background()
					for pb.Next() {
						n := seq.Add(1)
						study := int64(1)
						if shape == "manystudies" {
							study = n % 64
						}
						ev := catalog.OutboxMessage{EventID: fmt.Sprint(n), Subject: "ih.dicom.instance.stored", Payload: []byte("{}")}
						if _, err := c.StoreInstance(ctx, benchRecord(study, n%8, n), catalog.KeepFirst, ev); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "instances/s")
			})
		}
	}
}

// BenchmarkStoreInstanceJournaled measures the rows' side of an instance
// stored through the intake journal (lazy commits, the hub's default) by
// one writer and by four at once (associations), all in one study: the
// catalog's own cost per instance, the disk not being waited for.
func BenchmarkStoreInstanceJournaled(b *testing.B) {
	for _, be := range backends {
		for _, writers := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/writers=%d", be.name, writers), func(b *testing.B) {
				c := be.open(b)
				var seq atomic.Int64
				b.ResetTimer()
				var wg sync.WaitGroup
				for range writers {
					wg.Go(func() {
						ctx := context.Background()
						for n := seq.Add(1); n <= int64(b.N); n = seq.Add(1) {
							ev := catalog.OutboxMessage{EventID: fmt.Sprint(n), Subject: "ih.dicom.instance.stored", Payload: []byte("{}")}
							if _, err := c.StoreInstanceJournaled(ctx, benchRecord(1, n%8, n), catalog.KeepFirst, nil, ev); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "instances/s")
			})
		}
	}
}

// BenchmarkOutboxRelay measures a relay's catalog side: PendingOutbox of
// 100 rows then MarkOutboxSent of them, in rows per second.
func BenchmarkOutboxRelay(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			c := be.open(b)
			ctx := context.Background()
			const batch = 100
			b.StopTimer()
			// Fill the outbox with b.N rows, in transactions of 500.
			for done := 0; done < b.N; {
				err := c.InTx(ctx, func(tx *catalog.Tx) error {
					for i := 0; i < 500 && done+i < b.N; i++ {
						tx.AppendOutbox(catalog.OutboxMessage{EventID: fmt.Sprint(done + i), Subject: "ih.bench", Payload: make([]byte, 512)})
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				done += 500
			}
			b.StartTimer()
			sent := 0
			for sent < b.N {
				msgs, err := c.PendingOutbox(ctx, batch)
				if err != nil {
					b.Fatal(err)
				}
				if len(msgs) == 0 {
					b.Fatalf("outbox empty after %d of %d", sent, b.N)
				}
				ids := make([]int64, len(msgs))
				for i, m := range msgs {
					ids[i] = m.ID
				}
				if err := c.MarkOutboxSent(ctx, ids...); err != nil {
					b.Fatal(err)
				}
				sent += len(msgs)
			}
			b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
