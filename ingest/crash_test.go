package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
	"github.com/imaginghub/imaginghub/ingest"
)

const (
	childEnv      = "IMAGINGHUB_TEST_INGEST_CHILD"
	checkpointEnv = "IMAGINGHUB_TEST_INGEST_CHECKPOINT_EVERY" // for the child's intake journal
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

// child runs a hub with ingest from the IMAGINGHUB_* environment until
// killed, printing its DICOM address.
func child() int {
	cfg, err := config.Load("", os.Environ())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	rt, err := hub.Open(ctx, cfg, hubtest.Logger())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if d, err := time.ParseDuration(os.Getenv(checkpointEnv)); err == nil {
		ingest.SetCheckpointEvery(d)
	}
	in, err := ingest.New(rt)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	rt.Server.Add(in)
	if err := rt.Server.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(in.Addr())
	select {}
}

// kill -9 in the middle of a 500-instance transfer: after a restart every
// instance that got Success is indexed and readable, no index row lacks
// its file, and start-up removes the temporary files of the transfer cut
// short.
func TestKill9DuringTransfer(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped with -short")
	}
	cfg := hubtest.Config(t)
	cmd, addr := startChild(t, cfg)

	// 500 instances over two associations; the child dies at a random
	// moment after the first successes.
	ctx := context.Background()
	study := dicomfile.NewUID()
	var mu sync.Mutex
	var ok []string
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			as, err := dicomnet.Dial(ctx, addr, dicomnet.DialOptions{CalledAETitle: "IMAGINGHUB", PresentationContexts: ctContexts()})
			if err != nil {
				return
			}
			for i := w; i < 500; i += 2 {
				sop, st, err := storeCT(ctx, as, study, i)
				if err != nil {
					return // the hub died
				}
				if st == dicomnet.StatusSuccess {
					mu.Lock()
					ok = append(ok, sop)
					mu.Unlock()
				}
			}
			as.Release(ctx)
		}()
	}
	// A third association is cut off in the middle of a data set too
	// large for the intake journal (which holds smaller ones in memory
	// until they are whole), so the hub dies with a half-received file in
	// its temporary area.
	stalled, pw := io.Pipe()
	go func() {
		as, err := dicomnet.Dial(ctx, addr, dicomnet.DialOptions{CalledAETitle: "IMAGINGHUB", PresentationContexts: ctContexts()})
		if err != nil {
			return
		}
		as.Store(ctx, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5.6.7.8", dicomfile.ImplicitVRLittleEndian, stalled, nil)
	}()
	var half bytes.Buffer
	synth.CT(&half, synth.Options{Seed: 999, StudyInstanceUID: study, Rows: 2048, Columns: 2560})
	meta, _ := dicomfile.ReadFileMeta(bytes.NewReader(half.Bytes()))
	go pw.Write(half.Bytes()[meta.DataSetOffset() : meta.DataSetOffset()+9<<20])
	for {
		mu.Lock()
		n := len(ok)
		mu.Unlock()
		if n >= 20 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
	for i := 0; i < 200; i++ {
		if tmp, _ := filepath.Glob(filepath.Join(cfg.Data.Dir, "blobs", "tmp", "*")); len(tmp) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	defer pw.CloseWithError(io.ErrClosedPipe)
	cmd.Wait()
	wg.Wait()
	if len(ok) >= 500 {
		t.Fatal("the transfer finished before the kill; nothing was tested")
	}
	tmp, _ := filepath.Glob(filepath.Join(cfg.Data.Dir, "blobs", "tmp", "*"))
	if len(tmp) == 0 {
		t.Fatal("no temporary file left by the cut transfer")
	}
	t.Logf("killed after %d acknowledged instances; %d temporary files left", len(ok), len(tmp))

	// Restart: start-up cleans temporary files.
	rt, _ := startHub(t, cfg)
	for _, p := range tmp {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("temporary file of the cut transfer still there after restart: %s", p)
		}
	}
	requireStored(t, rt, ok)
	// No index row lacks its file; a file the kill left without its row
	// (committed, row not yet) is an orphan the check removes.
	r, err := ingest.CheckArchive(ctx, rt.Catalog, rt.Blobs, ingest.CheckOptions{RemoveOrphans: true, MinAge: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Missing != 0 || r.Mismatched != 0 || r.Rows < len(ok) {
		t.Fatalf("after restart: %+v for %d acknowledged instances", r, len(ok))
	}
	t.Logf("archive check after restart: %d rows, %d files, %d orphans removed", r.Rows, r.Blobs, r.Removed)
	if r, err := ingest.CheckArchive(ctx, rt.Catalog, rt.Blobs, ingest.CheckOptions{}); err != nil || !r.Consistent() || r.Blobs != r.Rows {
		t.Fatalf("after removing orphans: %+v, %v", r, err)
	}
}

// startChild runs a hub with ingest in a child process on cfg, with env
// added, and returns it with its DICOM address; it is killed when the test
// ends.
func startChild(t *testing.T, cfg config.Config, env ...string) (*exec.Cmd, string) {
	t.Helper()
	all := append(append(os.Environ(), childEnv+"=1"), cfg.Environ()...)
	all = append(all, "IMAGINGHUB_HTTP_ADDR=127.0.0.1:0", "IMAGINGHUB_DICOM_ADDR=127.0.0.1:0", "IMAGINGHUB_NATS_LISTEN=")
	return hubtest.StartChild(t, append(all, env...))
}

// storeCT sends synthetic CT instance i of study (256×256) and returns its
// SOP Instance UID and the status.
func storeCT(ctx context.Context, as *dicomnet.Association, study string, i int) (string, uint16, error) {
	var buf bytes.Buffer
	synth.CT(&buf, synth.Options{Seed: int64(i), StudyInstanceUID: study, SeriesInstanceUID: synth.DerivedUID(1, study), InstanceNumber: i + 1, Rows: 256, Columns: 256})
	meta, _ := dicomfile.ReadFileMeta(bytes.NewReader(buf.Bytes()))
	st, err := as.Store(ctx, meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID,
		bytes.NewReader(buf.Bytes()[meta.DataSetOffset():]), nil)
	return meta.MediaStorageSOPInstanceUID, st, err
}

// requireStored fails the test unless every instance in sops is indexed
// and its file holds it.
func requireStored(t *testing.T, rt *hub.Runtime, sops []string) {
	t.Helper()
	for _, sop := range sops {
		inst, err := rt.Catalog.GetInstance(context.Background(), sop)
		if err != nil {
			t.Fatalf("acknowledged instance %s: %v", sop, err)
		}
		b := readBlob(t, rt, inst.BlobKey)
		if _, h, err := parseStored(b); err != nil || h.SOPInstanceUID != sop {
			t.Fatalf("acknowledged instance %s unreadable: %v", sop, err)
		}
	}
}

func parseStored(b []byte) (dicomfile.FileMeta, *dicomfile.Header, error) {
	meta, err := dicomfile.ReadFileMeta(bytes.NewReader(b))
	if err != nil {
		return meta, nil, err
	}
	h, err := dicomfile.ParseHeader(bytes.NewReader(b[meta.DataSetOffset():]), meta.TransferSyntaxUID)
	return meta, h, err
}
