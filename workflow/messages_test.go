package workflow

import (
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/hl7"
)

func testWorkflow(format string) *Workflow {
	return &Workflow{opts: Options{RISStatusFormat: format, Application: "IMAGINGHUB", Facility: "RAD", Now: time.Now}}
}

var testOrder = orderRow{
	ID: 7, PlacerOrderNumber: "PL-7", FillerOrderNumber: "FL-7", AccessionNumber: "ACC-7", RequestedProcedureID: "RP-7",
	StudyInstanceUID: "1.2.3.7", ProcedureCode: "CTHEAD", ProcedureText: "CT head", ProcedureScheme: "L", Modality: "CT",
	Patient: Demographics{PatientName: "Synthetic^Sally^Q", PatientID: "SYN-7", IssuerOfPatientID: "GENHOSP", PatientBirthDate: "19800101", PatientSex: "F"},
}

// The order status messages put each key where IHE RAD TF-2 expects it.
func TestStatusMessage(t *testing.T) {
	at := time.Date(2026, 3, 15, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		format string
		want   map[string]string
	}{
		{"orm", map[string]string{"MSH-9.1": "ORM", "MSH-9.2": "O01", "MSH-12": "2.3.1", "ORC-1": "SC", "ORC-2": "PL-7", "ORC-3": "FL-7",
			"ORC-5": "CM", "OBR-4.1": "CTHEAD", "OBR-18": "ACC-7", "OBR-19": "RP-7", "OBR-24": "CT", "ZDS-1.1": "1.2.3.7",
			"PID-3.1": "SYN-7", "PID-3.4": "GENHOSP", "PID-5.1": "Synthetic", "PID-5.2": "Sally", "MSH-10": "CTRL1"}},
		{"omi", map[string]string{"MSH-9.1": "OMI", "MSH-9.2": "O23", "MSH-12": "2.5.1", "ORC-1": "SC", "ORC-5": "CM", "IPC-1": "ACC-7",
			"IPC-2": "RP-7", "IPC-3": "1.2.3.7", "IPC-5": "CT", "OBR-4.1": "CTHEAD"}},
	}
	for _, c := range cases {
		b, err := testWorkflow(c.format).statusMessage(testOrder, OrderCompleted, "CTRL1", at)
		if err != nil {
			t.Fatal(err)
		}
		m, err := hl7.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", c.format, err)
		}
		for loc, want := range c.want {
			if got := m.Get(loc); got != want {
				t.Errorf("%s %s = %q, want %q", c.format, loc, got, want)
			}
		}
	}
}

// DFT^P03 of a charge and of its reversal: same charge, CG then CD, each
// with its own deterministic MSH-10.
func TestDFT(t *testing.T) {
	w := testWorkflow("orm")
	posted := time.Date(2026, 3, 15, 10, 0, 0, 0, time.UTC)
	c := Charge{ID: 3, Key: "mpps:1.2.3:7", OrderID: 7, ProcedureCode: "CTHEAD", ProcedureText: "CT head", ProcedureCodingScheme: "L",
		Quantity: 1, PerformedAt: "20260315094500", OrderingProvider: "555^Orderer^Olga", FillerOrderNumber: "FL-7",
		Patient: testOrder.Patient, VisitNumber: "V-7", PatientAccount: "AC-7", PostedAt: posted}
	var ids []string
	for _, rev := range []bool{false, true, false} {
		b, err := w.DFT(c, rev, posted)
		if err != nil {
			t.Fatal(err)
		}
		m, err := hl7.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		typ := "CG"
		if rev {
			typ = "CD"
		}
		for loc, want := range map[string]string{"MSH-9.1": "DFT", "MSH-9.2": "P03", "EVN-1": "P03", "PID-18": "AC-7", "PV1-19": "V-7",
			"FT1-4": "20260315094500", "FT1-6": typ, "FT1-7.1": "CTHEAD", "FT1-10": "1", "FT1-21.1": "555", "FT1-21.3": "Olga",
			"FT1-23": "FL-7", "FT1-25.1": "CTHEAD", "FT1-25.3": "L"} {
			if got := m.Get(loc); got != want {
				t.Errorf("%s %s = %q, want %q", typ, loc, got, want)
			}
		}
		if id := m.Header().MessageControlID; len(id) == 0 || len(id) > 20 {
			t.Errorf("MSH-10 %q: 1 to 20 characters", id)
		}
		ids = append(ids, m.Header().MessageControlID)
	}
	if ids[0] == ids[1] || ids[0] != ids[2] {
		t.Errorf("MSH-10 of charge, credit, charge again: %v", ids)
	}
}

func TestSplitPN(t *testing.T) {
	for pn, want := range map[string][5]string{
		"":                  {},
		"Doe":               {"Doe"},
		"Doe^Jane^M^Dr^III": {"Doe", "Jane", "M", "III", "Dr"},
	} {
		got := splitPN(pn)
		if [5]string(got) != want {
			t.Errorf("splitPN(%q) = %v, want %v", pn, got, want)
		}
	}
}
