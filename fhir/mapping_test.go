package fhir

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	ispb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/imaging_study_go_proto"
	subpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/subscription_go_proto"

	"github.com/imaginghub/imaginghub/catalog"
	hisbridge "github.com/imaginghub/imaginghub/his-bridge"
	risbridge "github.com/imaginghub/imaginghub/ris-bridge"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// Synthetic test data only.
var (
	testOrder = &risbridge.Order{
		ID: 7, OrderControl: "NW", Status: "SC",
		PlacerOrderNumber: "PL-1001", FillerOrderNumber: "FI-2002", AccessionNumber: "ACC0001",
		StudyInstanceUID:   "1.2.826.0.1.3680043.10.543.1",
		RequestedProcedure: risbridge.Code{Code: "RPID-CT-CHEST", Text: "CT chest without contrast", CodingScheme: "L"},
		Priority:           "R", OrderingProvider: "1234^TEST^ORDERING", ReferringProvider: "Doe^Referring",
		Reason:    "Cough",
		Patient:   risbridge.PatientRef{PatientID: "TEST-0001", IssuerOfPatientID: "TESTHOSP", PatientName: "Testpatient^Alpha", PatientBirthDate: "19800101", PatientSex: "F"},
		Steps:     []risbridge.Step{{Modality: "CT", ScheduledStart: "2026-01-05T09:30:00Z"}},
		CreatedAt: time.Date(2026, 1, 4, 8, 0, 0, 0, time.UTC),
	}
	testStudy = &catalog.StudyRecord{
		Patient: catalog.Patient{PatientID: "TEST-0001", IssuerOfPatientID: "TESTHOSP", PatientName: "Testpatient^Alpha", PatientBirthDate: "19800101", PatientSex: "F"},
		Study: catalog.Study{
			StudyInstanceUID: "1.2.826.0.1.3680043.10.543.1", StudyDate: "20260105", StudyTime: "093512.250",
			AccessionNumber: "ACC0001", ReferringPhysicianName: "Doe^Referring", StudyDescription: "CT CHEST",
			ModalitiesInStudy: []string{"CT", "SR"}, NumberOfStudyRelatedSeries: 2, NumberOfStudyRelatedInstances: 3,
		},
	}
	testSeries = []SeriesInput{
		{
			Series: catalog.Series{SeriesInstanceUID: "1.2.826.0.1.3680043.10.543.1.1", Modality: "CT", SeriesNumber: 1, SeriesDescription: "Axial 1mm",
				BodyPartExamined: "CHEST", Laterality: "", SeriesDate: "20260105", SeriesTime: "0936", NumberOfSeriesRelatedInstances: 2},
			Instances: []catalog.Instance{
				{SOPInstanceUID: "1.2.826.0.1.3680043.10.543.1.1.1", SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", InstanceNumber: 1},
				{SOPInstanceUID: "1.2.826.0.1.3680043.10.543.1.1.2", SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", InstanceNumber: 2},
			},
		},
		{
			Series:    catalog.Series{SeriesInstanceUID: "1.2.826.0.1.3680043.10.543.1.2", Modality: "SR", SeriesNumber: 99, BodyPartExamined: "KNEE", Laterality: "L", NumberOfSeriesRelatedInstances: 1},
			Instances: []catalog.Instance{{SOPInstanceUID: "1.2.826.0.1.3680043.10.543.1.2.1", SOPClassUID: "1.2.840.10008.5.1.4.1.1.88.11"}},
		},
	}
	testPatient = PatientInput{
		Identifiers: []hisbridge.Identifier{{IDNumber: "TEST-0001", AssigningAuthority: "TESTHOSP", IdentifierTypeCode: "MR"}, {IDNumber: "X9", AssigningAuthority: "&1.2.3.4.5&ISO"}},
		Name:        hisbridge.PersonName{Family: "Testpatient", Given: "Alpha", Middle: "B", Prefix: "Dr"},
		BirthDate:   "19800101", Sex: "F",
		Address: hisbridge.Address{Street: "1 Test Street", City: "Testville", PostalCode: "00000", Country: "XX"},
		Phone:   "555-0100",
	}
)

func goldenCases() map[string]proto.Message {
	pid := PatientID(PatientIdentifiers(testPatient.Identifiers)[0])
	return map[string]proto.Message{
		"imagingstudy_available": ImagingStudy(StudyInput{
			StudyInstanceUID: testStudy.Study.StudyInstanceUID, Study: testStudy, Series: testSeries, Order: testOrder,
			Subject: "Patient/" + pid, BasedOn: []string{"ServiceRequest/" + ServiceRequestID(7)},
			Location: time.FixedZone("CET", 3600),
		}),
		"imagingstudy_registered": ImagingStudy(StudyInput{StudyInstanceUID: testOrder.StudyInstanceUID, Order: testOrder, Subject: "Patient/" + pid, BasedOn: []string{"ServiceRequest/order-7"}}),
		"imagingstudy_cancelled": ImagingStudy(StudyInput{StudyInstanceUID: testOrder.StudyInstanceUID, Order: &risbridge.Order{ID: 7, OrderControl: "CA", Status: "CA", AccessionNumber: "ACC0001"},
			Subject: "Patient/" + pid}),
		"patient":        Patient(pid, testPatient),
		"patient_merged": Patient("p-old", PatientInput{Identifiers: []hisbridge.Identifier{{IDNumber: "OLD-1"}}, ReplacedBy: "Patient/" + pid}),
		"patient_dicom":  Patient("p-dicom", PatientFromRef(risbridge.PatientRef{PatientID: "TEST-0002", PatientName: "Doe^Jane^^Ms", PatientSex: "O"})),
		"servicerequest": ServiceRequest(testOrder, "Patient/"+pid),
		"diagnosticreport": DiagnosticReport(ReportInput{
			Report:  risbridge.Report{ID: 3, OrderID: 7, AccessionNumber: "ACC0001", ResultStatus: "F", Text: "No acute findings.\nSynthetic report.", ObservationTime: "2026-01-05T10:00:00Z"},
			Subject: "Patient/" + pid, BasedOn: "ServiceRequest/order-7", ImagingStudy: "ImagingStudy/1.2.826.0.1.3680043.10.543.1",
			Issued: time.Date(2026, 1, 5, 10, 5, 0, 0, time.UTC),
		}),
		"endpoint":            Endpoint("https://hub.example.test/dicomweb"),
		"capabilitystatement": CapabilityStatement("https://hub.example.test/fhir"),
		"operationoutcome":    OperationOutcome(cpb.IssueSeverityCode_ERROR, cpb.IssueTypeCode_NOT_FOUND, "resource not found"),
		"notification_topic": TopicNotification("https://hub.example.test/fhir",
			&subpb.Subscription{Id: fid("sub1"), Status: &subpb.Subscription_StatusCode{Value: cpb.SubscriptionStatusCode_ACTIVE}},
			TopicImagingStudy, "ImagingStudy", testStudy.Study.StudyInstanceUID, 3, time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC), payloadIDOnly, nil),
	}
}

// Every mapping serializes, round-trips through the validating
// unmarshaller of google/fhir/go, and matches its golden file.
func TestMappingGolden(t *testing.T) {
	for name, res := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			b, err := Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			cr, err := Unmarshal(b)
			if err != nil {
				t.Fatalf("validating unmarshal: %v\n%s", err, b)
			}
			back := Resource(cr)
			if !proto.Equal(normalize(t, back), normalize(t, res)) {
				t.Errorf("round trip changed the resource:\n%s", b)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, b, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			path := filepath.Join("testdata", name+".json")
			if *update {
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("golden file (run with -update): %v", err)
			}
			if !bytes.Equal(want, pretty.Bytes()) {
				t.Errorf("%s differs from the mapping (run with -update to accept):\n%s", path, pretty.Bytes())
			}
		})
	}
}

// normalize re-marshals through JSON so that typed and untyped references
// compare equal.
func normalize(t *testing.T, m proto.Message) proto.Message {
	t.Helper()
	b, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	cr, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return Resource(cr)
}

func TestDICOMDateTime(t *testing.T) {
	tests := []struct{ da, tm, want string }{
		{"20260105", "093512.250", "2026-01-05T09:35:12.250Z"},
		{"20260105", "0935", "2026-01-05T09:35:00Z"},
		{"20260105", "", "2026-01-05"},
		{"20260105", "09:35:12", "2026-01-05T09:35:12Z"},
		{"2026", "", ""},
		{"", "1200", ""},
		{"20261305", "", ""},
	}
	for _, tt := range tests {
		dt := dicomDateTime(tt.da, tt.tm, time.UTC)
		got := ""
		if dt != nil {
			b, err := Marshal(&ispb.ImagingStudy{Status: &ispb.ImagingStudy_StatusCode{Value: cpb.ImagingStudyStatusCode_AVAILABLE}, Subject: ref("Patient/x"), Started: dt})
			if err != nil {
				t.Fatal(err)
			}
			var v struct{ Started string }
			json.Unmarshal(b, &v)
			got = v.Started
		}
		if got != tt.want {
			t.Errorf("dicomDateTime(%q, %q) = %q, want %q", tt.da, tt.tm, got, tt.want)
		}
	}
}

func TestIssuerSystem(t *testing.T) {
	tests := map[string]string{
		"":                       "",
		"1.2.3.4":                "urn:oid:1.2.3.4",
		"HOSP&1.2.3.4&ISO":       "urn:oid:1.2.3.4",
		"HOSP&&":                 "urn:imaginghub:issuer:HOSP",
		"https://id.example/mrn": "https://id.example/mrn",
		"TEST HOSP":              "urn:imaginghub:issuer:TEST%20HOSP",
	}
	for in, want := range tests {
		if got := IssuerSystem(in); got != want {
			t.Errorf("IssuerSystem(%q) = %q, want %q", in, got, want)
		}
	}
}
