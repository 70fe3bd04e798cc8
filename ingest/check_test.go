package ingest_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
	"github.com/imaginghub/imaginghub/ingest"
)

// putFile commits a file under key as a crashed store would have left it,
// aged by age.
func putFile(t *testing.T, rt *hub.Runtime, key string, data []byte, age time.Duration) {
	t.Helper()
	ctx := context.Background()
	w, err := rt.Blobs.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Commit(ctx, key); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-age)
	if err := os.Chtimes(objectPath(rt, key), old, old); err != nil {
		t.Fatal(err)
	}
}

func objectPath(rt *hub.Runtime, key string) string {
	return filepath.Join(rt.Config.Data.Dir, "blobs", "objects", filepath.FromSlash(key))
}

// The archive check finds, both ways, what a crash or a hand edit leaves
// inconsistent, removes only old orphans of ingest's own, and finds a
// healthy archive consistent.
func TestCheckArchive(t *testing.T) {
	rt, in := startHub(t, hubtest.Config(t))
	ctx := context.Background()
	as := dialCT(t, in.Addr())
	study := dicomfile.NewUID()
	series := synth.DerivedUID(1, study)
	var sops []string
	for i := range 6 {
		sop, data := synthDataSet(t, synth.Options{Seed: int64(i), StudyInstanceUID: study, SeriesInstanceUID: series, InstanceNumber: i + 1, Rows: 64, Columns: 64})
		if st := storeOne(t, as, "1.2.840.10008.5.1.4.1.1.2", sop, dicomfile.ImplicitVRLittleEndian, data); st != dicomnet.StatusSuccess {
			t.Fatalf("store: 0x%04X", st)
		}
		sops = append(sops, sop)
	}
	as.Release(ctx)

	r, err := ingest.CheckArchive(ctx, rt.Catalog, rt.Blobs, ingest.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Consistent() || r.Rows != 6 || r.Blobs != 6 || r.Orphans != 0 {
		t.Fatalf("healthy archive: %+v", r)
	}

	// What a crash between a file's commit and its row's leaves: a file for
	// an instance the catalog does not know, and a second copy of a known
	// one (a duplicate cut short). One more such file is recent, as a store
	// in progress would have it; one file is not ingest's at all.
	stale := ingest.BlobKey(study, series, "1.2.826.0.1.3680043.10.1.999", time.Now().Add(-2*time.Hour))
	copyKey := ingest.BlobKey(study, series, sops[0], time.Now().Add(-2*time.Hour))
	recent := ingest.BlobKey(study, series, "1.2.826.0.1.3680043.10.1.1000", time.Now())
	putFile(t, rt, stale, []byte("stale"), 2*time.Hour)
	putFile(t, rt, copyKey, []byte("copy"), 2*time.Hour)
	putFile(t, rt, recent, []byte("recent"), 0)
	putFile(t, rt, "notes.txt", []byte("an operator's file"), 2*time.Hour)
	// And damage: one instance's file deleted, another's truncated.
	gone, err := rt.Catalog.GetInstance(ctx, sops[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(objectPath(rt, gone.BlobKey)); err != nil {
		t.Fatal(err)
	}
	cut, err := rt.Catalog.GetInstance(ctx, sops[2])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(objectPath(rt, cut.BlobKey), 100); err != nil {
		t.Fatal(err)
	}

	r, err = ingest.CheckArchive(ctx, rt.Catalog, rt.Blobs, ingest.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Consistent() || r.Rows != 6 || r.Blobs != 9 || r.Missing != 1 || r.Mismatched != 1 ||
		r.Orphans != 4 || r.Foreign != 1 || r.Recent != 1 || r.Removed != 0 {
		t.Fatalf("damaged archive: %+v", r)
	}
	if !slices.Equal(r.MissingKeys, []string{gone.BlobKey}) || !slices.Equal(r.MismatchedKeys, []string{cut.BlobKey}) {
		t.Errorf("missing %q mismatched %q", r.MissingKeys, r.MismatchedKeys)
	}
	slices.Sort(r.OrphanKeys)
	want := []string{stale, copyKey, recent, "notes.txt"}
	slices.Sort(want)
	if !slices.Equal(r.OrphanKeys, want) {
		t.Errorf("orphans %q, want %q", r.OrphanKeys, want)
	}

	// Removing: the two old orphans of ingest's go; the recent one and the
	// foreign file stay, as do the indexed files.
	r, err = ingest.CheckArchive(ctx, rt.Catalog, rt.Blobs, ingest.CheckOptions{RemoveOrphans: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Removed != 2 || r.Orphans != 4 {
		t.Fatalf("remove: %+v", r)
	}
	for key, kept := range map[string]bool{stale: false, copyKey: false, recent: true, "notes.txt": true} {
		if _, err := os.Stat(objectPath(rt, key)); (err == nil) != kept {
			t.Errorf("%s: kept %v, want %v", key, err == nil, kept)
		}
	}
	if _, err := rt.Blobs.Stat(ctx, cut.BlobKey); err != nil {
		t.Errorf("indexed file removed: %v", err)
	}
	r, err = ingest.CheckArchive(ctx, rt.Catalog, rt.Blobs, ingest.CheckOptions{RemoveOrphans: true, MinAge: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Orphans != 2 || r.Removed != 1 || r.Foreign != 1 || r.Blobs != 7 || r.Consistent() {
		t.Fatalf("second pass: %+v", r)
	}

	// A file of a store in progress (committed, its row not yet) does not
	// make the archive inconsistent; it is reported as recent.
	if err := rt.Blobs.Delete(ctx, "notes.txt"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(objectPath(rt, gone.BlobKey), make([]byte, gone.SizeBytes), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(objectPath(rt, cut.BlobKey), cut.SizeBytes); err != nil {
		t.Fatal(err)
	}
	putFile(t, rt, ingest.BlobKey(study, series, "1.2.826.0.1.3680043.10.1.1001", time.Now()), []byte("arriving"), 0)
	r, err = ingest.CheckArchive(ctx, rt.Catalog, rt.Blobs, ingest.CheckOptions{RemoveOrphans: true})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Consistent() || r.Recent != 1 || r.Removed != 0 || r.Missing != 0 || r.Mismatched != 0 {
		t.Fatalf("with a store in progress: %+v", r)
	}
}
