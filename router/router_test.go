package router_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/internal/testenv"

	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
	"github.com/imaginghub/imaginghub/ingest"
	"github.com/imaginghub/imaginghub/router"
)

// storescp is a DCMTK storescp writing every received instance to its own
// file (+uf: unique names, so a duplicate shows as a second file) exactly
// as received (+B).
type storescp struct {
	dir, port, aet string
	cmd            *exec.Cmd
}

func startStorescp(t *testing.T, aet, port, dir string, extra ...string) *storescp {
	t.Helper()
	if port == "" {
		port = testenv.FreePort(t)
	}
	if dir == "" {
		dir = t.TempDir()
	}
	args := append([]string{"-aet", aet, "-od", dir, "+uf", "+B", "-dhl"}, extra...)
	cmd := exec.Command("storescp", append(args, port)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &storescp{dir: dir, port: port, aet: aet, cmd: cmd}
	t.Cleanup(s.stop)
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("storescp on %s did not start", port)
	return nil
}

func (s *storescp) stop() {
	if s.cmd.Process != nil && s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

func (s *storescp) addr() string { return "127.0.0.1:" + s.port }

// received maps SOP Instance UID to the files storescp wrote for it.
func (s *storescp) received(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	paths, _ := filepath.Glob(filepath.Join(s.dir, "*"))
	for _, p := range paths {
		meta, _, err := dicomfile.ParseFile(p)
		if err != nil {
			continue // still being written
		}
		out[meta.MediaStorageSOPInstanceUID] = append(out[meta.MediaStorageSOPInstanceUID], p)
	}
	return out
}

// waitReceived waits until storescp holds n distinct instances.
func (s *storescp) waitReceived(t *testing.T, n int, within time.Duration) map[string][]string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := s.received(t)
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// webhook is an HTTP receiver of CloudEvents that checks signatures.
type webhook struct {
	srv    *httptest.Server
	secret string
	mu     sync.Mutex
	events []events.Event
	bad    []string
}

func startWebhook(t *testing.T, secret string) *webhook {
	w := &webhook{secret: secret}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.mu.Lock()
		defer w.mu.Unlock()
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/cloudevents+json") {
			w.bad = append(w.bad, "content type "+ct)
		}
		if !router.Verify(w.secret, body, r.Header.Get(router.HeaderSignature)) {
			w.bad = append(w.bad, "bad signature "+r.Header.Get(router.HeaderSignature))
		}
		var e events.Event
		if err := json.Unmarshal(body, &e); err != nil || e.SpecVersion != "1.0" || e.ID == "" {
			w.bad = append(w.bad, fmt.Sprintf("not a CloudEvent: %v %s", err, body))
		}
		w.events = append(w.events, e)
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) snapshot() ([]events.Event, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]events.Event(nil), w.events...), append([]string(nil), w.bad...)
}

// hubWithRouter starts a hub with ingest and the router.
func hubWithRouter(t *testing.T, cfg config.Config, opts router.Options) (*hub.Runtime, *ingest.Ingest, *router.Router) {
	t.Helper()
	var in *ingest.Ingest
	var r *router.Router
	rt := hubtest.Start(t, cfg, func(rt *hub.Runtime) {
		var err error
		if in, err = ingest.New(rt); err != nil {
			t.Fatal(err)
		}
		rt.Server.Add(in)
		if r, err = router.New(rt, opts); err != nil {
			t.Fatal(err)
		}
		rt.Server.Add(r)
	})
	return rt, in, r
}

func storescu(t *testing.T, in *ingest.Ingest, aet, tsFlag string, files ...string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(in.Addr())
	testenv.Run(t, "storescu", append([]string{tsFlag, "-aec", "IMAGINGHUB", "-aet", aet, host, port}, files...)...)
}

func writeStudy(t *testing.T, n int, o synth.Options) []string {
	t.Helper()
	paths, err := synth.WriteStudy(t.TempDir(), n, o)
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// jpegInstance makes a JPEG Baseline secondary capture with img2dcm.
func jpegInstance(t *testing.T, studyUID string) string {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 64, 48))
	for y := 0; y < 48; y++ {
		for x := 0; x < 64; x++ {
			img.SetGray(x, y, color.Gray{Y: uint8(x*4 + y)})
		}
	}
	dir := t.TempDir()
	var buf bytes.Buffer
	jpeg.Encode(&buf, img, nil)
	os.WriteFile(filepath.Join(dir, "in.jpg"), buf.Bytes(), 0o600)
	out := filepath.Join(dir, "sc.dcm")
	testenv.Run(t, "img2dcm", "-k", "PatientName=TEST^JPEG", "-k", "PatientID=SYNJPEG", "-k", "StudyInstanceUID="+studyUID,
		"-k", "Modality=OT", filepath.Join(dir, "in.jpg"), out)
	return out
}

func sopUID(t *testing.T, path string) string {
	t.Helper()
	meta, _, err := dicomfile.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return meta.MediaStorageSOPInstanceUID
}

// sameDataSet compares the data sets of two Part 10 files.
func sameDataSet(t *testing.T, a, b string) bool {
	t.Helper()
	ma, _, err := dicomfile.ParseFile(a)
	if err != nil {
		t.Fatal(err)
	}
	mb, _, err := dicomfile.ParseFile(b)
	if err != nil {
		t.Fatal(err)
	}
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	return ma.TransferSyntaxUID == mb.TransferSyntaxUID && bytes.Equal(da[ma.DataSetOffset():], db[mb.DataSetOffset():])
}

func keys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestForwardByRules(t *testing.T) {
	testenv.DCMTK(t, "storescu", "storescp", "img2dcm")
	a := startStorescp(t, "DEST_A", "", "")
	b := startStorescp(t, "DEST_B", "", "", "+xa")
	mrArchive := startStorescp(t, "DEST_MR", "", "", "+xa")
	hook := startWebhook(t, "s3cret")

	cfg := hubtest.Config(t)
	cfg.Study.StableAfter = 2 * time.Second
	cfg.Router = config.Router{
		Destinations: []config.Destination{
			{Name: "ct-archive", AE: "DEST_A", Addr: a.addr()},
			{Name: "everything", AE: "DEST_B", Addr: b.addr(), Concurrency: 2},
			{Name: "hook", URL: hook.srv.URL + "/events", Secret: "s3cret"},
			{Name: "mr-archive", AE: "DEST_MR", Addr: mrArchive.addr()},
		},
		Rules: []config.Rule{
			{Name: "ct", On: []string{events.TypeInstanceStored}, Match: config.RuleMatch{Modality: "^CT$"}, Forward: []string{"ct-archive"}},
			{Name: "all", On: []string{events.TypeInstanceStored}, Forward: []string{"everything"}},
			{Name: "stable", On: []string{events.TypeStudyStable}, Forward: []string{"hook"}},
			// Whole studies with an MR series, once stable: the OT
			// instance of the same study goes too, the CT study does not.
			{Name: "mr-studies", On: []string{events.TypeStudyStable}, Match: config.RuleMatch{Modality: "^MR$"}, Forward: []string{"mr-archive"}},
			{Name: "never", On: []string{events.TypeInstanceStored}, Match: config.RuleMatch{CallingAE: "^NOBODY$"}, Forward: []string{"hook"}},
		},
	}
	rt, in, r := hubWithRouter(t, cfg, router.Options{})

	ctStudy, mrStudy := dicomfile.NewUID(), dicomfile.NewUID()
	ct := writeStudy(t, 3, synth.Options{Seed: 1, StudyInstanceUID: ctStudy, Rows: 64, Columns: 64})
	mr := writeStudy(t, 2, synth.Options{Seed: 2, StudyInstanceUID: mrStudy, Modality: "MR", Rows: 64, Columns: 64,
		TransferSyntaxUID: dicomfile.ExplicitVRLittleEndian})
	jpg := jpegInstance(t, mrStudy)
	storescu(t, in, "CT01", "-xi", ct...)
	storescu(t, in, "MR01", "-xe", mr...)
	storescu(t, in, "MR01", "-xy", jpg)

	gotA := a.waitReceived(t, 3, 30*time.Second)
	gotB := b.waitReceived(t, 6, 30*time.Second)
	var wantA, wantB []string
	for _, p := range ct {
		wantA = append(wantA, sopUID(t, p))
	}
	for _, p := range append(append(append([]string(nil), ct...), mr...), jpg) {
		wantB = append(wantB, sopUID(t, p))
	}
	sort.Strings(wantA)
	sort.Strings(wantB)
	if g := keys(gotA); strings.Join(g, ",") != strings.Join(wantA, ",") {
		t.Errorf("ct-archive received %v, want the CT instances %v", g, wantA)
	}
	if g := keys(gotB); strings.Join(g, ",") != strings.Join(wantB, ",") {
		t.Errorf("everything received %v, want %v", g, wantB)
	}
	// Every instance arrived once, in its stored transfer syntax (the JPEG
	// one compressed, as stored), with the data set as sent.
	for _, p := range append(append(append([]string(nil), ct...), mr...), jpg) {
		files := gotB[sopUID(t, p)]
		if len(files) != 1 {
			t.Errorf("%s received %d times by everything", filepath.Base(p), len(files))
			continue
		}
		if !sameDataSet(t, p, files[0]) {
			t.Errorf("%s: forwarded data set differs from the one stored", filepath.Base(p))
		}
	}
	for uid, files := range gotA {
		if len(files) != 1 {
			t.Errorf("%s received %d times by ct-archive", uid, len(files))
		}
	}

	// One study.stable event per study reaches the webhook, signed.
	deadline := time.Now().Add(30 * time.Second)
	var got []events.Event
	var bad []string
	for time.Now().Before(deadline) {
		got, bad = hook.snapshot()
		if len(got) >= 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	got, bad = hook.snapshot()
	if len(bad) > 0 {
		t.Errorf("webhook saw bad requests: %v", bad)
	}
	studies := map[string]int{}
	for _, e := range got {
		if e.Type != events.TypeStudyStable {
			t.Errorf("webhook got %s", e.Type)
		}
		var s ingest.StudyStable
		json.Unmarshal(e.Data, &s)
		studies[s.StudyInstanceUID] = max(studies[s.StudyInstanceUID], s.NumberOfInstances)
	}
	if studies[ctStudy] != 3 || studies[mrStudy] != 3 || len(studies) != 2 {
		t.Errorf("webhook studies %v, want %s:3 and %s:3", studies, ctStudy, mrStudy)
	}

	wantMR := []string{sopUID(t, mr[0]), sopUID(t, mr[1]), sopUID(t, jpg)}
	sort.Strings(wantMR)
	gotMR := mrArchive.waitReceived(t, 3, 20*time.Second)
	time.Sleep(300 * time.Millisecond)
	gotMR = mrArchive.received(t)
	if g := keys(gotMR); strings.Join(g, ",") != strings.Join(wantMR, ",") {
		t.Errorf("mr-archive received %v, want the MR study %v", g, wantMR)
	}
	for uid, files := range gotMR {
		if len(files) != 1 {
			t.Errorf("%s received %d times by mr-archive", uid, len(files))
		}
	}

	// The admin view agrees: nothing queued, nothing failed.
	st, err := r.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range st {
		if d.Failed != 0 || d.Paused {
			t.Errorf("destination %+v", d)
		}
	}
	m := scrape(t, rt)
	for _, want := range []string{
		`imaginghub_router_forwarded_total{destination="ct-archive"} 3`,
		`imaginghub_router_forwarded_total{destination="everything"} 6`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func scrape(t *testing.T, rt *hub.Runtime) string {
	t.Helper()
	rsp, err := http.Get("http://" + rt.Server.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	return string(b)
}

// TestOutageAndRestart: the destination is down while instances arrive
// (a minute; five seconds with -short), the hub is restarted on the same
// data while the backlog drains, and a job for an instance already
// delivered is queued again: every instance arrives exactly once.
func TestOutageAndRestart(t *testing.T) {
	testenv.DCMTK(t, "storescu", "storescp")
	outage := time.Minute
	if testing.Short() {
		outage = 5 * time.Second
	}
	port := testenv.FreePort(t)
	dir := t.TempDir()
	cfg := hubtest.Config(t)
	cfg.Router = config.Router{
		Destinations: []config.Destination{{Name: "pacs", AE: "PACS", Addr: "127.0.0.1:" + port, Concurrency: 2, MaxAttempts: 1000, Timeout: 10 * time.Second}},
		Rules:        []config.Rule{{Name: "all", On: []string{events.TypeInstanceStored}, Forward: []string{"pacs"}}},
	}
	opts := router.Options{BackOff: []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, time.Second}, ScanInterval: 200 * time.Millisecond}
	rt, in, r := hubWithRouter(t, cfg, opts)

	const n = 200
	paths := writeStudy(t, n, synth.Options{Seed: 3, StudyInstanceUID: dicomfile.NewUID(), Rows: 64, Columns: 64})
	storescu(t, in, "CT01", "-xi", paths...)
	time.Sleep(outage)
	st, err := r.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st[0].QueueDepth != n || st[0].Failed != 0 {
		t.Errorf("after the outage: %+v, want %d queued and none failed", st[0], n)
	}
	if m := scrape(t, rt); !strings.Contains(m, `imaginghub_router_failures_total{destination="pacs"}`) {
		t.Errorf("no failure counted during the outage")
	}

	scp := startStorescp(t, "PACS", port, dir, "--fork") // one process per association: concurrency 2
	// Stop the hub as soon as forwarding has begun, then start it again
	// on the same data directory (and the same external backends).
	for len(scp.received(t)) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	t0 := time.Now()
	hubtest.Stop(t, rt)
	before := len(scp.received(t))
	rt, _, r = hubWithRouter(t, cfg, opts)
	t.Logf("%d of %d forwarded before the restart, which took %v", before, n, time.Since(t0).Round(time.Millisecond))

	got := scp.waitReceived(t, n, 60*time.Second)
	t.Logf("all forwarded %v after the restart", time.Since(t0).Round(time.Millisecond))
	want := map[string]bool{}
	for _, p := range paths {
		want[sopUID(t, p)] = true
	}
	if len(got) != n {
		t.Fatalf("received %d distinct instances, want %d", len(got), n)
	}
	for uid, files := range got {
		if !want[uid] {
			t.Errorf("received unknown instance %s", uid)
		}
		if len(files) != 1 {
			t.Errorf("%s received %d times", uid, len(files))
		}
	}

	// A job for an instance the destination acknowledged, queued again
	// with another message id (as after the duplicate window), is skipped.
	inst, err := rt.Catalog.GetInstance(context.Background(), sopUID(t, paths[0]))
	if err != nil {
		t.Fatal(err)
	}
	// (Deliveries JetStream repeated after the restart may have been
	// skipped already: count from here.)
	skipped := func() float64 {
		for _, line := range strings.Split(scrape(t, rt), "\n") {
			if v, ok := strings.CutPrefix(line, `imaginghub_router_skipped_total{destination="pacs"} `); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
		}
		return 0
	}
	skippedBefore := skipped()
	job, _ := json.Marshal(router.Job{Destination: "pacs", SOPInstanceUID: inst.SOPInstanceUID, SOPClassUID: inst.SOPClassUID, BlobKey: inst.BlobKey})
	if _, err := rt.Bus.PublishRaw(context.Background(), router.Subject("pacs"), "again", job, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for skipped() != skippedBefore+1 {
		if time.Now().After(deadline) {
			t.Fatal("repeated job not skipped")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if files := scp.received(t)[inst.SOPInstanceUID]; len(files) != 1 {
		t.Errorf("repeated job forwarded again: %d files", len(files))
	}
}

func api(t *testing.T, rt *hub.Runtime, method, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+rt.Server.HTTPAddr()+path, nil)
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	body, _ := io.ReadAll(rsp.Body)
	if out != nil && rsp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, body)
		}
	}
	return rsp.StatusCode
}

func destinationStatus(t *testing.T, rt *hub.Runtime, name string) router.DestinationStatus {
	t.Helper()
	var ds []router.DestinationStatus
	if c := api(t, rt, "GET", "/api/router/destinations", &ds); c != http.StatusOK {
		t.Fatalf("GET destinations: %d", c)
	}
	for _, d := range ds {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no destination %s in %+v", name, ds)
	return router.DestinationStatus{}
}

// TestAdminAPI: a destination that accepts only uncompressed syntaxes gets
// JPEG instances, which are dead-lettered at once (no transcoding); an
// operator pauses and resumes it, and once it accepts JPEG retries one
// dead letter and discards the other.
func TestAdminAPI(t *testing.T) {
	testenv.DCMTK(t, "storescu", "storescp", "img2dcm")
	port := testenv.FreePort(t)
	dir := t.TempDir()
	scp := startStorescp(t, "NARROW", port, dir)
	cfg := hubtest.Config(t)
	cfg.Router = config.Router{
		Destinations: []config.Destination{{Name: "narrow", AE: "NARROW", Addr: "127.0.0.1:" + port, MaxAttempts: 3}},
		Rules:        []config.Rule{{Name: "all", On: []string{events.TypeInstanceStored}, Forward: []string{"narrow"}}},
	}
	rt, in, _ := hubWithRouter(t, cfg, router.Options{BackOff: []time.Duration{100 * time.Millisecond}, IdleRelease: 300 * time.Millisecond})

	study := dicomfile.NewUID()
	jpg1, jpg2 := jpegInstance(t, study), jpegInstance(t, study)
	storescu(t, in, "SC01", "-xy", jpg1, jpg2)
	deadline := time.Now().Add(20 * time.Second)
	var failed []router.FailedJob
	for len(failed) < 2 && time.Now().Before(deadline) {
		api(t, rt, "GET", "/api/router/destinations/narrow/failed", &failed)
		time.Sleep(100 * time.Millisecond)
	}
	if len(failed) != 2 {
		t.Fatalf("failed %+v, want the 2 JPEG instances", failed)
	}
	for _, f := range failed {
		if f.Attempts != 1 || !strings.Contains(f.Error, "no presentation context") || f.SOPInstanceUID == "" {
			t.Errorf("failed job %+v: want one attempt, refused for lack of a presentation context", f)
		}
	}
	if d := destinationStatus(t, rt, "narrow"); d.Failed != 2 || d.Kind != "dicom" || d.Paused {
		t.Errorf("status %+v", d)
	}

	// Paused, the destination gets nothing; jobs wait in its queue.
	if c := api(t, rt, "POST", "/api/router/destinations/narrow/pause", nil); c != http.StatusOK {
		t.Fatalf("pause: %d", c)
	}
	ct := writeStudy(t, 1, synth.Options{Seed: 4, StudyInstanceUID: study, Rows: 32, Columns: 32})
	storescu(t, in, "CT01", "-xi", ct...)
	time.Sleep(time.Second)
	if d := destinationStatus(t, rt, "narrow"); !d.Paused || d.QueueDepth != 1 {
		t.Errorf("paused status %+v, want paused with 1 queued", d)
	}
	if n := len(scp.received(t)); n != 0 {
		t.Errorf("paused destination received %d", n)
	}
	if c := api(t, rt, "POST", "/api/router/destinations/narrow/resume", nil); c != http.StatusOK {
		t.Fatalf("resume: %d", c)
	}
	if got := scp.waitReceived(t, 1, 10*time.Second); len(got) != 1 {
		t.Fatalf("after resume received %v", keys(got))
	}

	// The destination learns JPEG; retry one dead letter, discard the other.
	scp.stop()
	time.Sleep(500 * time.Millisecond) // the idle association is released
	scp = startStorescp(t, "NARROW", port, dir, "+xa")
	byUID := map[string]uint64{}
	for _, f := range failed {
		byUID[f.SOPInstanceUID] = f.Seq
	}
	retry, discard := byUID[sopUID(t, jpg1)], byUID[sopUID(t, jpg2)]
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"POST", "/api/router/destinations/nowhere/pause", http.StatusNotFound},
		{"GET", "/api/router/destinations/nowhere/failed", http.StatusNotFound},
		{"POST", "/api/router/destinations/narrow/failed/x/retry", http.StatusBadRequest},
		{"DELETE", "/api/router/destinations/narrow/failed/999999", http.StatusNotFound},
		{"POST", fmt.Sprintf("/api/router/destinations/narrow/failed/%d/retry", retry), http.StatusOK},
		{"DELETE", fmt.Sprintf("/api/router/destinations/narrow/failed/%d", discard), http.StatusOK},
		{"DELETE", fmt.Sprintf("/api/router/destinations/narrow/failed/%d", discard), http.StatusNotFound},
	} {
		if c := api(t, rt, tc.method, tc.path, nil); c != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, c, tc.want)
		}
	}
	got := scp.waitReceived(t, 2, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	got = scp.received(t)
	if len(got) != 2 || len(got[sopUID(t, jpg1)]) != 1 || len(got[sopUID(t, jpg2)]) != 0 {
		t.Errorf("received %v, want the CT instance and the retried JPEG once each", keys(got))
	}
	if d := destinationStatus(t, rt, "narrow"); d.Failed != 0 || d.QueueDepth != 0 {
		t.Errorf("final status %+v", d)
	}
}

// TestFallbackToImplicit: a destination that accepts Implicit VR Little
// Endian only gets an instance stored Explicit VR Little Endian re-encoded,
// with the same data set as the Implicit encoding of the same instance.
func TestFallbackToImplicit(t *testing.T) {
	testenv.DCMTK(t, "storescu", "storescp")
	scp := startStorescp(t, "IMPLICIT", "", "", "+xi")
	cfg := hubtest.Config(t)
	cfg.Router = config.Router{
		Destinations: []config.Destination{{Name: "old-pacs", AE: "IMPLICIT", Addr: scp.addr()}},
		Rules:        []config.Rule{{Name: "all", On: []string{events.TypeInstanceStored}, Forward: []string{"old-pacs"}}},
	}
	_, in, _ := hubWithRouter(t, cfg, router.Options{})
	o := synth.Options{Seed: 5, StudyInstanceUID: dicomfile.NewUID(), SeriesInstanceUID: dicomfile.NewUID(), Rows: 32, Columns: 32,
		TransferSyntaxUID: dicomfile.ExplicitVRLittleEndian}
	explicit := writeStudy(t, 2, o)
	o.TransferSyntaxUID = dicomfile.ImplicitVRLittleEndian
	implicit := writeStudy(t, 2, o)
	storescu(t, in, "MR01", "-xe", explicit...)
	got := scp.waitReceived(t, 2, 20*time.Second)
	for i, p := range implicit {
		files := got[sopUID(t, p)]
		if len(files) != 1 {
			t.Fatalf("%s received %d times", filepath.Base(explicit[i]), len(files))
		}
		if !sameDataSet(t, p, files[0]) {
			t.Errorf("%s: received data set is not the Implicit VR encoding of the stored one", filepath.Base(p))
		}
	}
}
