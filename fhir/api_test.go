package fhir_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/internal/testenv"

	ppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/patient_go_proto"
	"google.golang.org/protobuf/proto"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"

	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/fhir"
	risbridge "github.com/imaginghub/imaginghub/ris-bridge"
)

func searchIDs(t *testing.T, u string) []string {
	t.Helper()
	var b map[string]any
	if code, h := get(t, u, &b); code != 200 || b["resourceType"] != "Bundle" || !strings.HasPrefix(h.Get("Content-Type"), "application/fhir+json") {
		t.Fatalf("GET %s: %d %v", u, code, b)
	}
	var ids []string
	for _, e := range entriesOrNone(b) {
		ids = append(ids, dig(e.(map[string]any), "resource", "id").(string))
	}
	return ids
}

func entriesOrNone(b map[string]any) []any {
	e, _ := b["entry"].([]any)
	return e
}

// The REST API over real HTTP: capability statement, read with ETag and
// versions, search by every supported parameter, paging, and
// OperationOutcomes for bad requests.
func TestRESTReadAndSearch(t *testing.T) {
	testenv.DCMTK(t, "storescu")
	th := startHub(t, testConfig(t), fhir.Options{})
	th.sendHL7(t, ormNW)
	testenv.WaitFor(t, "ImagingStudy registered", 10*time.Second, func() bool {
		_, err := th.fhir.Store().Get(t.Context(), "ImagingStudy", studyUID)
		return err == nil
	})
	th.store(t, 2, studyOptions(1, "1", 1))
	testenv.WaitFor(t, "ImagingStudy available", 10*time.Second, func() bool {
		st, err := th.fhir.Store().Get(t.Context(), "ImagingStudy", studyUID)
		return err == nil && strings.Contains(string(st.JSON), `"available"`)
	})
	th.sendHL7(t, oruF)
	testenv.WaitFor(t, "DiagnosticReport", 10*time.Second, func() bool {
		var b map[string]any
		get(t, th.base+"/DiagnosticReport", &b)
		return len(entriesOrNone(b)) == 1
	})

	// metadata
	rsp, err := http.Get(th.base + "/metadata")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rsp.Body)
	rsp.Body.Close()
	if rsp.StatusCode != 200 || rsp.Header.Get("Content-Type") != fhir.ContentType {
		t.Fatalf("metadata: %d %s", rsp.StatusCode, rsp.Header.Get("Content-Type"))
	}
	if cr, err := fhir.Unmarshal(body); err != nil || cr.GetCapabilityStatement() == nil {
		t.Fatalf("metadata is not a valid CapabilityStatement: %v", err)
	}

	// read, ETag, conditional read, vread
	var is map[string]any
	code, h := get(t, th.base+"/ImagingStudy/"+studyUID, &is)
	if code != 200 || h.Get("ETag") != fmt.Sprintf(`W/"%s"`, dig(is, "meta", "versionId")) {
		t.Fatalf("read: %d ETag %q meta %v", code, h.Get("ETag"), is["meta"])
	}
	req, _ := http.NewRequest("GET", th.base+"/ImagingStudy/"+studyUID, nil)
	req.Header.Set("If-None-Match", h.Get("ETag"))
	if rsp, err := http.DefaultClient.Do(req); err != nil || rsp.StatusCode != http.StatusNotModified {
		t.Fatalf("conditional read: %v %v", err, rsp.Status)
	}
	var v1 map[string]any
	if code, _ := get(t, th.base+"/ImagingStudy/"+studyUID+"/_history/1", &v1); code != 200 || v1["status"] != "registered" {
		t.Fatalf("vread 1: %d %v", code, v1["status"])
	}
	patient := dig(is, "subject", "reference").(string)
	basedOn := dig(is, "basedOn", 0, "reference").(string)

	tests := []struct {
		query string
		want  int
	}{
		{"ImagingStudy?patient=" + patient, 1},
		{"ImagingStudy?patient=" + strings.TrimPrefix(patient, "Patient/"), 1},
		{"ImagingStudy?subject=Patient/nobody", 0},
		{"ImagingStudy?identifier=" + url.QueryEscape("urn:dicom:uid|urn:oid:"+studyUID), 1},
		{"ImagingStudy?identifier=ACC-7001", 1},
		{"ImagingStudy?started=ge2025-01-01", 1},
		{"ImagingStudy?started=2025-01-01", 1},
		{"ImagingStudy?started=lt2025-01-01", 0},
		{"ImagingStudy?started=gt2025-01-01T09:00:00Z", 0},
		{"ImagingStudy?modality=CT", 1},
		{"ImagingStudy?modality=" + url.QueryEscape("http://dicom.nema.org/resources/ontology/DCM|CT"), 1},
		{"ImagingStudy?modality=MR", 0},
		{"ImagingStudy?status=available", 1},
		{"ImagingStudy?status=registered,cancelled", 0},
		{"ImagingStudy?basedon=" + basedOn, 1},
		{"ImagingStudy?based-on=" + basedOn + "&status=available&modality=CT", 1},
		{"Patient?identifier=TEST-7001", 1},
		{"Patient?name=testp", 1},
		{"Patient?family:exact=testpatient", 1},
		{"Patient?name=nobody", 0},
		{"Patient?birthdate=1980-01-01", 1},
		{"Patient?birthdate=1980", 1},
		{"ServiceRequest?identifier=PL-7001", 1},
		{"ServiceRequest?patient=" + patient + "&status=active", 1},
		{"DiagnosticReport?patient=" + patient, 1},
		{"DiagnosticReport?based-on=" + basedOn + "&status=final", 1},
		{"DiagnosticReport?status=preliminary", 0},
		{"Endpoint", 1},
		{"Endpoint?connection-type=dicom-wado-rs", 1},
	}
	for _, tt := range tests {
		if got := searchIDs(t, th.base+"/"+tt.query); len(got) != tt.want {
			t.Errorf("%s: %d results %v, want %d", tt.query, len(got), got, tt.want)
		}
	}

	// Paging: 45 more patients, 20 a page, following next links.
	for i := range 45 {
		p := &ppb.Patient{Id: &dpb.Id{Value: fmt.Sprintf("bulk-%02d", i)}, Active: &dpb.Boolean{Value: true}}
		if _, _, err := th.fhir.Store().Put(t.Context(), proto.Message(p)); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	next, pages := th.base+"/Patient?_count=20", 0
	var last map[string]any
	for next != "" {
		var b map[string]any
		get(t, next, &b)
		pages++
		next = ""
		for _, l := range b["link"].([]any) {
			if dig(l.(map[string]any), "relation") == "next" {
				next = dig(l.(map[string]any), "url").(string)
			}
		}
		for _, e := range entriesOrNone(b) {
			id := dig(e.(map[string]any), "resource", "id").(string)
			if seen[id] {
				t.Errorf("%s on two pages", id)
			}
			seen[id] = true
		}
		last = b
	}
	if pages != 3 || len(seen) != 46 || last["total"] != 46.0 {
		t.Errorf("paging: %d pages, %d patients, total %v", pages, len(seen), last["total"])
	}
}

func TestBadRequests(t *testing.T) {
	th := startHub(t, testConfig(t), fhir.Options{})
	tests := []struct {
		method, path, body, accept string
		status                     int
		code                       string
	}{
		{"GET", "/Observation", "", "", 404, "not-supported"},
		{"GET", "/Observation/1", "", "", 404, "not-supported"},
		{"GET", "/ImagingStudy/1.2.3", "", "", 404, "not-found"},
		{"GET", "/ImagingStudy?foo=bar", "", "", 400, "invalid"},
		{"GET", "/ImagingStudy?patient:missing=true", "", "", 400, "invalid"},
		{"GET", "/ImagingStudy?_count=lots", "", "", 400, "invalid"},
		{"GET", "/ImagingStudy?started=yesterday", "", "", 400, "invalid"},
		{"GET", "/ImagingStudy?started=ne2025-01-01", "", "", 400, "invalid"},
		{"GET", "/ImagingStudy?_sort=started", "", "", 400, "invalid"},
		{"GET", "/ImagingStudy", "", "application/fhir+xml", 406, "not-supported"},
		{"POST", "/Subscription", `{"resourceType": "Subscription", "status": `, "", 400, "structure"},
		{"POST", "/Subscription", `{"resourceType": "Subscription", "status": "active"}`, "", 400, "structure"},
		{"POST", "/Subscription", `{"resourceType": "Patient", "id": "x"}`, "", 400, "invalid"},
		{"POST", "/Subscription", subscriptionJSON("", "Observation?code=1", "http://127.0.0.1:1/hook", "", nil), "", 422, "processing"},
		{"POST", "/Subscription", subscriptionJSON("", "ImagingStudy?nonsense=1", "http://127.0.0.1:1/hook", "", nil), "", 422, "processing"},
		{"POST", "/Subscription", subscriptionJSON("", "ImagingStudy?status=available", "ftp://127.0.0.1/hook", "", nil), "", 422, "processing"},
		{"POST", "/Subscription", subscriptionJSON("", "ImagingStudy?status=available", "http://127.0.0.1:1/hook", "text/plain", nil), "", 422, "processing"},
		{"POST", "/Subscription", subscriptionJSON("", "http://example.test/SubscriptionTopic/other", "http://127.0.0.1:1/hook", "application/fhir+json", nil), "", 422, "processing"},
		{"PUT", "/Subscription/abc", subscriptionJSON("xyz", "ImagingStudy?status=available", "http://127.0.0.1:1/hook", "", nil), "", 400, "invalid"},
		{"DELETE", "/Subscription/none", "", "", 404, "not-found"},
		{"DELETE", "/ImagingStudy/1.2.3", "", "", 405, "not-supported"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, th.base+tt.path, strings.NewReader(tt.body))
		if tt.accept != "" {
			req.Header.Set("Accept", tt.accept)
		}
		rsp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rsp.Body)
		rsp.Body.Close()
		cr, err := fhir.Unmarshal(b)
		if rsp.StatusCode != tt.status || err != nil || cr.GetOperationOutcome() == nil {
			t.Errorf("%s %s: %d, want %d with an OperationOutcome (%v): %s", tt.method, tt.path, rsp.StatusCode, tt.status, err, b)
			continue
		}
		if got := cr.GetOperationOutcome().GetIssue()[0].GetCode().GetValue().String(); !strings.EqualFold(strings.ReplaceAll(got, "_", "-"), tt.code) {
			t.Errorf("%s %s: issue code %s, want %s", tt.method, tt.path, got, tt.code)
		}
	}
}

func subscriptionJSON(id, criteria, endpoint, payload string, headers []string) string {
	ch := fmt.Sprintf(`"type": "rest-hook", "endpoint": %q`, endpoint)
	if payload != "" {
		ch += fmt.Sprintf(`, "payload": %q`, payload)
	}
	if len(headers) > 0 {
		ch += `, "header": ["` + strings.Join(headers, `", "`) + `"]`
	}
	idField := ""
	if id != "" {
		idField = fmt.Sprintf(`"id": %q, `, id)
	}
	return fmt.Sprintf(`{"resourceType": "Subscription", %s"status": "requested", "reason": "test", "criteria": %q, "channel": {%s}}`, idField, criteria, ch)
}

// hookRecorder is a rest-hook endpoint that can be made to fail.
type hookRecorder struct {
	mu    sync.Mutex
	fail  bool
	calls []received
	auth  []string
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail {
		http.Error(w, "subscriber down", http.StatusInternalServerError)
		return
	}
	h.calls = append(h.calls, received{Method: r.Method, Path: r.URL.Path, Raw: b})
	h.auth = append(h.auth, r.Header.Get("Authorization"))
	w.WriteHeader(http.StatusOK)
}

func (h *hookRecorder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.calls)
}

// A merge (ADT A40, IHE PIR) retires the old Patient with a replaced-by
// link, and the studies it had name the survivor.
func TestPatientMerge(t *testing.T) {
	th := startHub(t, testConfig(t), fhir.Options{})
	adt := func(id, typ, body string) string {
		return "MSH|^~\\&|HIS|TESTHOSP|IMAGINGHUB|RADIOLOGY|20260315100000||ADT^" + typ + "|" + id + "|P|2.5.1\r" + body
	}
	th.sendHL7(t, adt("FHIR-ADT-1", "A04^ADT_A01", "PID|1||TEST-7001^^^TESTHOSP^MR||Testpatient^Fhir||19800101|F\r"))
	th.sendHL7(t, ormNW)
	testenv.WaitFor(t, "registered study", 10*time.Second, func() bool {
		_, err := th.fhir.Store().Get(t.Context(), "ImagingStudy", studyUID)
		return err == nil
	})
	var is map[string]any
	get(t, th.base+"/ImagingStudy/"+studyUID, &is)
	old := dig(is, "subject", "reference").(string)
	var p map[string]any
	testenv.WaitFor(t, "the study's patient with the registry's data", 10*time.Second, func() bool {
		p = nil
		get(t, th.base+"/"+old, &p)
		return dig(p, "name", 0, "family") == "Testpatient" && dig(p, "identifier", 0, "type", "coding", 0, "code") == "MR"
	})
	th.sendHL7(t, adt("FHIR-ADT-2", "A04^ADT_A01", "PID|1||TEST-9001^^^TESTHOSP^MR||Testpatient^Fhir||19800101|F\r"))
	th.sendHL7(t, adt("FHIR-ADT-3", "A40^ADT_A39", "EVN|A40|20260315110000\rPID|1||TEST-9001^^^TESTHOSP^MR||Testpatient^Fhir\rMRG|TEST-7001^^^TESTHOSP^MR\r"))
	testenv.WaitFor(t, "study moved to the survivor", 10*time.Second, func() bool {
		is = nil
		get(t, th.base+"/ImagingStudy/"+studyUID, &is)
		return dig(is, "subject", "reference") != old
	})
	survivor := dig(is, "subject", "reference").(string)
	p = nil
	get(t, th.base+"/"+old, &p)
	if p["active"] != false || dig(p, "link", 0, "type") != "replaced-by" || dig(p, "link", 0, "other", "reference") != survivor {
		t.Errorf("retired patient: %v", p)
	}
	p = nil
	get(t, th.base+"/"+survivor, &p)
	if dig(p, "identifier", 0, "value") != "TEST-9001" || dig(p, "link", 0, "type") != "replaces" {
		t.Errorf("survivor: %v", p)
	}
}

// An order cancelled before any image arrived: the ServiceRequest is
// revoked and the registered ImagingStudy cancelled.
func TestOrderCancelled(t *testing.T) {
	th := startHub(t, testConfig(t), fhir.Options{})
	th.sendHL7(t, ormNW)
	testenv.WaitFor(t, "registered study", 10*time.Second, func() bool {
		_, err := th.fhir.Store().Get(t.Context(), "ImagingStudy", studyUID)
		return err == nil
	})
	th.sendHL7(t, "MSH|^~\\&|RIS|TESTHOSP|IMAGINGHUB|RADIOLOGY|20260315094000||ORM^O01|FHIR-ORM-CA|P|2.3.1\r"+
		"PID|1||TEST-7001^^^TESTHOSP||Testpatient^Fhir\r"+
		"ORC|CA|PL-7001|FL-7001||CA\r")
	testenv.WaitFor(t, "cancelled study and revoked order", 10*time.Second, func() bool {
		return len(searchIDs(t, th.base+"/ImagingStudy?status=cancelled")) == 1 &&
			len(searchIDs(t, th.base+"/ServiceRequest?status=revoked&identifier=PL-7001")) == 1
	})
	// An older event arriving late (a redelivery, a replayed dead letter)
	// does not undo the cancellation.
	var sr map[string]any
	get(t, th.base+"/ServiceRequest?identifier=PL-7001", &sr)
	srID := dig(sr, "entry", 0, "resource", "id").(string)
	orderID, _ := strconv.ParseInt(strings.TrimPrefix(srID, "order-"), 10, 64)
	stale, err := events.New("test", events.TypeOrderScheduled, "PL-7001", risbridge.OrderEvent{
		Order: risbridge.Order{ID: orderID, OrderControl: "NW", Status: "SC", PlacerOrderNumber: "PL-7001", StudyInstanceUID: studyUID,
			Patient: risbridge.PatientRef{PatientID: "TEST-7001", IssuerOfPatientID: "TESTHOSP"}},
		MessageType: "ORM^O01"}, "stale-replay")
	if err != nil {
		t.Fatal(err)
	}
	ack, err := th.rt.Bus.Publish(t.Context(), stale)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the stale event handled", 10*time.Second, func() bool {
		c, err := th.rt.Bus.JetStream().Consumer(t.Context(), ack.Stream, "fhir-orders")
		if err != nil {
			return false
		}
		info, err := c.Info(t.Context())
		return err == nil && info.AckFloor.Stream >= ack.Sequence
	})
	if n := len(searchIDs(t, th.base+"/ServiceRequest?status=revoked&identifier=PL-7001")); n != 1 {
		t.Errorf("a stale order event undid the cancellation")
	}
	if n := len(searchIDs(t, th.base+"/ImagingStudy?status=cancelled")); n != 1 {
		t.Errorf("a stale order event undid the cancelled study")
	}
}

// ih.study.reconciled (as workflow emits it) links a study that arrived
// without a matching accession to its order and patient: basedOn and
// subject follow.
func TestReconciledStudy(t *testing.T) {
	testenv.DCMTK(t, "storescu")
	th := startHub(t, testConfig(t), fhir.Options{})
	th.sendHL7(t, ormNW)
	var sr map[string]any
	testenv.WaitFor(t, "the order", 10*time.Second, func() bool {
		sr = nil
		get(t, th.base+"/ServiceRequest?identifier=PL-7001", &sr)
		return len(entriesOrNone(sr)) == 1
	})
	orderID, _ := strconv.ParseInt(strings.TrimPrefix(dig(sr, "entry", 0, "resource", "id").(string), "order-"), 10, 64)
	other := "1.2.826.0.1.3680043.10.543.78" // neither its UID nor its accession is the order's
	th.store(t, 1, synth.Options{Seed: 9, StudyInstanceUID: other, SeriesInstanceUID: other + ".1", PatientID: "WALKIN-1", AccessionNumber: "NOACC"})
	testenv.WaitFor(t, "the unmatched study", 10*time.Second, func() bool {
		_, err := th.fhir.Store().Get(t.Context(), "ImagingStudy", other)
		return err == nil
	})
	rec, err := events.New("test", events.TypeStudyReconciled, other, map[string]any{
		"studyInstanceUID": other, "orderId": orderID, "matchedBy": "operator", "reason": "matched",
		"coercion": map[string]any{"patientID": "TEST-7001", "issuerOfPatientID": "TESTHOSP", "patientName": "Testpatient^Fhir"},
	}, other, "reconciled")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := th.rt.Bus.Publish(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	var is map[string]any
	testenv.WaitFor(t, "the study linked to its order", 10*time.Second, func() bool {
		is = nil
		get(t, th.base+"/ImagingStudy/"+other, &is)
		return dig(is, "basedOn", 0, "reference") == fmt.Sprintf("ServiceRequest/order-%d", orderID)
	})
	var p map[string]any
	get(t, th.base+"/"+dig(is, "subject", "reference").(string), &p)
	if dig(p, "identifier", 0, "value") != "TEST-7001" {
		t.Errorf("subject after reconciliation: %v", p)
	}
	if dig(is, "procedureCode", 0, "coding", 0, "code") != "CTCHEST" {
		t.Errorf("procedureCode from the order: %v", dig(is, "procedureCode"))
	}
}
