package fhir_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/internal/testenv"

	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/fhir"
)

// Synthetic patients and orders only.
const (
	studyUID = "1.2.826.0.1.3680043.10.543.77"
	ormNW    = "MSH|^~\\&|RIS|TESTHOSP|IMAGINGHUB|RADIOLOGY|20260315090000||ORM^O01|FHIR-ORM-1|P|2.3.1\r" +
		"PID|1||TEST-7001^^^TESTHOSP^MR||Testpatient^Fhir||19800101|F\r" +
		"ORC|NW|PL-7001|FL-7001||SC||^^^20260316100000^^R|||||555^Orderer^Olga\r" +
		"OBR|1|PL-7001|FL-7001|CTCHEST^CT chest^L||||||||||||||ACC-7001|RP-7001|SPS-7001|CT01|||CT\r" +
		"ZDS|" + studyUID + "^100^Application^DICOM\r"
	oruF = "MSH|^~\\&|REPORTING|TESTHOSP|IMAGINGHUB|RADIOLOGY|20260315120000||ORU^R01^ORU_R01|FHIR-ORU-1|P|2.4\r" +
		"PID|1||TEST-7001^^^TESTHOSP||Testpatient^Fhir\r" +
		"OBR|1|PL-7001|FL-7001|CTCHEST^CT chest^L|||20260315113000|||||||||||ACC-7001\r" +
		"OBX|1|TX|REPORT^Report^L||No acute findings. Synthetic report.||||||F\r"
)

func studyOptions(seed int64, series string, number int) synth.Options {
	return synth.Options{Seed: seed, StudyInstanceUID: studyUID, SeriesInstanceUID: studyUID + "." + series, SeriesNumber: number,
		PatientID: "TEST-7001", PatientName: "Testpatient^Fhir", AccessionNumber: "ACC-7001"}
}

// An EMR gets the ImagingStudy with its Patient when the study becomes
// stable, an update when another series arrives, and the DiagnosticReport
// when the report comes; ordered before imaging, the study is registered.
func TestPushToEMR(t *testing.T) {
	for _, transaction := range []bool{false, true} {
		t.Run(fmt.Sprintf("transaction=%v", transaction), func(t *testing.T) {
			testenv.DCMTK(t, "storescu")
			emr := newEMR(t)
			th := startHub(t, testConfig(t), fhir.Options{Targets: []fhir.Target{emr.target("emr", transaction)}})

			th.sendHL7(t, ormNW)
			testenv.WaitFor(t, "registered ImagingStudy at the EMR", 10*time.Second, func() bool {
				is := emr.resources("ImagingStudy")
				return len(is) > 0 && is[len(is)-1].Body["status"] == "registered"
			})

			th.store(t, 2, studyOptions(1, "1", 1))
			testenv.WaitFor(t, "available ImagingStudy at the EMR", 10*time.Second, func() bool {
				is := emr.resources("ImagingStudy")
				return len(is) > 0 && is[len(is)-1].Body["status"] == "available"
			})
			is := emr.resources("ImagingStudy")
			last := is[len(is)-1]
			if !transaction && !strings.Contains(last.Query, "identifier=urn%3Adicom%3Auid%7Curn%3Aoid%3A"+studyUID) {
				t.Errorf("conditional update query %q", last.Query)
			}
			if got := dig(last.Body, "numberOfInstances"); got != 2.0 {
				t.Errorf("numberOfInstances %v", got)
			}
			subject, _ := dig(last.Body, "subject", "reference").(string)
			if transaction {
				if !strings.HasPrefix(subject, "urn:uuid:") {
					t.Errorf("subject in a transaction %q, want the Patient entry's urn:uuid", subject)
				}
			} else if subject != "Patient/100" {
				t.Errorf("subject %q, want the EMR's Patient/100", subject)
			}
			if dig(last.Body, "basedOn", 0, "identifier", "value") != "PL-7001" {
				t.Errorf("basedOn %v, want a logical reference to the order", dig(last.Body, "basedOn"))
			}
			if dig(last.Body, "contained", 0, "address") == nil || dig(last.Body, "endpoint", 0, "reference") != "#wado" {
				t.Errorf("endpoint %v / contained %v", dig(last.Body, "endpoint"), dig(last.Body, "contained"))
			}
			if !transaction {
				var pats []received
				for _, r := range emr.requests() {
					if r.Path == "/Patient" {
						pats = append(pats, r)
					}
				}
				if len(pats) == 0 || pats[0].IfNoneExist != "identifier=urn%3Aimaginghub%3Aissuer%3ATESTHOSP%7CTEST-7001" {
					t.Fatalf("patient conditional create: %+v", pats)
				}
			}

			th.store(t, 1, studyOptions(2, "2", 2))
			testenv.WaitFor(t, "ImagingStudy with two series", 10*time.Second, func() bool {
				is := emr.resources("ImagingStudy")
				return len(is) > 0 && dig(is[len(is)-1].Body, "numberOfSeries") == 2.0 && dig(is[len(is)-1].Body, "numberOfInstances") == 3.0
			})

			th.sendHL7(t, oruF)
			testenv.WaitFor(t, "DiagnosticReport at the EMR", 10*time.Second, func() bool { return len(emr.resources("DiagnosticReport")) > 0 })
			dr := emr.resources("DiagnosticReport")[0].Body
			if dr["status"] != "final" || dig(dr, "presentedForm", 0, "data") == nil {
				t.Errorf("report: %v", dr)
			}
			if dig(dr, "imagingStudy", 0, "identifier", "value") != "urn:oid:"+studyUID {
				t.Errorf("report imagingStudy %v", dig(dr, "imagingStudy"))
			}
			testenv.WaitFor(t, "ih.fhir.published events", 10*time.Second, func() bool {
				for _, p := range th.published() {
					if p.ResourceType == "DiagnosticReport" && p.Target == "emr" {
						return true
					}
				}
				return false
			})
			// Versions reach the EMR in order: never an older after a newer.
			assertOrdered(t, emr.resources("ImagingStudy"))
		})
	}
}

func assertOrdered(t *testing.T, rs []received) {
	t.Helper()
	prev := 0
	for _, r := range rs {
		n := 0
		if v, ok := dig(r.Body, "numberOfInstances").(float64); ok {
			n = int(v)
		}
		if n < prev {
			t.Errorf("ImagingStudy with %d instances arrived after one with %d", n, prev)
		}
		prev = n
	}
}

// A target that is down gets every version afterwards, in order, also
// across a restart of the hub while it is down.
func TestTargetOutage(t *testing.T) {
	testenv.DCMTK(t, "storescu")
	outage := time.Minute
	if testing.Short() {
		outage = 5 * time.Second
	}
	emr := newEMR(t)
	cfg := testConfig(t)
	opts := fhir.Options{Targets: []fhir.Target{emr.target("emr", false)}, PushAttempts: 1000,
		PushBackOff: []time.Duration{200 * time.Millisecond, time.Second, 2 * time.Second}}
	th := startHub(t, cfg, opts)
	emr.setDown(true)
	start := time.Now()
	th.store(t, 1, studyOptions(1, "1", 1))
	testenv.WaitFor(t, "first version stored", 10*time.Second, func() bool {
		st, err := th.fhir.Store().Get(t.Context(), "ImagingStudy", studyUID)
		return err == nil && strings.Contains(string(st.JSON), `"available"`)
	})
	th.store(t, 2, studyOptions(2, "2", 2))
	testenv.WaitFor(t, "second version stored", 10*time.Second, func() bool {
		st, err := th.fhir.Store().Get(t.Context(), "ImagingStudy", studyUID)
		return err == nil && strings.Contains(string(st.JSON), `"numberOfInstances":3`)
	})
	// Restart the hub while the target is still down.
	th.rt.Server.Shutdown(t.Context())
	th = startHub(t, cfg, opts)
	th.store(t, 1, studyOptions(3, "3", 3))
	testenv.WaitFor(t, "third version stored", 10*time.Second, func() bool {
		st, err := th.fhir.Store().Get(t.Context(), "ImagingStudy", studyUID)
		return err == nil && strings.Contains(string(st.JSON), `"numberOfInstances":4`)
	})
	time.Sleep(time.Until(start.Add(outage)))
	if n := len(emr.resources("ImagingStudy")); n != 0 {
		t.Fatalf("%d pushes accepted while down", n)
	}
	emr.setDown(false)
	testenv.WaitFor(t, "the latest version at the EMR", 30*time.Second, func() bool {
		is := emr.resources("ImagingStudy")
		return len(is) > 0 && dig(is[len(is)-1].Body, "numberOfInstances") == 4.0
	})
	assertOrdered(t, emr.resources("ImagingStudy"))
	t.Logf("after a %v outage the EMR got %d ImagingStudy versions", time.Since(start).Round(time.Second), len(emr.resources("ImagingStudy")))
}

var _ = http.StatusOK

// Bearer auth; a revoked OAuth2 token is fetched again after a 401; a
// resource the target refuses (422) is dead-lettered at once without
// holding up the next.
func TestPushAuthAndRefusal(t *testing.T) {
	testenv.DCMTK(t, "storescu")
	emr := newEMR(t)
	emr.bearer = "static-token"
	bearer := fhir.Target{Name: "bearer", URL: emr.srv.URL, Auth: fhir.AuthBearer, Token: "static-token"}
	oauth := emr.target("oauth", false)
	th := startHub(t, testConfig(t), fhir.Options{Targets: []fhir.Target{bearer, oauth}})

	th.store(t, 1, studyOptions(1, "1", 1))
	testenv.WaitFor(t, "both targets", 10*time.Second, func() bool {
		n := 0
		for _, p := range th.published() {
			if p.ResourceType == "ImagingStudy" {
				n++
			}
		}
		return n == 2
	})
	// The EMR forgets every token it issued: the next push gets a 401,
	// fetches a new token and goes through.
	emr.mu.Lock()
	emr.tokens = map[string]bool{}
	issued := emr.tokenReq
	emr.reject = "DiagnosticReport"
	emr.mu.Unlock()
	th.sendHL7(t, oruF)
	th.store(t, 1, studyOptions(2, "2", 2))
	testenv.WaitFor(t, "ImagingStudy version 2 at both targets", 20*time.Second, func() bool {
		n := 0
		for _, p := range th.published() {
			if p.ResourceType == "ImagingStudy" && p.VersionID >= 2 {
				n++
			}
		}
		return n >= 2
	})
	emr.mu.Lock()
	if emr.tokenReq <= issued || emr.denied == 0 {
		t.Errorf("token requests %d (before %d), 401s %d: want a new token after a 401", emr.tokenReq, issued, emr.denied)
	}
	emr.mu.Unlock()
	testenv.WaitFor(t, "refused report dead-lettered", 10*time.Second, func() bool {
		dls, err := th.rt.Bus.ListDeadLetters(t.Context(), events.DeadLetterFilter{Consumer: "fhir-push-oauth"})
		return err == nil && len(dls) == 1 && strings.Contains(dls[0].Error, "422")
	})
	for _, p := range th.published() {
		if p.ResourceType == "DiagnosticReport" {
			t.Errorf("refused report published to %s", p.Target)
		}
	}
}
