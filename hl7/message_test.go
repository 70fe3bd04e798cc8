package hl7

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func mustRead(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseSamples(t *testing.T) {
	tests := []struct {
		file string
		want map[string]string // location → value
		hdr  Header
	}{
		{"adt_a01_v251_utf8.hl7", map[string]string{
			"PID-3":      "PAT-0001^^^GENHOSP^MR",
			"PID-3.1":    "PAT-0001",
			"PID-3(2).1": "99-88-77",
			"PID-3(2).4": "NATID",
			"PID-3(3).1": "",
			"PID-5.1":    "Test",
			"PID-5.2":    "Jörg",
			"PID-5.3":    "Ünal",
			"PID-11.1":   "Teststraße 1",
			"PID-11.3":   "Müllheim",
			"PV1-3.2":    "101",
			"PV1-19":     "V0001",
			"MSH-1":      "|",
			"MSH-2":      `^~\&`,
			"MSH-4.2":    "1.2.840.99999.1",
			"MSH-9.3":    "ADT_A01",
			"EVN-1":      "A01",
			"ZZZ-1":      "",
			"PID-99":     "",
		}, Header{FieldSeparator: '|', EncodingCharacters: `^~\&`, SendingApplication: "HIS",
			SendingFacility: "GENHOSP^1.2.840.99999.1^ISO", ReceivingApplication: "IMAGINGHUB", ReceivingFacility: "RADIOLOGY",
			DateTimeOfMessage: "20260315083000+0100", MessageType: "ADT", TriggerEvent: "A01", MessageStructure: "ADT_A01",
			MessageControlID: "MSG00001", ProcessingID: "P", VersionID: "2.5.1", CharacterSet: "UNICODE UTF-8"}},
		{"orm_o01_v231.hl7", map[string]string{
			"ORC-1":   "NW",
			"ORC-7.4": "20260316100000",
			"OBR-18":  "ACC-5001",
			"OBR-19":  "RP-1",
			"OBR-20":  "SPS-1",
			"OBR-24":  "CT",
			"OBR-4.2": "CT head w/o contrast",
			"ZDS-1.1": "1.2.826.0.1.3680043.8.498.1",
		}, Header{FieldSeparator: '|', EncodingCharacters: `^~\&`, SendingApplication: "RIS", SendingFacility: "GENHOSP",
			ReceivingApplication: "IMAGINGHUB", ReceivingFacility: "RADIOLOGY", DateTimeOfMessage: "20260315090000",
			MessageType: "ORM", TriggerEvent: "O01", MessageControlID: "ORM-2026-0042", ProcessingID: "P", VersionID: "2.3.1"}},
		{"omi_o23_v251.hl7", map[string]string{
			"IPC-1": "ACC-5002", "IPC-3": "1.2.826.0.1.3680043.8.498.2", "IPC-9": "MR01_AE", "TQ1-7": "20260317110000", "IPC-6.2": "Knee protocol",
		}, Header{FieldSeparator: '|', EncodingCharacters: `^~\&`, SendingApplication: "RIS", SendingFacility: "GENHOSP",
			ReceivingApplication: "IMAGINGHUB", ReceivingFacility: "RADIOLOGY", DateTimeOfMessage: "20260315091500",
			MessageType: "OMI", TriggerEvent: "O23", MessageStructure: "OMI_O23", MessageControlID: "OMI-77", ProcessingID: "P", VersionID: "2.5.1"}},
		{"oru_r01_v24_escapes.hl7", map[string]string{
			"OBX-5":       "Findings| none^ clear& lungs~ ok\\ end\\.br\\Line two \r\n é",
			"OBX(2)-5":    "Normal",
			"OBX(2)-5(2)": "No change",
			"OBX(2)-11":   "F",
			"OBX(3)-1":    "",
			"OBR-25":      "F",
		}, Header{FieldSeparator: '|', EncodingCharacters: `^~\&`, SendingApplication: "REPORTING", SendingFacility: "GENHOSP",
			ReceivingApplication: "IMAGINGHUB", ReceivingFacility: "RADIOLOGY", DateTimeOfMessage: "20260315120000",
			MessageType: "ORU", TriggerEvent: "R01", MessageStructure: "ORU_R01", MessageControlID: "ORU-9", ProcessingID: "P", VersionID: "2.4"}},
		{"adt_a08_v23_lf.hl7", map[string]string{"EVN-1": "A08", "PID-5.2": "Line", "PID-3": "PAT-0005"},
			Header{FieldSeparator: '|', EncodingCharacters: `^~\&`, SendingApplication: "HIS", SendingFacility: "GENHOSP",
				ReceivingApplication: "IMAGINGHUB", ReceivingFacility: "RADIOLOGY", DateTimeOfMessage: "20260315100000",
				MessageType: "ADT", TriggerEvent: "A08", MessageControlID: "LF-1", ProcessingID: "P", VersionID: "2.3"}},
		{"adt_a04_v23_latin1.hl7", map[string]string{"PID-5.1": "Weiß", "PID-5.2": "Zoë"},
			Header{FieldSeparator: '|', EncodingCharacters: `^~\&`, SendingApplication: "HIS", SendingFacility: "GENHOSP",
				ReceivingApplication: "IMAGINGHUB", ReceivingFacility: "RADIOLOGY", DateTimeOfMessage: "20260315100000",
				MessageType: "ADT", TriggerEvent: "A04", MessageControlID: "L1-1", ProcessingID: "P", VersionID: "2.3", CharacterSet: "8859/1"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m, err := Parse(mustRead(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Header(); got != tt.hdr {
				t.Errorf("Header() =\n%+v\nwant\n%+v", got, tt.hdr)
			}
			for loc, want := range tt.want {
				if got := m.Get(loc); got != want {
					t.Errorf("Get(%q) = %q, want %q", loc, got, want)
				}
			}
		})
	}
}

func TestSegmentAccessors(t *testing.T) {
	raw := "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\r" +
		"PID|1||ID1^^^H1&1.2.3&ISO~ID2^^^H2||Doe^John\\S\\Jr^^^^^L|||\r" +
		"OBX|1\rOBX|2\r"
	m, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	pid := m.Segment("PID")
	if pid.Name() != "PID" || pid.Len() != 8 {
		t.Errorf("Name, Len = %q, %d", pid.Name(), pid.Len())
	}
	checks := []struct{ got, want string }{
		{pid.Field(1), "1"},
		{pid.Field(2), ""},
		{pid.Raw(3), "ID1^^^H1&1.2.3&ISO~ID2^^^H2"},
		{pid.Component(3, 1), "ID1"},
		{pid.Component(3, 4), "H1&1.2.3&ISO"},
		{pid.SubComponent(3, 4, 2), "1.2.3"},
		{pid.SubComponent(3, 4, 4), ""},
		{pid.Component(5, 2), "John^Jr"},
		{pid.Component(5, 7), "L"},
		{pid.Component(5, 8), ""},
		{pid.Field(8), ""},
		{pid.Field(0), ""},
		{pid.Component(1, 1), "1"},
	}
	for i, c := range checks {
		if c.got != c.want {
			t.Errorf("check %d: got %q, want %q", i, c.got, c.want)
		}
	}
	reps := pid.Repetitions(3)
	if len(reps) != 2 || reps[1].Component(4) != "H2" || reps[0].Raw() != "ID1^^^H1&1.2.3&ISO" {
		t.Errorf("Repetitions(3) = %+v", reps)
	}
	if got := reps[0].Components(); len(got) != 4 || got[3] != "H1&1.2.3&ISO" {
		t.Errorf("Components() = %q", got)
	}
	if n := len(pid.Repetitions(2)); n != 0 {
		t.Errorf("empty field has %d repetitions", n)
	}
	if n := len(m.Segments("OBX")); n != 2 {
		t.Errorf("Segments(OBX) = %d", n)
	}
	if m.Segment("ZZZ") != nil || len(m.Segments("ZZZ")) != 0 {
		t.Error("absent segment found")
	}
	if got := len(m.All()); got != 4 {
		t.Errorf("All() = %d segments", got)
	}
	if m.Get("bad location") != "" || m.Get("OBX(2)-1") != "2" || m.Get("OBX(2)") != "OBX|2" {
		t.Error("Get with segment repetition")
	}
}

// A sender may declare other delimiters in MSH-1/MSH-2 (HL7 2.5.1 §2.5.4).
func TestParseCustomDelimiters(t *testing.T) {
	raw := "MSH#*!@%#A#B#C#D#20260101##ADT*A01#42#P#2.5\rPID#1##X*Y!Z@F@W*@S@##Doe*Jane\r"
	m, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	d := m.Delimiters()
	if d != (Delimiters{'#', '*', '!', '@', '%'}) {
		t.Fatalf("Delimiters = %q", []byte{d.Field, d.Component, d.Repetition, d.Escape, d.SubComponent})
	}
	for loc, want := range map[string]string{
		"MSH-9.2": "A01", "PID-3.1": "X", "PID-3(2).1": "Z#W", "PID-3(2).2": "*", "PID-5.2": "Jane", "MSH-1": "#", "MSH-2": "*!@%",
	} {
		if got := m.Get(loc); got != want {
			t.Errorf("Get(%q) = %q, want %q", loc, got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name       string
		raw        string
		err        error
		code       ErrorCode
		loc        string
		wantHeader bool
		controlID  string
	}{
		{"empty", "", ErrNoMSH, SegmentSequenceError, "MSH", false, ""},
		{"no MSH", "PID|1|2\r", ErrNoMSH, SegmentSequenceError, "MSH", false, ""},
		{"binary", "\x00\x01\x02\xff\xfe", ErrNoMSH, SegmentSequenceError, "MSH", false, ""},
		{"letter as field separator", "MSHX^~\\&XA", ErrDelimiters, DataTypeError, "MSH-1", false, ""},
		{"CR as field separator", "MSH\r", ErrDelimiters, DataTypeError, "MSH-1", false, ""},
		{"repeated encoding char", "MSH|^^\\&|A|B|C|D|1||ADT^A01|C9|P|2.5\r", ErrDelimiters, DataTypeError, "MSH-2", true, "C9"},
		{"no encoding chars", "MSH||A|B", ErrDelimiters, DataTypeError, "MSH-2", true, ""},
		{"unknown charset", "MSH|^~\\&|A|B|C|D|1||ADT^A01|C1|P|2.5|||||| ISO IR87\r", ErrCharset, TableValueNotFound, "MSH-18", true, "C1"},
		{"invalid UTF-8", "MSH|^~\\&|A|B|C|D|1||ADT^A01|C2|P|2.5||||||UNICODE UTF-8\rPID|1||\xff\xfe\r", ErrEncoding, DataTypeError, "PID", true, "C2"},
		{"missing MSH-9", "MSH|^~\\&|A|B|C|D|1|||C3|P|2.5\r", ErrRequiredField, RequiredFieldMissing, "MSH-9.1", true, "C3"},
		{"missing MSH-10", "MSH|^~\\&|A|B|C|D|1||ADT^A01||P|2.5\r", ErrRequiredField, RequiredFieldMissing, "MSH-10", true, ""},
		{"missing MSH-11", "MSH|^~\\&|A|B|C|D|1||ADT^A01|C4||2.5\r", ErrRequiredField, RequiredFieldMissing, "MSH-11.1", true, "C4"},
		{"missing MSH-12", "MSH|^~\\&|A|B|C|D|1||ADT^A01|C5|P\r", ErrRequiredField, RequiredFieldMissing, "MSH-12.1", true, "C5"},
		{"bad segment ID", "MSH|^~\\&|A|B|C|D|1||ADT^A01|C6|P|2.5\rP\x01D|1\r", ErrSegment, SegmentSequenceError, "", true, "C6"},
		{"garbage after MSH", "MSH|^~\\&|A|B|C|D|1||ADT^A01|C7|P|2.5\r\x00\x00\x00\xff", ErrSegment, SegmentSequenceError, "", true, "C7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.raw))
			if m != nil {
				t.Fatalf("got a message for bad input")
			}
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want *ParseError wrapping %v", err, tt.err)
			}
			if pe.Code != tt.code || pe.Location.String() != tt.loc {
				t.Errorf("Code, Location = %d, %q; want %d, %q", pe.Code, pe.Location, tt.code, tt.loc)
			}
			if (pe.Header != nil) != tt.wantHeader {
				t.Fatalf("Header = %+v, want present %v", pe.Header, tt.wantHeader)
			}
			if pe.Header != nil && pe.Header.MessageControlID != tt.controlID {
				t.Errorf("partial header control ID = %q, want %q", pe.Header.MessageControlID, tt.controlID)
			}
		})
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	d := DefaultDelimiters
	tests := []struct{ plain, escaped string }{
		{"plain", "plain"},
		{"a|b", `a\F\b`},
		{"a^b&c~d\\e", `a\S\b\T\c\R\d\E\e`},
		{"line1\r\nline2", `line1\X0D\\X0A\line2`},
		{"Jörg", "Jörg"},
		{"\x0b\x1c", `\X0B\\X1C\`},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Escape(tt.plain, d); got != tt.escaped {
			t.Errorf("Escape(%q) = %q, want %q", tt.plain, got, tt.escaped)
		}
		if got := Unescape(tt.escaped, d); got != tt.plain {
			t.Errorf("Unescape(%q) = %q, want %q", tt.escaped, got, tt.plain)
		}
	}
	// Sequences this package does not interpret stay as written.
	for _, s := range []string{`\H\bold\N\`, `a\.br\b`, `\Zcustom\`, `\C2842\`, `unterminated\S`, `\XZZ\`, `\X\`} {
		if got := Unescape(s, d); got != s {
			t.Errorf("Unescape(%q) = %q, want it unchanged", s, got)
		}
	}
	if got := unescape(`\XE9\`, d, true); got != "é" {
		t.Errorf("Latin-1 hex = %q", got)
	}
	if got := unescape(`\XC3A9\`, d, false); got != "é" {
		t.Errorf("UTF-8 hex = %q", got)
	}
}

func TestParseLocation(t *testing.T) {
	tests := []struct {
		in   string
		want Location
		ok   bool
	}{
		{"PID", Location{Segment: "PID"}, true},
		{"PID-3", Location{Segment: "PID", Field: 3}, true},
		{"PID-3.1", Location{Segment: "PID", Field: 3, Component: 1}, true},
		{"PID-3(2).4.1", Location{Segment: "PID", Field: 3, FieldRepetition: 2, Component: 4, SubComponent: 1}, true},
		{"OBX(3)-5", Location{Segment: "OBX", SegmentRepetition: 3, Field: 5}, true},
		{"ZDS-1", Location{Segment: "ZDS", Field: 1}, true},
		{"pid-3", Location{}, false},
		{"PID-0", Location{}, false},
		{"PID-3.1.2.3", Location{}, false},
		{"PID-x", Location{}, false},
		{"PID(0)-1", Location{}, false},
		{"PID-3(2", Location{}, false},
		{"PIDX-1", Location{}, false},
		{"", Location{}, false},
	}
	for _, tt := range tests {
		got, err := ParseLocation(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseLocation(%q) = %+v, %v; want %+v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if tt.ok && got.String() != tt.in {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
}

func TestParseTime(t *testing.T) {
	utc := time.UTC
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2026", time.Date(2026, 1, 1, 0, 0, 0, 0, utc), true},
		{"20260315", time.Date(2026, 3, 15, 0, 0, 0, 0, utc), true},
		{"202603150830", time.Date(2026, 3, 15, 8, 30, 0, 0, utc), true},
		{"20260315083015.1234", time.Date(2026, 3, 15, 8, 30, 15, 123400000, utc), true},
		{"20260315083015+0100", time.Date(2026, 3, 15, 7, 30, 15, 0, utc), true},
		{"20260315083015-0500^S", time.Date(2026, 3, 15, 13, 30, 15, 0, utc), true},
		{"2026031", time.Time{}, false},
		{"20261315", time.Time{}, false},
		{"20260315+01", time.Time{}, false},
		{"", time.Time{}, false},
	}
	for _, tt := range tests {
		got, err := ParseTime(tt.in, utc)
		if (err == nil) != tt.ok || !got.Equal(tt.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	ts := time.Date(2026, 3, 15, 8, 30, 15, 0, time.FixedZone("", 3600))
	if got := FormatTime(ts); got != "20260315083015+0100" {
		t.Errorf("FormatTime = %q", got)
	}
}
