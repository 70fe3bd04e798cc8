package dicomjson

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
)

func TestUnmarshalSample(t *testing.T) {
	data, err := os.ReadFile("testdata/sample.json")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := Unmarshal(data)
	if err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	tests := []struct {
		tag  Tag
		want Attribute
	}{
		{0x00080008, Attribute{VR: "CS", Strings: []string{"ORIGINAL", "PRIMARY", ""}}},
		{0x00080090, Attribute{VR: "PN"}},
		{0x00100010, Attribute{VR: "PN", PersonNames: []PersonName{{"Yamada^Tarou", "山田^太郎", "やまだ^たろう"}}}},
		{0x00200032, Attribute{VR: "DS", Strings: []string{"-125.5", "0", "1e3"}}},
		{0x00280009, Attribute{VR: "AT", Strings: []string{"00181063"}}},
		{0x00720082, Attribute{VR: "SV", Strings: []string{"-9223372036854775808"}}},
		{0x00720083, Attribute{VR: "UV", Strings: []string{"18446744073709551615"}}},
		{0x00291010, Attribute{VR: "OB", InlineBinary: []byte{0, 1, 2, 3}}},
		{0x00420011, Attribute{VR: "OB", BulkDataURI: "http://example.org/bulk/1"}},
	}
	for _, tc := range tests {
		got := ds[tc.tag]
		if got == nil || !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%v = %+v, want %+v", tc.tag, got, tc.want)
		}
	}
	if sq := ds[0x00081199]; len(sq.Items) != 2 || sq.Items[0].String(0x00081155) != "1.2.3.4" || len(sq.Items[1]) != 0 {
		t.Errorf("ReferencedSOPSequence = %+v", sq)
	}
	if !json.Valid(ds.AppendJSON(nil)) {
		t.Fatal("output is not valid JSON")
	}
}

// TestRoundTrip goes JSON → model → Explicit VR LE → dicomfile header
// parser → model → JSON and expects the same JSON.
func TestRoundTrip(t *testing.T) {
	data, err := os.ReadFile("testdata/sample.json")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	delete(ds, 0x00420011) // a BulkDataURI has no bytes to encode
	if _, err := AppendExplicitLE(nil, DataSet{0x00420011: {VR: "OB", BulkDataURI: "x"}}); !errors.Is(err, ErrBulkData) {
		t.Errorf("encoding a BulkDataURI: err = %v, want ErrBulkData", err)
	}
	var bin bytes.Buffer
	if err := Write(&bin, ds); err != nil {
		t.Fatalf("Write: %v", err)
	}
	h, err := dicomfile.ParseHeaderWithOptions(bytes.NewReader(bin.Bytes()), dicomfile.ExplicitVRLittleEndian, dicomfile.ParseOptions{KeepElements: true})
	if err != nil {
		t.Fatalf("dicomfile cannot read what Write wrote: %v", err)
	}
	if h.PatientName != "Yamada^Tarou=山田^太郎=やまだ^たろう" || h.Rows != 512 {
		t.Errorf("header PatientName %q Rows %d", h.PatientName, h.Rows)
	}
	back, err := FromElements(h.Elements, DecodeOptions{TransferSyntaxUID: dicomfile.ExplicitVRLittleEndian})
	if err != nil {
		t.Fatalf("FromElements: %v", err)
	}
	want, got := string(ds.AppendJSON(nil)), string(back.AppendJSON(nil))
	if want != got {
		t.Errorf("round trip differs:\nwant %s\n got %s", want, got)
	}
}

func TestUnmarshalInvalid(t *testing.T) {
	tests := []struct{ name, in string }{
		{"not an object", `[]`},
		{"short tag", `{"0010010": {"vr":"PN"}}`},
		{"non-hex tag", `{"0010001G": {"vr":"PN"}}`},
		{"missing vr", `{"00100010": {}}`},
		{"unknown vr", `{"00100010": {"vr":"XX"}}`},
		{"attribute not object", `{"00100010": 5}`},
		{"value not array", `{"00100020": {"vr":"LO","Value":"x"}}`},
		{"number for string", `{"00100020": {"vr":"LO","Value":[1]}}`},
		{"string for US", `{"00280010": {"vr":"US","Value":["1"]}}`},
		{"US out of range", `{"00280010": {"vr":"US","Value":[65536]}}`},
		{"SS out of range", `{"00280106": {"vr":"SS","Value":[-32769]}}`},
		{"US fraction", `{"00280010": {"vr":"US","Value":[1.5]}}`},
		{"IS fraction", `{"00200013": {"vr":"IS","Value":[1.5]}}`},
		{"DS text", `{"00181063": {"vr":"DS","Value":["abc"]}}`},
		{"PN string", `{"00100010": {"vr":"PN","Value":["DOE^JOHN"]}}`},
		{"PN bad group", `{"00100010": {"vr":"PN","Value":[{"Alpha":"x"}]}}`},
		{"AT bad", `{"00280009": {"vr":"AT","Value":["0018"]}}`},
		{"SQ item not object", `{"00081199": {"vr":"SQ","Value":[1]}}`},
		{"Value for OB", `{"7FE00010": {"vr":"OB","Value":[1]}}`},
		{"InlineBinary for LO", `{"00100020": {"vr":"LO","InlineBinary":"AA=="}}`},
		{"bad base64", `{"7FE00010": {"vr":"OB","InlineBinary":"!!"}}`},
		{"two values", `{"7FE00010": {"vr":"OB","InlineBinary":"AA==","BulkDataURI":"x"}}`},
		{"unknown member", `{"00100020": {"vr":"LO","Values":[]}}`},
		{"duplicate by case", `{"0010001a": {"vr":"LO"}, "0010001A": {"vr":"LO"}}`},
		{"trailing data", `{} {}`},
		{"deep nesting", strings.Repeat(`{"00081199":{"vr":"SQ","Value":[`, 40) + `{}` + strings.Repeat(`]}}`, 40)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Unmarshal([]byte(tc.in)); !errors.Is(err, ErrInvalid) {
				t.Errorf("Unmarshal(%s) err = %v, want ErrInvalid", tc.in, err)
			}
		})
	}
}

func TestUnmarshalArray(t *testing.T) {
	sets, err := UnmarshalArray([]byte(`[{"00100020":{"vr":"LO","Value":["A"]}},{}]`))
	if err != nil || len(sets) != 2 || sets[0].String(0x00100020) != "A" {
		t.Fatalf("UnmarshalArray = %v, %v", sets, err)
	}
	if _, err := UnmarshalArray([]byte(`[1]`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("array of numbers: err = %v", err)
	}
	if got := string(AppendArray(nil, sets)); got != `[{"00100020":{"vr":"LO","Value":["A"]}},{}]` {
		t.Errorf("AppendArray = %s", got)
	}
}

// TestFromSynthetic decodes a real Part 10 file in both Implicit and
// Explicit VR Little Endian.
func TestFromSynthetic(t *testing.T) {
	for _, ts := range []string{dicomfile.ImplicitVRLittleEndian, dicomfile.ExplicitVRLittleEndian} {
		t.Run(ts, func(t *testing.T) {
			var buf bytes.Buffer
			if _, err := synth.CT(&buf, synth.Options{Rows: 4, Columns: 4, TransferSyntaxUID: ts, PatientName: "DOE^JANE", InstanceNumber: 3}); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(bytes.NewReader(buf.Bytes()))
			meta, err := dicomfile.ReadFileMeta(br)
			if err != nil {
				t.Fatal(err)
			}
			h, err := dicomfile.ParseHeaderWithOptions(br, meta.TransferSyntaxUID, dicomfile.ParseOptions{KeepElements: true})
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			ds, err := FromElements(h.Elements, DecodeOptions{
				TransferSyntaxUID: meta.TransferSyntaxUID,
				BulkDataURI:       func(p string) string { paths = append(paths, p); return "bulk/" + p },
			})
			if err != nil {
				t.Fatal(err)
			}
			checks := []struct {
				tag  Tag
				json string
			}{
				{0x00100010, `{"vr":"PN","Value":[{"Alphabetic":"DOE^JANE"}]}`},
				{0x00200013, `{"vr":"IS","Value":[3]}`},
				{0x00280010, `{"vr":"US","Value":[4]}`},
				{0x00281052, `{"vr":"DS","Value":[-1024]}`},
				{0x00080090, `{"vr":"PN"}`},
				{0x00080008, `{"vr":"CS","Value":["ORIGINAL","PRIMARY","AXIAL"]}`},
			}
			for _, c := range checks {
				a := ds[c.tag]
				if a == nil {
					t.Errorf("%v missing", c.tag)
					continue
				}
				if got := string(a.appendJSON(nil)); got != c.json {
					t.Errorf("%v = %s, want %s", c.tag, got, c.json)
				}
			}
		})
	}
}

// TestSequenceEncodings decodes sequences of defined and undefined length,
// items of both kinds, nested, in Implicit VR.
func TestSequenceEncodings(t *testing.T) {
	le := func(v ...uint32) []byte {
		var b []byte
		for _, x := range v {
			b = append(b, byte(x), byte(x>>8), byte(x>>16), byte(x>>24))
		}
		return b
	}
	tagLE := func(g, e uint16) []byte { return []byte{byte(g), byte(g >> 8), byte(e), byte(e >> 8)} }
	uid := func(g, e uint16, s string) []byte {
		b := append(tagLE(g, e), le(uint32(len(s)))...)
		return append(b, s...)
	}
	// item of defined length with one UI, then an undefined-length item
	// holding an undefined-length nested sequence.
	item1 := uid(0x0008, 0x1150, "1.2\x00")
	var v []byte
	v = append(v, tagLE(0xFFFE, 0xE000)...)
	v = append(v, le(uint32(len(item1)))...)
	v = append(v, item1...)
	v = append(v, tagLE(0xFFFE, 0xE000)...)
	v = append(v, le(0xFFFFFFFF)...)
	v = append(v, tagLE(0x0040, 0xA730)...) // ContentSequence, SQ by dictionary
	v = append(v, le(0xFFFFFFFF)...)
	v = append(v, tagLE(0xFFFE, 0xE000)...)
	v = append(v, le(0xFFFFFFFF)...)
	v = append(v, uid(0x0008, 0x1155, "1.2.3\x00")...)
	v = append(v, tagLE(0xFFFE, 0xE00D)...)
	v = append(v, le(0)...)
	v = append(v, tagLE(0xFFFE, 0xE0DD)...)
	v = append(v, le(0)...)
	v = append(v, tagLE(0xFFFE, 0xE00D)...)
	v = append(v, le(0)...)
	v = append(v, tagLE(0xFFFE, 0xE0DD)...)
	v = append(v, le(0)...)
	ds, err := FromElements([]dicomfile.Element{{Tag: 0x00081199, VR: "SQ", Length: 0xFFFFFFFF, Value: v}}, DecodeOptions{TransferSyntaxUID: dicomfile.ImplicitVRLittleEndian})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"00081199":{"vr":"SQ","Value":[{"00081150":{"vr":"UI","Value":["1.2"]}},{"0040A730":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.3"]}}]}}]}}`
	if got := string(ds.AppendJSON(nil)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// Truncations of the value fail cleanly.
	for n := 1; n < len(v)-8; n += 3 {
		FromElements([]dicomfile.Element{{Tag: 0x00081199, VR: "SQ", Length: 0xFFFFFFFF, Value: v[:n]}}, DecodeOptions{TransferSyntaxUID: dicomfile.ImplicitVRLittleEndian})
	}
}

func TestBigEndianInlineBinary(t *testing.T) {
	ds, err := FromElements([]dicomfile.Element{
		{Tag: 0x00280010, VR: "US", Length: 2, Value: []byte{0x01, 0x02}},
		{Tag: 0x00660023, VR: "OW", Length: 4, Value: []byte{0x01, 0x02, 0x03, 0x04}},
	}, DecodeOptions{TransferSyntaxUID: dicomfile.ExplicitVRBigEndian})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(ds.AppendJSON(nil)), `{"00280010":{"vr":"US","Value":[258]},"00660023":{"vr":"OW","InlineBinary":"AgEEAw=="}}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestStringEscapes(t *testing.T) {
	got := string(appendString(nil, "a\"b\\c\x01\xff\u00e9"))
	want := `"a\"b\\c\u0001` + "\ufffd\u00e9" + `"`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	for s, ok := range map[string]bool{"0": true, "-1.5e+3": true, "01": false, "+1": false, ".5": false, "1.": false, "": false, "1e": false} {
		if isJSONNumber(s) != ok {
			t.Errorf("isJSONNumber(%q) = %v", s, !ok)
		}
	}
	for in, want := range map[string]string{"+1": "1", ".5": "0.5", "007": "7", "1.": "1", "abc": "abc", "-0.25": "-0.25"} {
		if got := normalizeNumber(in); got != want {
			t.Errorf("normalizeNumber(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKeywords(t *testing.T) {
	if tg, ok := LookupKeyword("PatientName"); !ok || tg != 0x00100010 {
		t.Errorf("LookupKeyword(PatientName) = %v, %v", tg, ok)
	}
	if _, ok := LookupKeyword("NoSuchKeyword"); ok {
		t.Error("unknown keyword found")
	}
	if k := Keyword(0x0020000D); k != "StudyInstanceUID" {
		t.Errorf("Keyword = %q", k)
	}
	if vr := DictionaryVR(0x00280010); vr != "US" {
		t.Errorf("DictionaryVR(Rows) = %q", vr)
	}
}
