package hisbridge_test

import (
	"testing"

	hisbridge "github.com/imaginghub/imaginghub/his-bridge"
	"github.com/imaginghub/imaginghub/hl7"
	"github.com/imaginghub/imaginghub/hub/hubtest"
)

// PID-18 (patient account number, CX) is kept with the visit of PV1-19
// and with the patient: set by A01, left alone by a message without it,
// replaced by an A08 (ID and assigning authority together), cleared by
// the HL7 null; a patient whose messages never carry it has none.
func TestADTPatientAccount(t *testing.T) {
	th := startHub(t, hubtest.Config(t))
	type acct = *hisbridge.Identifier
	steps := []struct {
		name          string
		msg           string
		visit         string
		want          acct
		wantOther     acct // the first visit, after the second was opened
		otherVisitNum string
	}{
		{"A01 with PID-18", seg(
			`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315083000||ADT^A01^ADT_A01|ACC-1|P|2.5.1`,
			`EVN|A01|20260315083000`,
			`PID|1||PAT-7001^^^GENHOSP^MR||Account^Alice||19700101|F||||||||||AC-7001^^^GENHOSP&2.16.840.1.113883.3.999&ISO^AN`,
			`PV1|1|I|RAD^101^A||||||||||||||||V7001`), "V7001",
			&hisbridge.Identifier{IDNumber: "AC-7001", AssigningAuthority: "GENHOSP&2.16.840.1.113883.3.999&ISO"}, nil, ""},
		{"A08 without PID-18 keeps it", seg(
			`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315090000||ADT^A08^ADT_A01|ACC-2|P|2.5.1`,
			`EVN|A08`,
			`PID|1||PAT-7001^^^GENHOSP^MR||Account^Alice||19700101|F`,
			`PV1|1|I|RAD^102^A||||||||||||||||V7001`), "V7001",
			&hisbridge.Identifier{IDNumber: "AC-7001", AssigningAuthority: "GENHOSP&2.16.840.1.113883.3.999&ISO"}, nil, ""},
		{"A08 changes PID-18", seg(
			`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315091000||ADT^A08^ADT_A01|ACC-3|P|2.5.1`,
			`EVN|A08`,
			`PID|1||PAT-7001^^^GENHOSP^MR||Account^Alice||19700101|F||||||||||AC-7002`,
			`PV1|1|I|RAD^102^A||||||||||||||||V7001`), "V7001",
			&hisbridge.Identifier{IDNumber: "AC-7002"}, nil, ""},
		{"A04 opens a second visit with its own account", seg(
			`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260316080000||ADT^A04^ADT_A01|ACC-4|P|2.5.1`,
			`EVN|A04`,
			`PID|1||PAT-7001^^^GENHOSP^MR||Account^Alice||19700101|F||||||||||AC-7003^^^GENHOSP`,
			`PV1|1|O|RAD^1^A||||||||||||||||V7002`), "V7002",
			&hisbridge.Identifier{IDNumber: "AC-7003", AssigningAuthority: "GENHOSP"}, &hisbridge.Identifier{IDNumber: "AC-7002"}, "V7001"},
		{"A08 with the HL7 null clears it", seg(
			`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260316090000||ADT^A08^ADT_A01|ACC-5|P|2.5.1`,
			`EVN|A08`,
			`PID|1||PAT-7001^^^GENHOSP^MR||Account^Alice||19700101|F||||||||||""`,
			`PV1|1|O|RAD^1^A||||||||||||||||V7002`), "V7002",
			nil, &hisbridge.Identifier{IDNumber: "AC-7002"}, "V7001"},
	}
	same := func(a, b acct) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }
	for i, st := range steps {
		ack := th.send(t, st.msg)
		if ack.Get("MSA-1") != string(hl7.AA) {
			t.Fatalf("%s: MSA-1 %s %s", st.name, ack.Get("MSA-1"), ack.Get("ERR-3"))
		}
		evs := th.events.Wait(t, i+1)
		var pe hisbridge.PatientEvent
		if err := evs[i].DecodeData(&pe); err != nil {
			t.Fatal(err)
		}
		if pe.Visit == nil || pe.Visit.VisitNumber != st.visit || !same(pe.Visit.Account, st.want) {
			t.Errorf("%s: event visit %+v, want account %+v", st.name, pe.Visit, st.want)
		}
		if !same(pe.Account, st.want) {
			t.Errorf("%s: event patient account %+v, want %+v", st.name, pe.Account, st.want)
		}
		var list []hisbridge.Patient
		if code := th.getJSON(t, "/api/patients?identifier=PAT-7001^GENHOSP", &list); code != 200 || len(list) != 1 {
			t.Fatalf("%s: GET /api/patients: %d %+v", st.name, code, list)
		}
		if !same(list[0].Account, st.want) {
			t.Errorf("%s: REST patient account %+v, want %+v", st.name, list[0].Account, st.want)
		}
		for _, v := range list[0].Visits {
			switch v.VisitNumber {
			case st.visit:
				if !same(v.Account, st.want) {
					t.Errorf("%s: REST visit %s account %+v, want %+v", st.name, v.VisitNumber, v.Account, st.want)
				}
			case st.otherVisitNum:
				if !same(v.Account, st.wantOther) {
					t.Errorf("%s: REST visit %s account %+v, want %+v", st.name, v.VisitNumber, v.Account, st.wantOther)
				}
			}
		}
	}

	// A patient whose messages carry no PID-18 has no account.
	th.send(t, seg(
		`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260316100000||ADT^A04^ADT_A01|ACC-6|P|2.5.1`,
		`PID|1||PAT-7002^^^GENHOSP^MR||Account^Bob||19710101|M`,
		`PV1|1|O|RAD^1^A||||||||||||||||V7010`))
	th.events.Wait(t, len(steps)+1)
	var list []hisbridge.Patient
	if code := th.getJSON(t, "/api/patients?identifier=PAT-7002^GENHOSP", &list); code != 200 || len(list) != 1 {
		t.Fatalf("GET /api/patients: %d %+v", code, list)
	}
	if list[0].Account != nil || len(list[0].Visits) != 1 || list[0].Visits[0].Account != nil {
		t.Errorf("patient without PID-18: account %+v visits %+v", list[0].Account, list[0].Visits)
	}
}
