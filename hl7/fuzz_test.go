package hl7

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse. Properties: no panic; a parsed
// message re-parses from its Bytes to the same header; every accessor is
// safe on it; and the reply this package would send (ACK, or AR from a
// partial header) always parses and acknowledges the right control ID.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.hl7"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|1||X\\F\\Y\\XE9\\~Z^^^&&\r",
		"MSH#*!@%#A##C##1##ORM*O01#9#P#2.3\rORC#NW\r",
		"MSH|^~\\&|||||||||||||||||8859/1\r",
		"MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.4||||||KOI8-R\r",
		"MSH|^\r",
		"MSH|",
		"MSH\x00",
		"\n\nMSH|^~\\&|A\nPID|\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Parse(raw)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			if pe.Header == nil {
				return
			}
			reply, err := NewACKFromHeader(*pe.Header, AR, &ACKOptions{
				Errors: []ErrorDetail{{Location: pe.Location, Code: pe.Code, Text: pe.Error()}},
			})
			if err != nil {
				t.Fatalf("AR for %q: %v", raw, err)
			}
			checkReply(t, reply, AR, pe.Header.MessageControlID)
			return
		}
		// Bytes is UTF-8 while MSH-18 still names the original set, so
		// only messages read as UTF-8 re-parse to the same text.
		if !m.dec.latin1 {
			again, err := Parse(m.Bytes())
			if err != nil {
				t.Fatalf("re-parse of %q: %v", m.Bytes(), err)
			}
			if again.Header() != m.Header() || len(again.All()) != len(m.All()) {
				t.Fatalf("re-parse changed the message:\n%+v\n%+v", m.Header(), again.Header())
			}
		}
		for _, s := range m.All() {
			for n := 0; n <= s.Len()+1; n++ {
				_ = s.Field(n)
				_ = s.SubComponent(n, 2, 2)
				for _, r := range s.Repetitions(n) {
					_ = r.Components()
				}
			}
		}
		reply, err := NewACK(m, AE, &ACKOptions{Text: m.Get("MSH-3"), Errors: []ErrorDetail{{Location: Location{Segment: "MSH", Field: 3}, Code: DataTypeError}}})
		if err != nil {
			t.Fatalf("ACK: %v", err)
		}
		checkReply(t, reply, AE, m.Header().MessageControlID)
	})
}

func checkReply(t *testing.T, reply []byte, code AckCode, controlID string) {
	t.Helper()
	ack, err := Parse(reply)
	if err != nil {
		t.Fatalf("reply does not parse: %v\n%q", err, reply)
	}
	if ack.AckCode() != code || ack.Get("MSA-2") != controlID {
		t.Fatalf("reply %q does not acknowledge %q with %s", reply, controlID, code)
	}
}
