package risbridge_test

import (
	"testing"

	"github.com/imaginghub/imaginghub/hl7"
	risbridge "github.com/imaginghub/imaginghub/ris-bridge"
)

// FuzzValidate: content checks of ORM, OMI and ORU never panic, and an
// order they pass has an order number and a patient.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{ormNW, omiNW, ormXO, ormCA, oruP, oruC,
		"MSH|^~\\&|RIS|H|IH|R|2026||ORM^O01|1|P|2.3.1\rORC|NW\rIPC|\rOBR\rZDS|..\r",
		"MSH|^~\\&|RIS|H|IH|R|2026||OMI^O23|1|P|2.5.1\rPID|1||X\rORC|SC|P\rTQ1|1||||||x\rOBR|1\rIPC|A|B|1.2|D\r",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		msg, err := hl7.Parse(raw)
		if err != nil {
			return
		}
		if msg.Header().MessageType == "ORU" {
			r, errs := risbridge.ParseReport(msg)
			if len(errs) == 0 && r.Patient.PatientID == "" {
				t.Fatalf("report accepted without PID-3: %q", raw)
			}
			return
		}
		orders, errs := risbridge.ParseOrders(msg)
		if len(errs) > 0 {
			return
		}
		for _, o := range orders {
			if o.PlacerOrderNumber == "" && o.FillerOrderNumber == "" || o.Patient.PatientID == "" {
				t.Fatalf("order accepted without order number or patient: %+v", o)
			}
		}
	})
}
