package risbridge_test

import (
	"fmt"
	"testing"

	"github.com/imaginghub/imaginghub/hl7"
	risbridge "github.com/imaginghub/imaginghub/ris-bridge"
)

// PID-18 (patient account number) of ORM^O01 and OMI^O23 is kept with the
// order: an XO without it keeps it, an XO with another replaces ID and
// assigning authority together, the HL7 null clears it; an order whose
// messages never carry one has none.
func TestOrderPatientAccount(t *testing.T) {
	th := startHub(t)
	orm := func(id, control, account string) string {
		return seg(
			fmt.Sprintf(`MSH|^~\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315090000||ORM^O01|%s|P|2.3.1`, id),
			`PID|1||PAT-0801^^^GENHOSP||Account^Anna||19851212|F||||||||||`+account,
			`PV1|1|O||||||||||||||||||V-801`,
			`ORC|`+control+`|PL-801|FL-801||SC`,
			`OBR|1|PL-801|FL-801|CTHEAD^CT head^L||||||||||||||ACC-801|RP-1|SPS-1|CT01_AE|||CT`)
	}
	omi := seg(`MSH|^~\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315091500||OMI^O23^OMI_O23|OMI-802|P|2.5.1`,
		`PID|1||PAT-0802^^^GENHOSP^MR||Account^Ben||19900202|M||||||||||AC-802^^^GENHOSP&2.16.840.1.113883.3.999&ISO`,
		`ORC|NW|PL-802|FL-802||SC`,
		`OBR|1|PL-802|FL-802|MRKNEE^MR knee^L`,
		`IPC|ACC-802|RP-2||SPS-2|MR|KNEE^Knee^L|MR01||MR01_AE`)
	steps := []struct {
		name, msg, accession, id, authority string
	}{
		{"ORM NW with PID-18", orm("ACCT-1", "NW", "AC-801^^^GENHOSP"), "ACC-801", "AC-801", "GENHOSP"},
		{"XO without PID-18 keeps it", orm("ACCT-2", "XO", ""), "ACC-801", "AC-801", "GENHOSP"},
		{"XO with another PID-18", orm("ACCT-3", "XO", "AC-809"), "ACC-801", "AC-809", ""},
		{"OMI with PID-18 and an HD authority", omi, "ACC-802", "AC-802", "GENHOSP&2.16.840.1.113883.3.999&ISO"},
		{"XO with the HL7 null clears it", orm("ACCT-4", "XO", `""`), "ACC-801", "", ""},
	}
	for i, st := range steps {
		if ack := th.send(t, st.msg); ack.Get("MSA-1") != string(hl7.AA) {
			t.Fatalf("%s: MSA-1 %s %s", st.name, ack.Get("MSA-1"), ack.Get("ERR-3"))
		}
		evs := th.waitEvents(t, i+1)
		var oe risbridge.OrderEvent
		if err := evs[i].DecodeData(&oe); err != nil {
			t.Fatal(err)
		}
		if oe.Patient.AccountNumber != st.id || oe.Patient.AccountAssigningAuthority != st.authority {
			t.Errorf("%s: event account %q %q, want %q %q", st.name, oe.Patient.AccountNumber, oe.Patient.AccountAssigningAuthority, st.id, st.authority)
		}
		var list []risbridge.Order
		if code := th.getJSON(t, "/api/orders?accession="+st.accession, &list); code != 200 || len(list) != 1 {
			t.Fatalf("%s: GET /api/orders: %d %+v", st.name, code, list)
		}
		var d risbridge.OrderDetail
		if code := th.getJSON(t, fmt.Sprintf("/api/orders/%d", list[0].ID), &d); code != 200 {
			t.Fatalf("%s: GET /api/orders/%d: %d", st.name, list[0].ID, code)
		}
		for _, o := range []risbridge.Order{list[0], d.Order} {
			if o.Patient.AccountNumber != st.id || o.Patient.AccountAssigningAuthority != st.authority {
				t.Errorf("%s: REST account %q %q, want %q %q", st.name, o.Patient.AccountNumber, o.Patient.AccountAssigningAuthority, st.id, st.authority)
			}
		}
	}
}
