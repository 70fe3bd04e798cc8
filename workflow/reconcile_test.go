package workflow_test

import (
	"bytes"
	"context"
	"fmt"
	"github.com/imaginghub/imaginghub/internal/testenv"
	"net/http"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/workflow"
)

// storeStudy sends n instances of a study with no MPPS, as a modality
// without worklist does.
func storeStudy(t testing.TB, as *dicomnet.Association, s scenario, name string, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		var buf bytes.Buffer
		if _, err := synth.CT(&buf, synth.Options{Seed: int64(s.n*1000 + 500 + i), PatientName: name, PatientID: s.patientID,
			StudyInstanceUID: s.studyUID, AccessionNumber: s.accession, StudyDate: s.today, InstanceNumber: i, Rows: 8, Columns: 8,
			TransferSyntaxUID: dicomfile.ExplicitVRLittleEndian}); err != nil {
			t.Fatal(err)
		}
		meta, err := dicomfile.ReadFileMeta(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if st, err := as.Store(context.Background(), synth.CTImageStorage, meta.MediaStorageSOPInstanceUID, dicomfile.ExplicitVRLittleEndian,
			bytes.NewReader(buf.Bytes()[meta.DataSetOffset():]), nil); err != nil || st != dicomnet.StatusSuccess {
			t.Fatalf("C-STORE: 0x%04X %v", st, err)
		}
	}
}

func orderID(t testing.TB, c *catalog.Catalog, placer string) int64 {
	t.Helper()
	var id int64
	testenv.WaitFor(t, "order "+placer, 10*time.Second, func() bool {
		err := c.InReadTx(context.Background(), func(tx *catalog.ReadTx) error {
			return tx.QueryRowContext(context.Background(), `SELECT id FROM orders WHERE placer_order_number = ?`, placer).Scan(&id)
		})
		return err == nil
	})
	return id
}

func inQueue(t *testing.T, base, uid string) bool {
	var q []workflow.Unmatched
	httpJSON(t, "GET", base+"/api/reconciliation/unmatched", nil, &q)
	for _, u := range q {
		if u.StudyInstanceUID == uid {
			return true
		}
	}
	return false
}

// Studies no order matches wait in the queue; an order arriving later
// takes its study out, and a person can link one by hand.
func TestUnmatchedQueue(t *testing.T) {
	ris, pms := startPeer(t), startPeer(t)
	rt, p := startHub(t, testConfig(t, ris, pms))
	base := "http://" + rt.Server.HTTPAddr()
	as := dialDICOM(t, p.in.Addr())
	defer as.Release(context.Background())

	late, manual := newScenario(21), newScenario(22)
	manual.accession = "SCANNER-TYPO"
	storeStudy(t, as, late, "LATE^ORDER", 1)
	storeStudy(t, as, manual, "BY^HAND", 1)
	testenv.WaitFor(t, "both studies queued", 20*time.Second, func() bool { return inQueue(t, base, late.studyUID) && inQueue(t, base, manual.studyUID) })

	// The order of the first arrives after its study: matched by
	// accession (no Study UID in this order).
	orm := bytes.Replace(late.orm(), []byte("ZDS|"+late.studyUID+"^100^Application^DICOM\r"), nil, 1)
	sendHL7(t, p.hl7.Addr(), orm)
	testenv.WaitFor(t, "late order reconciles its study", 20*time.Second, func() bool { return !inQueue(t, base, late.studyUID) })
	if got := findStudy(t, as, late.studyUID); got["PatientName"] != wantName {
		t.Errorf("late study after its order: %v", got)
	}

	// The second names an accession no order has: linked by hand.
	want := newScenario(22)
	want.studyUID = "" // the RIS gave no Study Instance UID
	sendHL7(t, p.hl7.Addr(), bytes.Replace(want.orm(), []byte("\rZDS|^100^Application^DICOM"), nil, 1))
	id := orderID(t, rt.Catalog, want.placer)
	time.Sleep(200 * time.Millisecond)
	if !inQueue(t, base, manual.studyUID) {
		t.Fatal("study with an unknown accession left the queue by itself")
	}
	cases := []struct {
		name, study string
		body        any
		want        int
	}{
		{"unknown study", "1.2.3.404", map[string]int64{"orderId": id}, http.StatusNotFound},
		{"unknown order", manual.studyUID, map[string]int64{"orderId": 999999}, http.StatusNotFound},
		{"no order id", manual.studyUID, map[string]string{"x": "y"}, http.StatusBadRequest},
		{"link", manual.studyUID, map[string]int64{"orderId": id}, http.StatusOK},
		{"link again", manual.studyUID, map[string]int64{"orderId": id}, http.StatusOK},
	}
	for _, c := range cases {
		if code := httpJSON(t, "POST", base+"/api/reconciliation/unmatched/"+c.study+"/link", c.body, nil); code != c.want {
			t.Errorf("%s: %d, want %d", c.name, code, c.want)
		}
	}
	if inQueue(t, base, manual.studyUID) {
		t.Error("linked study still queued")
	}
	if got := findStudy(t, as, manual.studyUID); got["PatientName"] != wantName || got["AccessionNumber"] != want.accession {
		t.Errorf("study linked by hand: %v", got)
	}
	var tl []workflow.TimelineEntry
	httpJSON(t, "GET", base+"/api/studies/"+manual.studyUID+"/timeline", nil, &tl)
	var kinds []string
	for _, e := range tl {
		kinds = append(kinds, e.Kind)
	}
	if fmt.Sprint(kinds) != "[received stable unmatched reconciled report-requested]" {
		t.Errorf("timeline %v", kinds)
	}
	// No MPPS: billing follows MPPS, so no charge for these.
	time.Sleep(300 * time.Millisecond)
	if n := len(pms.distinct()); n != 0 {
		t.Errorf("%d DFT^P03 without a performed procedure", n)
	}
}

// ADT A08 refreshes the served values; A40 moves the study to the
// surviving patient. A cancellation after charging sends one credit.
func TestPatientChangesAndReversal(t *testing.T) {
	ris, pms := startPeer(t), startPeer(t)
	rt, p := startHub(t, testConfig(t, ris, pms))
	base := "http://" + rt.Server.HTTPAddr()
	s := newScenario(31)
	sendHL7(t, p.hl7.Addr(), s.adt())
	sendHL7(t, p.hl7.Addr(), s.orm())
	as := dialDICOM(t, p.in.Addr())
	defer as.Release(context.Background())
	s.acquire(t, as, 1)
	testenv.WaitFor(t, "reconciled", 20*time.Second, func() bool { return findStudy(t, as, s.studyUID)["PatientName"] == wantName })
	testenv.WaitFor(t, "charge", 20*time.Second, func() bool { return len(pms.distinct()) == 1 })

	a08 := seg(fmt.Sprintf(`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|%s100000||ADT^A08|A08-31|P|2.5`, s.today),
		fmt.Sprintf(`EVN|A08|%s100000`, s.today),
		fmt.Sprintf(`PID|1||%s^^^%s^MR||Synthetic^Sarah||19800102|F`, s.patientID, s.issuer))
	sendHL7(t, p.hl7.Addr(), a08)
	var got map[string]string
	testenv.WaitFor(t, "A08 in C-FIND", 20*time.Second, func() bool {
		got = findStudy(t, as, s.studyUID)
		// An empty component is "no change" (HL7 2.5.1 §2.5.3): the
		// middle name stays.
		return got["PatientName"] == "Synthetic^Sarah^Q" && got["PatientBirthDate"] == "19800102"
	})
	a40 := seg(fmt.Sprintf(`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|%s110000||ADT^A40^ADT_A39|A40-31|P|2.5`, s.today),
		fmt.Sprintf(`EVN|A40|%s110000`, s.today),
		fmt.Sprintf(`PID|1||SURVIVOR-31^^^%s^MR||Synthetic^Sarah||19800102|F`, s.issuer),
		fmt.Sprintf(`MRG|%s^^^%s^MR`, s.patientID, s.issuer))
	sendHL7(t, p.hl7.Addr(), a40)
	testenv.WaitFor(t, "A40 in C-FIND", 20*time.Second, func() bool { return findStudy(t, as, s.studyUID)["PatientID"] == "SURVIVOR-31" })
	var meta []map[string]any
	httpJSON(t, "GET", base+"/dicomweb/studies/"+s.studyUID+"/metadata", nil, &meta)
	if len(meta) != 1 || fmt.Sprint(meta[0]["00100020"]) != "map[Value:[SURVIVOR-31] vr:LO]" {
		t.Errorf("metadata after merge: %v", meta[0]["00100020"])
	}

	// The RIS corrects the accession (ORC-1 XO): the study follows, the
	// merged identity stays.
	xo := bytes.Replace(s.orm(), []byte("|ORM^O01|ORM-31|"), []byte("|ORM^O01|XO-31|"), 1)
	xo = bytes.Replace(xo, []byte("ORC|NW|"), []byte("ORC|XO|"), 1)
	xo = bytes.Replace(xo, []byte("|"+s.accession+"|"), []byte("|ACC-31-FIXED|"), 1)
	sendHL7(t, p.hl7.Addr(), xo)
	testenv.WaitFor(t, "XO in C-FIND", 20*time.Second, func() bool { return findStudy(t, as, s.studyUID)["AccessionNumber"] == "ACC-31-FIXED" })
	if got := findStudy(t, as, s.studyUID); got["PatientID"] != "SURVIVOR-31" {
		t.Errorf("order update undid the merge: %v", got)
	}

	// Cancelled after charging: one credit, however often it is said.
	for i := range 2 {
		sendHL7(t, p.hl7.Addr(), seg(fmt.Sprintf(`MSH|^~\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|%s120000||ORM^O01|CA-31-%d|P|2.3.1`, s.today, i),
			fmt.Sprintf(`PID|1||SURVIVOR-31^^^%s`, s.issuer), fmt.Sprintf(`ORC|CA|%s|%s||CA`, s.placer, s.filler)))
	}
	testenv.WaitFor(t, "credit", 20*time.Second, func() bool { return len(pms.distinct()) == 2 })
	time.Sleep(500 * time.Millisecond)
	var types []string
	for _, m := range pms.distinct() {
		types = append(types, m.Get("FT1-6"))
	}
	if len(types) != 2 || !(types[0] == "CG" && types[1] == "CD" || types[0] == "CD" && types[1] == "CG") {
		t.Errorf("DFT^P03 transaction types %v, want one CG and one CD", types)
	}
}

// With heuristic matching on, a study whose keys match no order is
// matched by Patient ID, modality and date; a modality that sends no MPPS
// (workflow.no_mpps_modalities) is charged when its study is reconciled,
// once.
func TestHeuristicMatchAndBillingOnReconcile(t *testing.T) {
	ris, pms := startPeer(t), startPeer(t)
	cfg := testConfig(t, ris, pms)
	cfg.Workflow.HeuristicMatching = true
	cfg.Workflow.NoMPPSModalities = []string{"CT"}
	rt, p := startHub(t, cfg)
	base := "http://" + rt.Server.HTTPAddr()
	as := dialDICOM(t, p.in.Addr())
	defer as.Release(context.Background())

	order := newScenario(41)
	order.studyUID = ""
	sendHL7(t, p.hl7.Addr(), bytes.Replace(order.orm(), []byte("\rZDS|^100^Application^DICOM"), nil, 1))
	orderID(t, rt.Catalog, order.placer)
	scanned := newScenario(42) // its own Study UID and accession
	scanned.patientID = order.patientID
	storeStudy(t, as, scanned, "GUESSED^PATIENT", 1)
	testenv.WaitFor(t, "heuristic match", 20*time.Second, func() bool { return findStudy(t, as, scanned.studyUID)["PatientName"] == wantName })
	if got := findStudy(t, as, scanned.studyUID); got["AccessionNumber"] != order.accession {
		t.Errorf("accession after heuristic match: %v", got)
	}
	var tl []workflow.TimelineEntry
	httpJSON(t, "GET", base+"/api/studies/"+scanned.studyUID+"/timeline", nil, &tl)
	found := false
	for _, e := range tl {
		if e.Kind == "reconciled" && bytes.Contains([]byte(e.Detail), []byte(workflow.MatchHeuristic)) {
			found = true
		}
	}
	if !found {
		t.Errorf("timeline does not say heuristic: %+v", tl)
	}
	testenv.WaitFor(t, "charge on reconciliation", 20*time.Second, func() bool { return len(pms.distinct()) == 1 })
	// More instances make the study stable again: no second charge.
	scanned.n = 43
	storeStudy(t, as, scanned, "GUESSED^PATIENT", 1)
	time.Sleep(time.Second)
	if n := len(pms.distinct()); n != 1 {
		t.Errorf("%d DFT^P03 after the study grew, want 1", n)
	}
}

// ORU^R01: a preliminary report keeps the study on the reading worklist,
// a final takes it off, a corrected one supersedes the final; stat orders
// come first.
func TestReports(t *testing.T) {
	rt, p := startHub(t, testConfig(t, nil, nil))
	base := "http://" + rt.Server.HTTPAddr()
	as := dialDICOM(t, p.in.Addr())
	defer as.Release(context.Background())
	routine, stat := newScenario(51), newScenario(52)
	sendHL7(t, p.hl7.Addr(), routine.orm())
	sendHL7(t, p.hl7.Addr(), bytes.Replace(stat.orm(), []byte("100000^^R|"), []byte("100000^^S|"), 1))
	orderID(t, rt.Catalog, stat.placer)
	storeStudy(t, as, routine, "X^Y", 1)
	time.Sleep(100 * time.Millisecond)
	storeStudy(t, as, stat, "X^Y", 1)
	var tasks []workflow.ReadingTask
	testenv.WaitFor(t, "two reading tasks", 20*time.Second, func() bool {
		httpJSON(t, "GET", base+"/api/reports/worklist", nil, &tasks)
		return len(tasks) == 2
	})
	if tasks[0].StudyInstanceUID != stat.studyUID || tasks[0].Priority != "S" {
		t.Errorf("stat order not first: %+v", tasks)
	}
	steps := []struct {
		status, want string
		onList       bool
	}{
		{"P", workflow.TaskPreliminary, true},
		{"F", workflow.TaskFinal, false},
		{"P", workflow.TaskFinal, false}, // a late preliminary does not reopen
		{"C", workflow.TaskFinal, false},
	}
	for i, st := range steps {
		sendHL7(t, p.hl7.Addr(), routine.oru(st.status, i))
		var status string
		testenv.WaitFor(t, "report "+st.status, 10*time.Second, func() bool {
			var n int
			rt.Catalog.InReadTx(context.Background(), func(tx *catalog.ReadTx) error {
				tx.QueryRowContext(context.Background(), `SELECT count(*) FROM workflow_audit WHERE study_instance_uid = ? AND kind = 'reported'`,
					routine.studyUID).Scan(&n)
				return tx.QueryRowContext(context.Background(), `SELECT status FROM reading_tasks WHERE study_instance_uid = ?`,
					routine.studyUID).Scan(&status)
			})
			return n == i+1
		})
		if status != st.want {
			t.Errorf("after %s: task %s, want %s", st.status, status, st.want)
		}
		httpJSON(t, "GET", base+"/api/reports/worklist", nil, &tasks)
		on := false
		for _, tk := range tasks {
			on = on || tk.StudyInstanceUID == routine.studyUID
		}
		if on != st.onList {
			t.Errorf("after %s: on the reading worklist %v, want %v", st.status, on, st.onList)
		}
	}
	var final, linkStatus string
	var finalID int64
	rt.Catalog.InReadTx(context.Background(), func(tx *catalog.ReadTx) error {
		tx.QueryRowContext(context.Background(), `SELECT final_report FROM reading_tasks WHERE study_instance_uid = ?`, routine.studyUID).Scan(&finalID)
		tx.QueryRowContext(context.Background(), `SELECT result_status FROM reports WHERE id = ?`, finalID).Scan(&final)
		return tx.QueryRowContext(context.Background(), `SELECT status FROM workflow_links WHERE study_instance_uid = ?`, routine.studyUID).Scan(&linkStatus)
	})
	if final != "C" || linkStatus != "report-available" {
		t.Errorf("final report is a %q, order %q; want the corrected one, report-available", final, linkStatus)
	}
}
