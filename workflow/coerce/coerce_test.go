package coerce_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/dicomjson"
	"github.com/imaginghub/imaginghub/workflow/coerce"
)

func instance(t testing.TB, ts string) (dicomfile.FileMeta, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := synth.CT(&buf, synth.Options{Seed: 3, Rows: 8, Columns: 8, TransferSyntaxUID: ts,
		PatientName: "WRONG^NAME", PatientID: "BADID", AccessionNumber: "A1"}); err != nil {
		t.Fatal(err)
	}
	meta, err := dicomfile.ReadFileMeta(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return meta, buf.Bytes()[meta.DataSetOffset():]
}

func TestReader(t *testing.T) {
	full := coerce.Values{PatientName: "Synthetic^Sally^Q", PatientID: "SYNPAT-1", IssuerOfPatientID: "GENHOSP",
		PatientBirthDate: "19800101", PatientSex: "F", AccessionNumber: "ACC-0001"}
	cases := []struct {
		name, ts string
		v        coerce.Values
		charset  string
	}{
		{"implicit, all values", dicomfile.ImplicitVRLittleEndian, full, "ISO_IR 100"},
		{"explicit, all values", dicomfile.ExplicitVRLittleEndian, full, "ISO_IR 100"},
		{"explicit, name only", dicomfile.ExplicitVRLittleEndian, coerce.Values{PatientName: "Odd^Len"}, "ISO_IR 100"},
		{"implicit, non-ASCII name in Latin-1", dicomfile.ImplicitVRLittleEndian, coerce.Values{PatientName: "Dö^Jäne"}, "ISO_IR 100"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			meta, ds := instance(t, c.ts)
			orig := append([]byte(nil), ds...)
			got, err := io.ReadAll(coerce.NewReader(bytes.NewReader(ds), c.ts, c.v))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ds, orig) {
				t.Fatal("source modified")
			}
			h, err := dicomfile.ParseHeader(bytes.NewReader(got), c.ts)
			if err != nil {
				t.Fatalf("coerced data set does not parse: %v", err)
			}
			want := func(field, got, coerced, stored string) {
				t.Helper()
				if coerced == "" {
					coerced = stored
				}
				if got != coerced {
					t.Errorf("%s = %q, want %q", field, got, coerced)
				}
			}
			want("PatientName", h.PatientName, c.v.PatientName, "WRONG^NAME")
			want("PatientID", h.PatientID, c.v.PatientID, "BADID")
			want("IssuerOfPatientID", h.IssuerOfPatientID, c.v.IssuerOfPatientID, "")
			want("PatientBirthDate", h.PatientBirthDate, c.v.PatientBirthDate, "19700101")
			want("PatientSex", h.PatientSex, c.v.PatientSex, "F")
			want("AccessionNumber", h.AccessionNumber, c.v.AccessionNumber, "A1")
			if h.SpecificCharacterSet != c.charset {
				t.Errorf("Specific Character Set %q, want %q", h.SpecificCharacterSet, c.charset)
			}
			// Everything after the patient module passes through: the
			// pixel data is the stored bytes.
			tail := 8 * 8 * 2
			if !bytes.Equal(got[len(got)-tail:], ds[len(ds)-tail:]) {
				t.Error("pixel data changed")
			}
			dcmdump(t, meta, got, c.v)
		})
	}
}

// dcmdump has DCMTK read the coerced file, the way a viewer would.
func dcmdump(t *testing.T, meta dicomfile.FileMeta, ds []byte, v coerce.Values) {
	t.Helper()
	if _, err := exec.LookPath("dcmdump"); err != nil {
		t.Log("dcmdump not installed (Debian package dcmtk): DCMTK check skipped")
		return
	}
	var f bytes.Buffer
	if _, err := dicomfile.WriteFileMeta(&f, meta); err != nil {
		t.Fatal(err)
	}
	f.Write(ds)
	path := filepath.Join(t.TempDir(), "coerced.dcm")
	if err := os.WriteFile(path, f.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("dcmdump", "-q", "+P", "0010,0020", "+P", "0010,0021", path).CombinedOutput()
	if err != nil {
		t.Fatalf("dcmdump: %v: %s", err, out)
	}
	if v.PatientID != "" && !strings.Contains(string(out), "["+v.PatientID+"]") {
		t.Errorf("dcmdump does not show PatientID %s: %s", v.PatientID, out)
	}
}

// le builds elements by hand: tag, VR (explicit) and value.
func el(explicit bool, group, elem uint16, vr string, val []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, group)
	binary.Write(&b, binary.LittleEndian, elem)
	long := vr == "SQ" || vr == "OB" || vr == "UN"
	switch {
	case explicit && long:
		b.WriteString(vr)
		b.Write([]byte{0, 0})
		binary.Write(&b, binary.LittleEndian, uint32(len(val)))
	case explicit:
		b.WriteString(vr)
		binary.Write(&b, binary.LittleEndian, uint16(len(val)))
	default:
		binary.Write(&b, binary.LittleEndian, uint32(len(val)))
	}
	b.Write(val)
	return b.Bytes()
}

// undefSeq is a sequence of undefined length with one undefined-length item.
func undefSeq(explicit bool, group, elem uint16, inner []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, group)
	binary.Write(&b, binary.LittleEndian, elem)
	if explicit {
		b.WriteString("SQ")
		b.Write([]byte{0, 0})
	}
	b.Write([]byte{0xFF, 0xFF, 0xFF, 0xFF})
	b.Write([]byte{0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF})
	b.Write(inner)
	b.Write([]byte{0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0})
	b.Write([]byte{0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0})
	return b.Bytes()
}

// Sequences of undefined length before the patient module, a group length
// and elements the data set lacks.
func TestReaderSequencesAndGroupLength(t *testing.T) {
	for _, explicit := range []bool{false, true} {
		ts := dicomfile.ImplicitVRLittleEndian
		if explicit {
			ts = dicomfile.ExplicitVRLittleEndian
		}
		var ds []byte
		ds = append(ds, el(explicit, 0x0008, 0x0000, "UL", []byte{0xAA, 0, 0, 0})...)
		ds = append(ds, el(explicit, 0x0008, 0x0016, "UI", []byte("1.2.840.10008.5.1.4.1.1.7\x00"))...)
		ds = append(ds, el(explicit, 0x0008, 0x0018, "UI", []byte("1.2.3.4\x00"))...)
		ds = append(ds, undefSeq(explicit, 0x0008, 0x1032,
			append(el(explicit, 0x0008, 0x0100, "SH", []byte("CODE01")), el(explicit, 0x0008, 0x0104, "LO", []byte("Meaning "))...))...)
		ds = append(ds, el(explicit, 0x0010, 0x0010, "PN", []byte("OLD^NAME"))...)
		ds = append(ds, el(explicit, 0x0020, 0x000D, "UI", []byte("1.2.3.5\x00"))...)
		// No Specific Character Set: a non-ASCII name declares UTF-8.
		v := coerce.Values{PatientName: "NÉW^NAME^X", PatientID: "P1", AccessionNumber: "ACC9"}
		got, err := io.ReadAll(coerce.NewReader(bytes.NewReader(ds), ts, v))
		if err != nil {
			t.Fatal(err)
		}
		h, err := dicomfile.ParseHeader(bytes.NewReader(got), ts)
		if err != nil {
			t.Fatalf("explicit=%v: %v", explicit, err)
		}
		if h.SpecificCharacterSet != "ISO_IR 192" {
			t.Errorf("explicit=%v: Specific Character Set %q", explicit, h.SpecificCharacterSet)
		}
		if h.PatientName != "NÉW^NAME^X" || h.PatientID != "P1" || h.AccessionNumber != "ACC9" || h.StudyInstanceUID != "1.2.3.5" {
			t.Errorf("explicit=%v: %+v", explicit, h)
		}
		if bytes.Contains(got, []byte{0x08, 0x00, 0x00, 0x00}) && bytes.HasPrefix(got, []byte{0x08, 0x00, 0x00, 0x00}) {
			t.Errorf("explicit=%v: group length kept", explicit)
		}
		if !bytes.Contains(got, []byte("CODE01")) {
			t.Errorf("explicit=%v: sequence lost", explicit)
		}
	}
}

func TestPassThrough(t *testing.T) {
	_, ds := instance(t, dicomfile.ExplicitVRLittleEndian)
	for _, c := range []struct {
		name, ts string
		v        coerce.Values
	}{
		{"zero values", dicomfile.ExplicitVRLittleEndian, coerce.Values{}},
		{"deflated", "1.2.840.10008.1.2.1.99", coerce.Values{PatientName: "X"}},
		{"big endian", "1.2.840.10008.1.2.2", coerce.Values{PatientName: "X"}},
	} {
		got, err := io.ReadAll(coerce.NewReader(bytes.NewReader(ds), c.ts, c.v))
		if err != nil || !bytes.Equal(got, ds) {
			t.Errorf("%s: changed (%v)", c.name, err)
		}
	}
}

func TestTruncated(t *testing.T) {
	_, ds := instance(t, dicomfile.ExplicitVRLittleEndian)
	for _, n := range []int{3, 10, 40} {
		if _, err := io.ReadAll(coerce.NewReader(bytes.NewReader(ds[:n]), dicomfile.ExplicitVRLittleEndian, coerce.Values{PatientName: "X"})); err == nil {
			t.Errorf("%d bytes: no error", n)
		}
	}
}

func TestApply(t *testing.T) {
	ds := dicomjson.DataSet{}
	coerce.Apply(ds, coerce.Values{PatientName: "Dö^Jäne", PatientID: "P1"})
	if a := ds[coerce.TagPatientName]; a == nil || a.PersonNames[0].Alphabetic != "Dö^Jäne" {
		t.Errorf("PatientName %+v", a)
	}
	if a := ds[coerce.TagPatientID]; a == nil || a.Strings[0] != "P1" {
		t.Errorf("PatientID %+v", a)
	}
	if a := ds[coerce.TagSpecificCharacterSet]; a == nil || a.Strings[0] != "ISO_IR 192" {
		t.Errorf("Specific Character Set %+v", a)
	}
	if _, ok := ds[coerce.TagPatientSex]; ok {
		t.Error("empty value applied")
	}
}

// FuzzReader: any stream gives data or an error, never a panic, and a
// stream that is read whole is not longer than the input plus the
// inserted elements.
func FuzzReader(f *testing.F) {
	_, imp := instance(f, dicomfile.ImplicitVRLittleEndian)
	_, exp := instance(f, dicomfile.ExplicitVRLittleEndian)
	f.Add(imp[:min(len(imp), 600)], false)
	f.Add(exp[:min(len(exp), 600)], true)
	f.Add(undefSeq(true, 0x0008, 0x1032, el(true, 0x0008, 0x0100, "SH", []byte("AB"))), true)
	f.Add(undefSeq(false, 0x0008, 0x1032, nil), false)
	f.Fuzz(func(t *testing.T, data []byte, explicit bool) {
		ts := dicomfile.ImplicitVRLittleEndian
		if explicit {
			ts = dicomfile.ExplicitVRLittleEndian
		}
		v := coerce.Values{PatientName: "A^B", PatientID: "ID", AccessionNumber: "X"}
		got, err := io.ReadAll(coerce.NewReader(bytes.NewReader(data), ts, v))
		if err == nil && len(got) > len(data)+200 {
			t.Fatalf("grew from %d to %d bytes", len(data), len(got))
		}
	})
}
