package hisbridge_test

import (
	"testing"

	hisbridge "github.com/imaginghub/imaginghub/his-bridge"
	"github.com/imaginghub/imaginghub/hl7"
)

// FuzzParseADT: content checks of network input never panic, and a message
// they pass has an identifier to file it under.
func FuzzParseADT(f *testing.F) {
	for _, s := range []string{
		"MSH|^~\\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315||ADT^A01|1|P|2.5.1\rPID|1||P-1^^^GENHOSP^MR||Doe^Jane||19700101|F\rPV1|1|I|W^1\r",
		"MSH|^~\\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315||ADT^A40|2|P|2.5.1\rPID|1||P-2\rMRG|P-1~P-0^^^X\r",
		"MSH|^~\\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315||ADT^A03|3|P|2.3\nPID|1||\"\"||\"\"\nPV1||||||||||||||||||\\F\\\n",
		"MSH|^~\\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315||ADT^A08|4|P|2.4\rPID|1||~~^^^&&\r",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		msg, err := hl7.Parse(raw)
		if err != nil {
			return
		}
		a, errs := hisbridge.ParseADT(msg)
		if len(errs) == 0 && len(a.Identifiers) == 0 {
			t.Fatalf("accepted without PID-3: %q", raw)
		}
		for _, e := range errs {
			if e.Code == 0 || e.Location.Segment == "" {
				t.Fatalf("error without code or location: %+v", e)
			}
		}
	})
}
