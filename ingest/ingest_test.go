package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/internal/testenv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
	"github.com/imaginghub/imaginghub/ingest"
)

// startHub runs a hub with the ingest component and returns it with the
// DICOM address.
func startHub(t *testing.T, cfg config.Config) (*hub.Runtime, *ingest.Ingest) {
	t.Helper()
	var in *ingest.Ingest
	rt := hubtest.Start(t, cfg, func(rt *hub.Runtime) {
		var err error
		in, err = ingest.New(rt)
		if err != nil {
			t.Fatal(err)
		}
		rt.Server.Add(in)
	})
	return rt, in
}

func hostPort(t *testing.T, addr string) (string, string) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// writeStudy writes n synthetic CT instances of one study.
func writeStudy(t testing.TB, n int, o synth.Options) []string {
	t.Helper()
	dir := t.TempDir()
	paths, err := synth.WriteStudy(dir, n, o)
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// jpegInstance makes a JPEG Baseline instance with DCMTK img2dcm.
func jpegInstance(t *testing.T, studyUID string) string {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 64, 48))
	for y := 0; y < 48; y++ {
		for x := 0; x < 64; x++ {
			img.SetGray(x, y, color.Gray{Y: uint8(x*4 + y)})
		}
	}
	dir := t.TempDir()
	jpg := filepath.Join(dir, "in.jpg")
	var buf bytes.Buffer
	jpeg.Encode(&buf, img, nil)
	os.WriteFile(jpg, buf.Bytes(), 0o600)
	out := filepath.Join(dir, "sc.dcm")
	testenv.Run(t, "img2dcm", "-k", "PatientName=TEST^JPEG", "-k", "PatientID=SYNJPEG", "-k", "StudyInstanceUID="+studyUID,
		"-k", "Modality=OT", jpg, out)
	return out
}

func TestEchoAndStoreWithDCMTK(t *testing.T) {
	testenv.DCMTK(t, "echoscu", "storescu", "img2dcm")
	rt, in := startHub(t, hubtest.Config(t))
	host, port := hostPort(t, in.Addr())
	testenv.Run(t, "echoscu", "-aec", "IMAGINGHUB", host, port)

	study := dicomfile.NewUID()
	paths := writeStudy(t, 5, synth.Options{Seed: 1, StudyInstanceUID: study})
	// One instance of 2 MiB: larger than the test hub's intake journal
	// takes (an eighth of its 8 MiB), so it is stored and fsynced on its own.
	big := filepath.Join(t.TempDir(), "big.dcm")
	var bigData bytes.Buffer
	if _, err := synth.CT(&bigData, synth.Options{Seed: 1, StudyInstanceUID: study, SOPInstanceUID: synth.DerivedUID(1, "series") + ".99",
		InstanceNumber: 99, Rows: 1024, Columns: 1024}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, bigData.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	paths = append(paths, big)
	// -xi proposes Implicit VR LE, the synthetic files' own syntax, so nothing is converted
	// on the way; -xy proposes JPEG Baseline for the img2dcm file.
	testenv.Run(t, "storescu", append([]string{"-xi", "-aec", "IMAGINGHUB", "-aet", "CT01", host, port}, paths...)...)
	jpg := jpegInstance(t, study)
	testenv.Run(t, "storescu", "-xy", "-aec", "IMAGINGHUB", "-aet", "CT01", host, port, jpg)
	paths = append(paths, jpg)

	ctx := context.Background()
	st, err := rt.Catalog.GetStudy(ctx, study)
	if err != nil {
		t.Fatal(err)
	}
	if st.Study.NumberOfStudyRelatedInstances != 7 || st.Study.NumberOfStudyRelatedSeries != 2 ||
		strings.Join(st.Study.ModalitiesInStudy, `\`) != `CT\OT` {
		t.Fatalf("study: %+v", st.Study)
	}
	// Every stored file is the sent data set, byte for byte, behind a File
	// Meta group naming the transfer syntax as negotiated and the sender.
	for _, p := range paths {
		meta, _, err := dicomfile.ParseFile(p)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := rt.Catalog.GetInstance(ctx, meta.MediaStorageSOPInstanceUID)
		if err != nil {
			t.Fatal(err)
		}
		if inst.CallingAE != "CT01" || inst.TransferSyntaxUID != meta.TransferSyntaxUID {
			t.Errorf("instance %+v", inst)
		}
		stored := readBlob(t, rt, inst.BlobKey)
		sm, err := dicomfile.ReadFileMeta(bytes.NewReader(stored))
		if err != nil {
			t.Fatal(err)
		}
		if sm.TransferSyntaxUID != meta.TransferSyntaxUID || sm.SourceApplicationEntityTitle != "CT01" ||
			sm.MediaStorageSOPInstanceUID != meta.MediaStorageSOPInstanceUID {
			t.Errorf("stored file meta %+v", sm)
		}
		orig, _ := os.ReadFile(p)
		if !bytes.Equal(stored[sm.DataSetOffset():], orig[meta.DataSetOffset():]) {
			t.Errorf("%s: stored data set differs from the one sent", filepath.Base(p))
		}
		// DCMTK reads what we wrote.
		f := filepath.Join(t.TempDir(), "stored.dcm")
		os.WriteFile(f, stored, 0o600)
		if _, err := exec.LookPath("dcmdump"); err == nil {
			testenv.Run(t, "dcmdump", "-q", f)
		}
	}
	if sm := strings.TrimSpace(testenv.Run(t, "dcmdump", "-q", "+P", "0002,0010", mustBlobFile(t, rt, paths[6]))); !strings.Contains(sm, "JPEGBaseline") {
		t.Errorf("JPEG instance stored with %q", sm)
	}
}

func readBlob(t *testing.T, rt *hub.Runtime, key string) []byte {
	t.Helper()
	r, err := rt.Blobs.Open(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustBlobFile(t *testing.T, rt *hub.Runtime, sent string) string {
	meta, _, err := dicomfile.ParseFile(sent)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := rt.Catalog.GetInstance(context.Background(), meta.MediaStorageSOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "b.dcm")
	os.WriteFile(f, readBlob(t, rt, inst.BlobKey), 0o600)
	return f
}

func TestUnsupportedAbstractSyntaxIsRejectedNotFatal(t *testing.T) {
	_, in := startHub(t, hubtest.Config(t))
	ctx := context.Background()
	as, err := dicomnet.Dial(ctx, in.Addr(), dicomnet.DialOptions{CalledAETitle: "IMAGINGHUB", PresentationContexts: []dicomnet.ProposedContext{
		{AbstractSyntax: "1.2.3.4.5.6.7", TransferSyntaxes: []string{dicomfile.ImplicitVRLittleEndian}},
		{AbstractSyntax: dicomnet.VerificationSOPClass, TransferSyntaxes: []string{dicomfile.ImplicitVRLittleEndian}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Release(ctx)
	if _, ok := as.PresentationContext("1.2.3.4.5.6.7", dicomfile.ImplicitVRLittleEndian); ok {
		t.Fatal("unknown abstract syntax accepted")
	}
	if err := as.Echo(ctx); err != nil {
		t.Fatalf("the association must still serve: %v", err)
	}
}

func TestAEPolicy(t *testing.T) {
	cfg := hubtest.Config(t)
	cfg.DICOM.AllowedCallingAEs = []string{"CT01", "MR01@127.0.0.1", "US01@10.9.9.9"}
	_, in := startHub(t, cfg)
	ctx := context.Background()
	cases := []struct {
		calling, called string
		want            *dicomnet.AssociateRJ
	}{
		{"CT01", "IMAGINGHUB", nil},
		{"MR01", "IMAGINGHUB", nil},
		{"US01", "IMAGINGHUB", &dicomnet.AssociateRJ{Result: 1, Source: 1, Reason: 3}},
		{"XA01", "IMAGINGHUB", &dicomnet.AssociateRJ{Result: 1, Source: 1, Reason: 3}},
		{"CT01", "OTHERPACS", &dicomnet.AssociateRJ{Result: 1, Source: 1, Reason: 7}},
	}
	for _, tc := range cases {
		as, err := dicomnet.Dial(ctx, in.Addr(), dicomnet.DialOptions{CallingAETitle: tc.calling, CalledAETitle: tc.called})
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s→%s: %v", tc.calling, tc.called, err)
				continue
			}
			as.Release(ctx)
			continue
		}
		var rj *dicomnet.AssociateRJ
		if !errors.As(err, &rj) || *rj != *tc.want {
			t.Errorf("%s→%s: got %v, want %+v", tc.calling, tc.called, err, tc.want)
		}
	}
}

// storeOne sends one file with our SCU and returns the status.
func storeOne(t *testing.T, as *dicomnet.Association, sopClass, sopInst, ts string, data []byte) uint16 {
	t.Helper()
	st, err := as.Store(context.Background(), sopClass, sopInst, ts, bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// dialCT opens an association to addr proposing CT Image Storage and
// Verification.
func dialCT(t *testing.T, addr string) *dicomnet.Association {
	t.Helper()
	as, err := dicomnet.Dial(context.Background(), addr, dicomnet.DialOptions{CalledAETitle: "IMAGINGHUB", PresentationContexts: ctContexts()})
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func ctContexts() []dicomnet.ProposedContext {
	return []dicomnet.ProposedContext{
		{AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{dicomfile.ImplicitVRLittleEndian}},
		{AbstractSyntax: dicomnet.VerificationSOPClass, TransferSyntaxes: []string{dicomfile.ImplicitVRLittleEndian}},
	}
}

func synthDataSet(t *testing.T, o synth.Options) (sopUID string, data []byte) {
	var buf bytes.Buffer
	if _, err := synth.CT(&buf, o); err != nil {
		t.Fatal(err)
	}
	meta, err := dicomfile.ReadFileMeta(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return meta.MediaStorageSOPInstanceUID, buf.Bytes()[meta.DataSetOffset():]
}

func TestStoreFailuresAndDuplicates(t *testing.T) {
	rt, in := startHub(t, hubtest.Config(t))
	ctx := context.Background()
	as := dialCT(t, in.Addr())
	defer as.Release(ctx)
	ct := "1.2.840.10008.5.1.4.1.1.2"
	sop, data := synthDataSet(t, synth.Options{Seed: 7})

	if st := storeOne(t, as, ct, sop, dicomfile.ImplicitVRLittleEndian, data); st != dicomnet.StatusSuccess {
		t.Fatalf("store: 0x%04X", st)
	}
	// The same instance again: kept as first received, Success, counted.
	if st := storeOne(t, as, ct, sop, dicomfile.ImplicitVRLittleEndian, data); st != dicomnet.StatusSuccess {
		t.Fatalf("duplicate: 0x%04X", st)
	}
	// Affected SOP Instance UID not the data set's: failure, nothing kept.
	if st := storeOne(t, as, ct, "1.2.3.999", dicomfile.ImplicitVRLittleEndian, data); st != dicomnet.StatusDataSetDoesNotMatchSOPClass {
		t.Fatalf("mismatched UID: 0x%04X", st)
	}
	// Garbage: cannot understand.
	if st := storeOne(t, as, ct, "1.2.3.1000", dicomfile.ImplicitVRLittleEndian, []byte{0x08, 0x00, 0x16, 0x00, 0xff, 0xff, 0xff, 0x7f, 1, 2}); st&0xF000 != 0xC000 {
		t.Fatalf("garbage: 0x%04X", st)
	}
	if n, _ := rt.Catalog.CountInstances(ctx); n != 1 {
		t.Fatalf("instances %d, want 1", n)
	}
	// The association survived every failure.
	if err := as.Echo(ctx); err != nil {
		t.Fatal(err)
	}
	// Exactly one instance.stored event; no file left but the one indexed.
	waitEvents(t, rt, events.TypeInstanceStored, 1)
	files := 0
	filepath.Walk(filepath.Join(rt.Config.Data.Dir, "blobs", "objects"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			files++
		}
		return nil
	})
	if files != 1 {
		t.Fatalf("%d files in the blob store, want 1", files)
	}
	if err := in.Storer.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	body := metrics(t, rt)
	if !strings.Contains(body, "imaginghub_ingest_duplicates_total 1") {
		t.Errorf("duplicate not counted:\n%s", grep(body, "imaginghub_ingest"))
	}
	if !strings.Contains(body, `imaginghub_ingest_journal_checkpoints_total{outcome="ok"}`) {
		t.Errorf("journal checkpoint not counted:\n%s", grep(body, "imaginghub_ingest"))
	}
}

func TestDuplicatePolicyReject(t *testing.T) {
	cfg := hubtest.Config(t)
	cfg.DICOM.DuplicatePolicy = "reject"
	_, in := startHub(t, cfg)
	ctx := context.Background()
	as := dialCT(t, in.Addr())
	defer as.Release(ctx)
	sop, data := synthDataSet(t, synth.Options{Seed: 8})
	storeOne(t, as, "1.2.840.10008.5.1.4.1.1.2", sop, dicomfile.ImplicitVRLittleEndian, data)
	if st := storeOne(t, as, "1.2.840.10008.5.1.4.1.1.2", sop, dicomfile.ImplicitVRLittleEndian, data); st != dicomnet.StatusDuplicateSOPInstance {
		t.Fatalf("duplicate under reject: 0x%04X", st)
	}
}

func metrics(t *testing.T, rt *hub.Runtime) string {
	var buf bytes.Buffer
	mfs, err := rt.Server.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			lbl := ""
			for _, l := range m.GetLabel() {
				lbl += fmt.Sprintf("{%s=%q}", l.GetName(), l.GetValue())
			}
			fmt.Fprintf(&buf, "%s%s %v\n", mf.GetName(), lbl, v)
		}
	}
	return buf.String()
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// waitEvents waits until the event stream holds n events of a type and
// returns them.
func waitEvents(t *testing.T, rt *hub.Runtime, typ string, n int) []events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []events.Event
	for ctx.Err() == nil {
		got = got[:0]
		st, err := rt.Bus.JetStream().Stream(ctx, rt.Bus.StreamName(events.EventsStream))
		if err != nil {
			t.Fatal(err)
		}
		cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{rt.Bus.Subject(typ)}})
		if err != nil {
			t.Fatal(err)
		}
		for {
			batch, err := cons.Fetch(100, jetstream.FetchMaxWait(300*time.Millisecond))
			if err != nil {
				break
			}
			k := 0
			for m := range batch.Messages() {
				var e events.Event
				json.Unmarshal(m.Data(), &e)
				got = append(got, e)
				k++
			}
			if k == 0 {
				break
			}
		}
		if len(got) >= n {
			if len(got) > n {
				t.Fatalf("%d %s events, want %d", len(got), typ, n)
			}
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%d %s events, want %d", len(got), typ, n)
	return nil
}

// A study is announced once it has had no new instance for
// study.stable_after; a later instance re-arms it and it is announced
// again with the new count.
func TestStudyStable(t *testing.T) {
	cfg := hubtest.Config(t)
	cfg.Study.StableAfter = 700 * time.Millisecond
	rt, in := startHub(t, cfg)
	ctx := context.Background()
	as := dialCT(t, in.Addr())
	defer as.Release(ctx)
	study := dicomfile.NewUID()
	series := dicomfile.NewUID()
	for i := 1; i <= 3; i++ {
		sop, data := synthDataSet(t, synth.Options{Seed: int64(i), StudyInstanceUID: study, SeriesInstanceUID: series, InstanceNumber: i, AccessionNumber: "ACC42"})
		storeOne(t, as, "1.2.840.10008.5.1.4.1.1.2", sop, dicomfile.ImplicitVRLittleEndian, data)
	}
	evs := waitEvents(t, rt, events.TypeStudyStable, 1)
	var d ingest.StudyStable
	evs[0].DecodeData(&d)
	if d.StudyInstanceUID != study || d.NumberOfInstances != 3 || d.AccessionNumber != "ACC42" || evs[0].Subject != study {
		t.Fatalf("stable event %+v", d)
	}
	sop, data := synthDataSet(t, synth.Options{Seed: 4, StudyInstanceUID: study, SeriesInstanceUID: series, InstanceNumber: 4})
	storeOne(t, as, "1.2.840.10008.5.1.4.1.1.2", sop, dicomfile.ImplicitVRLittleEndian, data)
	evs = waitEvents(t, rt, events.TypeStudyStable, 2)
	evs[1].DecodeData(&d)
	if d.NumberOfInstances != 4 {
		t.Fatalf("second stable event %+v", d)
	}
}

// The hub's SCU stores into DCMTK storescp.
func TestHubSCUStoresIntoStorescp(t *testing.T) {
	testenv.DCMTK(t, "storescp")
	out := t.TempDir()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cmd := exec.Command("storescp", "-aet", "STORESCP", "-od", out, "+xa", port)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var as *dicomnet.Association
	var err error
	for i := 0; i < 50; i++ {
		as, err = dicomnet.Dial(context.Background(), "127.0.0.1:"+port, dicomnet.DialOptions{CalledAETitle: "STORESCP", PresentationContexts: ctContexts()})
		if err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	sop, data := synthDataSet(t, synth.Options{Seed: 9})
	if st := storeOne(t, as, "1.2.840.10008.5.1.4.1.1.2", sop, dicomfile.ImplicitVRLittleEndian, data); st != 0 {
		t.Fatalf("status 0x%04X", st)
	}
	as.Release(context.Background())
	got, _ := filepath.Glob(filepath.Join(out, "*"))
	if len(got) != 1 {
		t.Fatalf("storescp wrote %v", got)
	}
	meta, _, err := dicomfile.ParseFile(got[0])
	if err != nil || meta.MediaStorageSOPInstanceUID != sop {
		t.Fatalf("received %+v %v", meta, err)
	}
}

// With in-process coordination the stability timers live in memory: a
// study whose instances arrived before a restart is still announced after
// it, and a study announced before is not announced again.
func TestStudyStableAcrossRestart(t *testing.T) {
	cfg := hubtest.Config(t)
	cfg.Redis.URL = "" // the in-process coordinator (Redis keeps its timers)
	cfg.Study.StableAfter = 500 * time.Millisecond
	rt, in := startHub(t, cfg)
	ctx := context.Background()
	as := dialCT(t, in.Addr())
	announced, pending := dicomfile.NewUID(), dicomfile.NewUID()
	sop, data := synthDataSet(t, synth.Options{Seed: 21, StudyInstanceUID: announced})
	storeOne(t, as, "1.2.840.10008.5.1.4.1.1.2", sop, dicomfile.ImplicitVRLittleEndian, data)
	waitEvents(t, rt, events.TypeStudyStable, 1)
	// The second study's timer is still running when the hub stops.
	sop, data = synthDataSet(t, synth.Options{Seed: 22, StudyInstanceUID: pending})
	storeOne(t, as, "1.2.840.10008.5.1.4.1.1.2", sop, dicomfile.ImplicitVRLittleEndian, data)
	as.Release(ctx)
	hubtest.Stop(t, rt)

	rt2, _ := startHub(t, cfg)
	evs := waitEvents(t, rt2, events.TypeStudyStable, 2)
	if evs[1].Subject != pending {
		t.Fatalf("announced after restart: %s, want %s", evs[1].Subject, pending)
	}
	time.Sleep(cfg.Study.StableAfter + 300*time.Millisecond)
	waitEvents(t, rt2, events.TypeStudyStable, 2) // and nothing more
}
