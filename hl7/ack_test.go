package hl7

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/golden/name, shown with CR as "\r\n"
// so the files read as text.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	show := bytes.ReplaceAll(got, []byte("\r"), []byte("\r\n"))
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, show, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(show, want) {
		t.Errorf("%s differs:\ngot:\n%s\nwant:\n%s", name, show, want)
	}
}

func TestACKGolden(t *testing.T) {
	fixed := time.Date(2026, 3, 15, 8, 30, 5, 0, time.FixedZone("", 3600))
	tests := []struct {
		golden string
		req    string
		code   AckCode
		opts   ACKOptions
	}{
		{"ack_aa_v251.hl7", "adt_a01_v251_utf8.hl7", AA, ACKOptions{}},
		{"ack_ae_v251.hl7", "omi_o23_v251.hl7", AE, ACKOptions{Text: "Order rejected", Errors: []ErrorDetail{
			{Location: Location{Segment: "IPC", Field: 1}, Code: RequiredFieldMissing, Text: "Accession Number missing"},
			{Location: Location{Segment: "PID", Field: 3, FieldRepetition: 2, Component: 4}, Code: TableValueNotFound, Severity: SeverityWarning},
		}}},
		{"ack_ar_v231.hl7", "orm_o01_v231.hl7", AR, ACKOptions{Errors: []ErrorDetail{
			{Location: Location{Segment: "MSH", Field: 9}, Code: UnsupportedMessageType},
			{Location: Location{Segment: "OBR", Field: 18}, Code: RequiredFieldMissing, Text: "OBR-18 empty"},
		}}},
		{"ack_ae_v24.hl7", "oru_r01_v24_escapes.hl7", AE, ACKOptions{Text: "Report a|b^c", Errors: []ErrorDetail{
			{Location: Location{Segment: "OBX", SegmentRepetition: 2, Field: 5}, Code: DataTypeError},
		}}},
		{"ack_aa_v23_latin1.hl7", "adt_a04_v23_latin1.hl7", AA, ACKOptions{}},
		{"ack_ae_v23_latin1_text.hl7", "adt_a04_v23_latin1.hl7", AE, ACKOptions{Text: "Patient Weiß locked", Errors: []ErrorDetail{
			{Code: ApplicationRecordLocked},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			req, err := Parse(mustRead(t, tt.req))
			if err != nil {
				t.Fatal(err)
			}
			tt.opts.Time = fixed
			tt.opts.MessageControlID = "ACK0001"
			got, err := NewACK(req, tt.code, &tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.golden, got)

			// The reply must itself parse, and say what it should.
			ack, err := Parse(got)
			if err != nil {
				t.Fatalf("ACK does not parse: %v", err)
			}
			h, rh := ack.Header(), req.Header()
			if h.SendingApplication != rh.ReceivingApplication || h.ReceivingFacility != rh.SendingFacility ||
				h.MessageType != "ACK" || h.TriggerEvent != rh.TriggerEvent || h.VersionID != rh.VersionID ||
				h.ProcessingID != rh.ProcessingID || h.MessageControlID != "ACK0001" {
				t.Errorf("ACK header %+v does not answer %+v", h, rh)
			}
			if ack.AckCode() != tt.code || ack.Get("MSA-2") != rh.MessageControlID || ack.Get("MSA-3") != tt.opts.Text {
				t.Errorf("MSA = %q", ack.Segment("MSA"))
			}
		})
	}
}

// A message whose MSH is only partly readable still gets an AR addressed
// with what was read.
func TestRejectFromPartialHeader(t *testing.T) {
	_, err := Parse([]byte("MSH|^~\\&|LAB|NORTH|HUB|RAD|20260101||ORU^R01|X42|P|2.5||||||KOI8-R\rPID|1\r"))
	pe, ok := err.(*ParseError)
	if !ok || pe.Header == nil {
		t.Fatalf("err = %v", err)
	}
	got, err := NewACKFromHeader(*pe.Header, AR, &ACKOptions{
		Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), MessageControlID: "R1",
		Errors: []ErrorDetail{{Location: pe.Location, Code: pe.Code, Text: pe.Error()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "ar_partial_charset.hl7", got)

	// Nothing readable but MSH-1: a reject with empty addressing.
	_, err = Parse([]byte("MSH|"))
	pe = err.(*ParseError)
	got, err = NewACKFromHeader(*pe.Header, AR, &ACKOptions{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), MessageControlID: "R2"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "ar_partial_minimal.hl7", got)

	// Unusable MSH-2 with a custom field separator: the reject keeps the
	// sender's field separator.
	_, err = Parse([]byte("MSH#^^#LAB#NORTH#HUB#RAD#1##ORU^R01#X43#P#2.4\r"))
	pe = err.(*ParseError)
	got, err = NewACKFromHeader(*pe.Header, AR, &ACKOptions{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), MessageControlID: "R3"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "MSH#^~\\&#HUB#RAD#LAB#NORTH#20260101000000+0000##ACK^R01^ACK#R3#P#2.4\rMSA#AR#X43\r"; string(got) != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestBuilder(t *testing.T) {
	var b Builder
	b.MSH(Header{SendingApplication: "HUB", SendingFacility: "RAD^1.2.3^ISO", ReceivingApplication: "PMS",
		DateTimeOfMessage: "20260315120000", MessageType: "DFT", TriggerEvent: "P03", MessageStructure: "DFT_P03",
		MessageControlID: "DFT1", VersionID: "2.5.1", CharacterSet: CharsetUTF8})
	b.Texts("EVN", "P03", "20260315120000")
	b.Segment("PID", Text("1"), Field{}, Repeat(Components("PAT-1", "", "", "H&1"), Field{}, Components("PAT-2")),
		Field{}, Components("Ünal", "Zoë|x"))
	b.Segment("FT1", Text("1"), RawField("raw^kept"), SubComponents([]string{"a", "b"}, []string{"c"}), Text(""), Field{})
	got, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want := "MSH|^~\\&|HUB|RAD^1.2.3^ISO|PMS||20260315120000||DFT^P03^DFT_P03|DFT1|P|2.5.1||||||UNICODE UTF-8\r" +
		"EVN|P03|20260315120000\r" +
		"PID|1||PAT-1^^^H\\T\\1~~PAT-2||Ünal^Zoë\\F\\x\r" +
		"FT1|1|raw^kept|a&b^c\r"
	if string(got) != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	m, err := Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if m.Get("PID-3.4") != "H&1" || m.Get("PID-3(3).1") != "PAT-2" || m.Get("PID-5.2") != "Zoë|x" || m.Get("FT1-3.1.2") != "b" {
		t.Errorf("built message reads back wrong: %q", m.Segment("PID"))
	}

	var bad Builder
	bad.Texts("pid", "1").Texts("MSH", "x")
	if _, err := bad.Bytes(); err == nil {
		t.Error("bad segment IDs accepted")
	}
}

func TestNewControlID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewControlID()
		if len(id) != 20 || strings.ContainsAny(id, `|^~\&`) || seen[id] {
			t.Fatalf("bad or repeated control ID %q", id)
		}
		seen[id] = true
	}
}

func TestErrorCodeString(t *testing.T) {
	if UnsupportedVersionID.String() != "Unsupported version id" || ErrorCode(999).String() != "Error 999" {
		t.Error("table 0357 text")
	}
}
