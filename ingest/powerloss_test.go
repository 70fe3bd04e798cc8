package ingest_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/hub/hubtest"
	"github.com/imaginghub/imaginghub/ingest"
)

// A power loss (or an OS crash) loses what only the page cache held: the
// files written and the catalog commits made since the intake journal's
// last checkpoint. Emulated here: a hub stores instances and shuts down
// (its last checkpoint); the catalog's files are saved as they are then.
// A second hub, whose checkpoints are an hour apart, acknowledges more
// instances and is killed; then the catalog is put back as saved and the
// files written since are deleted, while the journal keeps what its
// durable writes put on the device. After a restart every acknowledged
// instance is indexed once, with its file, and the archive is consistent.
func TestPowerLossReplaysJournal(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped with -short")
	}
	t.Run("journal on", func(t *testing.T) { testPowerLoss(t, false) })
	// Restarted with the journal turned off, the hub still files what the
	// journal holds, and removes it.
	t.Run("journal turned off at restart", func(t *testing.T) { testPowerLoss(t, true) })
}

func testPowerLoss(t *testing.T, offAtRestart bool) {
	cfg := hubtest.Config(t)
	cfg.Database.URL = "" // the emulation rolls the SQLite catalog's files back
	// Room for every record: no checkpoint may come early.
	cfg.Data.IntakeJournalBytes = 64 << 20
	ctx := context.Background()
	study := dicomfile.NewUID()
	send := func(addr string, from, to int) []string {
		t.Helper()
		as, err := dicomnet.Dial(ctx, addr, dicomnet.DialOptions{CalledAETitle: "IMAGINGHUB", PresentationContexts: ctContexts()})
		if err != nil {
			t.Fatal(err)
		}
		var sops []string
		for i := from; i < to; i++ {
			sop, st, err := storeCT(ctx, as, study, i)
			if err != nil || st != dicomnet.StatusSuccess {
				t.Fatalf("instance %d: status %#04x, %v", i, st, err)
			}
			sops = append(sops, sop)
		}
		as.Release(ctx)
		return sops
	}

	rt, in := startHub(t, cfg)
	acked := send(in.Addr(), 0, 20)
	if err := rt.Server.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	saved := t.TempDir()
	copyCatalog(t, cfg.Data.Dir, saved)
	before := blobFiles(t, cfg.Data.Dir)

	cmd, addr := startChild(t, cfg, checkpointEnv+"=1h")
	acked = append(acked, send(addr, 20, 50)...)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	// The power loss.
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(cfg.Data.Dir, catalog.DefaultFileName+suffix))
	}
	copyCatalog(t, saved, cfg.Data.Dir)
	lost := 0
	for p := range blobFiles(t, cfg.Data.Dir) {
		if !before[p] {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			lost++
		}
	}
	if lost != 30 {
		t.Fatalf("%d files written after the checkpoint, want 30", lost)
	}
	if st, err := openCatalogStudy(ctx, t, cfg.Data.Dir, study); err != nil || st.Study.NumberOfStudyRelatedInstances != 20 {
		t.Fatalf("rolled-back catalog: %+v, %v", st, err)
	}

	if offAtRestart {
		cfg.Data.IntakeJournalBytes = 0
	}
	rt, _ = startHub(t, cfg)
	requireStored(t, rt, acked)
	if _, err := os.Stat(filepath.Join(cfg.Data.Dir, "intake.journal")); offAtRestart != errors.Is(err, os.ErrNotExist) {
		t.Errorf("intake.journal after a restart with the journal off=%v: %v", offAtRestart, err)
	}
	st, err := rt.Catalog.GetStudy(ctx, study)
	if err != nil || st.Study.NumberOfStudyRelatedInstances != 50 || st.Study.NumberOfStudyRelatedSeries != 1 {
		t.Fatalf("study after replay: %+v, %v", st, err)
	}
	r, err := ingest.CheckArchive(ctx, rt.Catalog, rt.Blobs, ingest.CheckOptions{})
	if err != nil || !r.Consistent() || r.Rows != 50 || r.Blobs != 50 {
		t.Fatalf("archive after replay: %+v, %v", r, err)
	}
}

// copyCatalog copies the SQLite catalog's files from one data directory to
// another.
func copyCatalog(t *testing.T, from, to string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal"} {
		src, err := os.Open(filepath.Join(from, catalog.DefaultFileName+suffix))
		if os.IsNotExist(err) && suffix != "" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(to, catalog.DefaultFileName+suffix))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		dst.Close()
	}
}

// blobFiles lists the archive's files.
func blobFiles(t *testing.T, dataDir string) map[string]bool {
	t.Helper()
	files := map[string]bool{}
	root := filepath.Join(dataDir, "blobs", "objects")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files[p] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// openCatalogStudy reads a study from the catalog in dataDir.
func openCatalogStudy(ctx context.Context, t *testing.T, dataDir, study string) (catalog.StudyRecord, error) {
	c, err := catalog.Open(ctx, "", catalog.Options{DataDir: dataDir})
	if err != nil {
		return catalog.StudyRecord{}, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.GetStudy(ctx, study)
}
