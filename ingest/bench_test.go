package ingest_test

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
	"github.com/imaginghub/imaginghub/ingest"
)

// BenchmarkCStore stores 512x512 16-bit CT instances into a hub over 1
// and 4 associations with the hub's own SCU, end to end: network, file,
// header, catalog, outbox.
func BenchmarkCStore(b *testing.B) {
	for _, assocs := range []int{1, 4} {
		b.Run(map[int]string{1: "assoc=1", 4: "assoc=4"}[assocs], func(b *testing.B) {
			var in *ingest.Ingest
			hubtest.Start(b, hubtest.Config(b), func(rt *hub.Runtime) {
				in, _ = ingest.New(rt)
				rt.Server.Add(in)
			})
			study := dicomfile.NewUID()
			var buf bytes.Buffer
			synth.CT(&buf, synth.Options{Seed: 1, StudyInstanceUID: study})
			meta, _ := dicomfile.ReadFileMeta(bytes.NewReader(buf.Bytes()))
			data := buf.Bytes()[meta.DataSetOffset():]
			// Every instance needs its own SOP Instance UID: patch it in
			// place (same length) in a private copy per store.
			old := []byte(meta.MediaStorageSOPInstanceUID)
			at := bytes.Index(data, old)
			ctx := context.Background()
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			var wg sync.WaitGroup
			var mu sync.Mutex
			next := 0
			for range assocs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					as, err := dicomnet.Dial(ctx, in.Addr(), dicomnet.DialOptions{CalledAETitle: "IMAGINGHUB", PresentationContexts: ctContexts()})
					if err != nil {
						b.Error(err)
						return
					}
					defer as.Release(ctx)
					mine := append([]byte(nil), data...)
					for {
						mu.Lock()
						i := next
						next++
						mu.Unlock()
						if i >= b.N {
							return
						}
						uid := []byte(synth.DerivedUID(int64(i), "bench"))
						uid = append(uid, bytes.Repeat([]byte("0"), max(0, len(old)-len(uid)))...)[:len(old)]
						copy(mine[at:], uid)
						st, err := as.Store(ctx, meta.MediaStorageSOPClassUID, string(uid), meta.TransferSyntaxUID, bytes.NewReader(mine), nil)
						if err != nil || st != dicomnet.StatusSuccess {
							b.Errorf("store: 0x%04X %v", st, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "inst/s")
		})
	}
}
