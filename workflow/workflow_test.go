package workflow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/imaginghub/imaginghub/internal/testenv"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/workflow"
)

const wantName = "Synthetic^Sally^Q"

// The whole day of one patient, every component running: ADT A04, ORM NW,
// MWL query, MPPS IN PROGRESS, C-STORE under a wrong name, MPPS COMPLETED,
// study stable, reconciled (the HIS's name served by C-FIND and QIDO-RS),
// one DFT^P03 at the PMS, status messages at the RIS, ORU final and the
// reading task done.
func TestWholeDay(t *testing.T) {
	ris, pms := startPeer(t), startPeer(t)
	rt, p := startHub(t, testConfig(t, ris, pms))
	base := "http://" + rt.Server.HTTPAddr()
	s := newScenario(1)
	sendHL7(t, p.hl7.Addr(), s.adt())
	sendHL7(t, p.hl7.Addr(), s.orm())
	as := dialDICOM(t, p.in.Addr())
	defer as.Release(context.Background())
	s.acquire(t, as, 2)

	// Reconciled: the catalog answers with the HIS's values.
	testenv.WaitFor(t, "reconciled study in C-FIND", 20*time.Second, func() bool {
		return findStudy(t, as, s.studyUID)["PatientName"] == wantName
	})
	got := findStudy(t, as, s.studyUID)
	if got["PatientID"] != s.patientID || got["IssuerOfPatientID"] != s.issuer || got["AccessionNumber"] != s.accession || got["PatientBirthDate"] != "19800101" {
		t.Errorf("C-FIND after reconciliation: %v", got)
	}
	var qido []map[string]json.RawMessage
	if code := httpJSON(t, "GET", base+"/dicomweb/studies?StudyInstanceUID="+s.studyUID, nil, &qido); code != 200 || len(qido) != 1 {
		t.Fatalf("QIDO-RS: %d, %d results", code, len(qido))
	}
	var pn struct {
		Value []struct{ Alphabetic string }
	}
	json.Unmarshal(qido[0]["00100010"], &pn)
	if len(pn.Value) != 1 || pn.Value[0].Alphabetic != wantName {
		t.Errorf("QIDO-RS PatientName %s", qido[0]["00100010"])
	}

	if d, ok, err := workflow.Coercion(context.Background(), rt.Catalog, s.studyUID); err != nil || !ok ||
		d.PatientName != wantName || d.IssuerOfPatientID != s.issuer || d.AccessionNumber != s.accession {
		t.Errorf("coercion %+v %v %v", d, ok, err)
	}
	checkRetrieval(t, base, p.in.Addr(), s)
	// The stored files are as the scanner sent them.
	ins, err := rt.Catalog.ListInstances(context.Background(), s.studyUID)
	if err != nil || len(ins) != 2 {
		t.Fatalf("stored instances: %d, %v", len(ins), err)
	}
	for _, in := range ins {
		b, err := rt.Blobs.Open(context.Background(), in.BlobKey)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(b)
		b.Close()
		if h := parsePart10(t, raw); h.PatientName != "WRONG^SCANNER^NAME" {
			t.Errorf("stored file changed: PatientName %q", h.PatientName)
		}
	}

	// Exactly one DFT^P03, a charge (FT1-6 CG) for the ordered procedure.
	testenv.WaitFor(t, "DFT^P03", 20*time.Second, func() bool { return len(pms.distinct()) >= 1 })
	// RIS: in process, completed, images available.
	testenv.WaitFor(t, "order status messages", 20*time.Second, func() bool { return len(ris.distinct()) >= 3 })

	// ORU final completes the reading task.
	var tasks []workflow.ReadingTask
	testenv.WaitFor(t, "reading task", 10*time.Second, func() bool {
		httpJSON(t, "GET", base+"/api/reports/worklist", nil, &tasks)
		return len(tasks) == 1
	})
	if tasks[0].StudyInstanceUID != s.studyUID || tasks[0].Status != workflow.TaskAwaiting {
		t.Errorf("reading task %+v", tasks[0])
	}
	sendHL7(t, p.hl7.Addr(), s.oru("F", 1))
	testenv.WaitFor(t, "report done", 10*time.Second, func() bool {
		httpJSON(t, "GET", base+"/api/reports/worklist", nil, &tasks)
		return len(tasks) == 0
	})

	time.Sleep(500 * time.Millisecond) // let any repeat arrive
	dfts := pms.distinct()
	if len(dfts) != 1 {
		t.Fatalf("%d distinct DFT^P03, want 1", len(dfts))
	}
	for _, m := range dfts {
		checks := map[string]string{
			"MSH-9.1": "DFT", "MSH-9.2": "P03", "EVN-1": "P03", "PID-3.1": s.patientID, "PID-3.4": s.issuer,
			"PID-5.1": "Synthetic", "PID-5.2": "Sally", "PV1-19": "VIS-1", "FT1-6": "CG", "FT1-7.1": "CTHEAD", "FT1-10": "1",
			"FT1-21.1": "555", "FT1-21.2": "Orderer", "FT1-23": s.filler, "FT1-25.1": "CTHEAD",
		}
		for loc, want := range checks {
			if got := m.Get(loc); got != want {
				t.Errorf("DFT %s = %q, want %q", loc, got, want)
			}
		}
		if got := m.Get("FT1-4"); len(got) < 8 || got[:8] != s.today {
			t.Errorf("DFT FT1-4 = %q, want the performed date %s", got, s.today)
		}
	}
	var statuses []string
	for _, m := range ris.distinct() {
		if m.Header().MessageType != "ORM" || m.Get("ORC-1") != "SC" || m.Get("ORC-2") != s.placer || m.Get("OBR-18") != s.accession {
			t.Errorf("status message %s ORC-1 %s ORC-2 %s", m.Header().MessageType, m.Get("ORC-1"), m.Get("ORC-2"))
		}
		statuses = append(statuses, m.Get("ORC-5"))
	}
	slices.Sort(statuses)
	if want := []string{workflow.OrderImagesAvailable, workflow.OrderCompleted, workflow.OrderInProcess}; !slices.Equal(statuses, want) {
		t.Errorf("RIS statuses %v, want %v", statuses, want)
	}

	// The timeline shows each decision with the event behind it.
	var tl []workflow.TimelineEntry
	if code := httpJSON(t, "GET", base+"/api/studies/"+s.studyUID+"/timeline", nil, &tl); code != 200 {
		t.Fatalf("timeline: %d", code)
	}
	kinds := map[string]bool{}
	for _, e := range tl {
		kinds[e.Kind] = true
		if e.EventID == "" {
			t.Errorf("timeline entry %s without event id", e.Kind)
		}
	}
	for _, k := range []string{"received", "stable", "reconciled", "charged", "reported", "procedure-started", "procedure-completed"} {
		if !kinds[k] {
			t.Errorf("timeline lacks %s: %+v", k, tl)
		}
	}
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()

	if !bytes.Contains(metrics, []byte(`imaginghub_workflow_events_emitted_total{type="ih.billing.charge.posted"} 1`)) {
		t.Error("metrics do not count the one charge")
	}
	if code := httpJSON(t, "GET", base+"/api/studies/1.2.3.404/timeline", nil, nil); code != http.StatusNotFound {
		t.Errorf("timeline of an unknown study: %d", code)
	}
}

// checkRetrieval reads the study back through WADO-RS metadata, WADO-URI
// and DCMTK getscu (C-GET): every one serves the reconciled values, while
// the stored files keep the scanner's.
func checkRetrieval(t *testing.T, base, dicomAddr string, s scenario) {
	t.Helper()
	var meta []map[string]json.RawMessage
	if code := httpJSON(t, "GET", base+"/dicomweb/studies/"+s.studyUID+"/metadata", nil, &meta); code != 200 || len(meta) == 0 {
		t.Fatalf("WADO-RS metadata: %d, %d instances", code, len(meta))
	}
	uid := func(ds map[string]json.RawMessage, tag string) string {
		var a struct{ Value []string }
		json.Unmarshal(ds[tag], &a)
		if len(a.Value) == 0 {
			return ""
		}
		return a.Value[0]
	}
	var pn struct {
		Value []struct{ Alphabetic string }
	}
	for _, ds := range meta {
		json.Unmarshal(ds["00100010"], &pn)
		if len(pn.Value) != 1 || pn.Value[0].Alphabetic != wantName || uid(ds, "00100021") != s.issuer {
			t.Errorf("WADO-RS metadata: PatientName %s IssuerOfPatientID %s", ds["00100010"], ds["00100021"])
		}
	}
	series, sop := uid(meta[0], "0020000E"), uid(meta[0], "00080018")
	res, err := http.Get(base + "/dicomweb/wado?requestType=WADO&contentType=application/dicom&studyUID=" + s.studyUID +
		"&seriesUID=" + series + "&objectUID=" + sop)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if h := parsePart10(t, body); h.PatientName != wantName || h.PatientID != s.patientID || h.IssuerOfPatientID != s.issuer {
		t.Errorf("WADO-URI: %q %q %q", h.PatientName, h.PatientID, h.IssuerOfPatientID)
	}
	// WADO-RS: the instance as multipart/related application/dicom.
	req, _ := http.NewRequest("GET", base+"/dicomweb/studies/"+s.studyUID+"/series/"+series+"/instances/"+sop, nil)
	req.Header.Set("Accept", `multipart/related; type="application/dicom"; transfer-syntax=*`)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("WADO-RS: %d %q %v", res.StatusCode, res.Header.Get("Content-Type"), err)
	}
	part, err := multipart.NewReader(res.Body, params["boundary"]).NextPart()
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(part)
	res.Body.Close()
	if h := parsePart10(t, body); h.PatientName != wantName || h.AccessionNumber != s.accession {
		t.Errorf("WADO-RS instance: %q %q", h.PatientName, h.AccessionNumber)
	}
	if _, err := exec.LookPath("getscu"); err != nil {
		t.Log("getscu not installed (Debian package dcmtk): C-GET check skipped")
		return
	}
	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(dicomAddr)
	out, err := exec.Command("getscu", "-aet", "VIEWER", "-aec", "IMAGINGHUB", "-S", "-k", "QueryRetrieveLevel=STUDY",
		"-k", "StudyInstanceUID="+s.studyUID, "-od", dir, host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("getscu: %v: %s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) == 0 {
		t.Fatalf("getscu retrieved nothing: %s", out)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if h := parsePart10(t, b); h.PatientName != wantName || h.PatientID != s.patientID {
			t.Errorf("C-GET %s: %q %q", filepath.Base(f), h.PatientName, h.PatientID)
		}
	}
}

func parsePart10(t *testing.T, b []byte) *dicomfile.Header {
	t.Helper()
	m, err := dicomfile.ReadFileMeta(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Part 10 file: %v", err)
	}
	h, err := dicomfile.ParseHeader(bytes.NewReader(b[m.DataSetOffset():]), m.TransferSyntaxUID)
	if err != nil {
		t.Fatalf("Part 10 data set: %v", err)
	}
	return h
}
