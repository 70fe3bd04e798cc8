package router

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/imaginghub/imaginghub/hub/hubtest"
)

// TestLedgerGroupedLookups looks many deliveries up at once, across
// destinations and kinds, and checks each answer: an instance counts as
// delivered only for its destination and its stored file.
func TestLedgerGroupedLookups(t *testing.T) {
	rt := hubtest.Start(t, hubtest.Config(t), nil)
	l := newLedger(rt.Catalog)
	defer l.close()
	ctx := context.Background()

	type query struct {
		dest string
		job  Job
		want bool
	}
	var qs []query
	for i := range 300 { // more than maxGroup for one destination
		sop := fmt.Sprintf("1.2.3.%d", i)
		j := Job{SOPInstanceUID: sop, BlobKey: "blob-" + sop}
		delivered := i%3 == 0
		if delivered {
			if err := l.record(ctx, "a", &j); err != nil {
				t.Fatal(err)
			}
		}
		qs = append(qs,
			query{"a", j, delivered},
			query{"b", j, false}, // another destination
			query{"a", Job{SOPInstanceUID: sop, BlobKey: "replaced-" + sop}, false}, // another stored file
		)
	}
	hook := Job{EventID: "ev-1", EventType: "ih.dicom.study.stable"}
	if err := l.record(ctx, "hook", &hook); err != nil {
		t.Fatal(err)
	}
	qs = append(qs, query{"hook", hook, true}, query{"hook", Job{EventID: "ev-2"}, false}, query{"a", hook, false})

	got := make([]bool, len(qs))
	errs := make([]error, len(qs))
	var wg sync.WaitGroup
	for i := range qs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = l.delivered(ctx, qs[i].dest, &qs[i].job)
		}()
	}
	wg.Wait()
	for i, q := range qs {
		if errs[i] != nil {
			t.Fatalf("%s %+v: %v", q.dest, q.job, errs[i])
		}
		if got[i] != q.want {
			t.Errorf("%s %+v: delivered %v, want %v", q.dest, q.job, got[i], q.want)
		}
	}
}
