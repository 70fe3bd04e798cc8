package tsconv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
)

// synthDataSet returns the data set of a synthetic CT in ts.
func synthDataSet(t testing.TB, ts string) []byte {
	t.Helper()
	var buf bytes.Buffer
	o := synth.Options{Seed: 7, StudyInstanceUID: "1.2.3.4", SeriesInstanceUID: "1.2.3.4.5", SOPInstanceUID: "1.2.3.4.5.6",
		Rows: 16, Columns: 16, TransferSyntaxUID: ts}
	if _, err := synth.CT(&buf, o); err != nil {
		t.Fatal(err)
	}
	meta, err := dicomfile.ReadFileMeta(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()[meta.DataSetOffset():]
}

// ds builds Explicit or Implicit VR LE elements for tests.
type ds struct {
	explicit bool
	b        []byte
}

func (d *ds) tag(t uint32) {
	d.b = binary.LittleEndian.AppendUint16(d.b, uint16(t>>16))
	d.b = binary.LittleEndian.AppendUint16(d.b, uint16(t))
}

func (d *ds) elem(t uint32, vr string, v []byte) *ds {
	d.tag(t)
	switch {
	case !d.explicit:
		d.b = binary.LittleEndian.AppendUint32(d.b, uint32(len(v)))
	case vr == "UT" || vr == "OB" || vr == "OW" || vr == "UN":
		d.b = append(d.b, vr...)
		d.b = append(d.b, 0, 0)
		d.b = binary.LittleEndian.AppendUint32(d.b, uint32(len(v)))
	default:
		d.b = append(d.b, vr...)
		d.b = binary.LittleEndian.AppendUint16(d.b, uint16(len(v)))
	}
	d.b = append(d.b, v...)
	return d
}

// seq appends a sequence of items built by f; defined chooses defined
// lengths for the sequence and its items.
func (d *ds) seq(t uint32, defined bool, items ...func(*ds)) *ds {
	var body []byte
	for _, f := range items {
		it := &ds{explicit: d.explicit}
		f(it)
		var h ds
		h.tag(tagItem)
		if defined {
			h.b = binary.LittleEndian.AppendUint32(h.b, uint32(len(it.b)))
			body = append(append(body, h.b...), it.b...)
		} else {
			h.b = binary.LittleEndian.AppendUint32(h.b, undefinedLength)
			body = append(append(body, h.b...), it.b...)
			var e ds
			e.tag(tagItemDelim)
			e.b = binary.LittleEndian.AppendUint32(e.b, 0)
			body = append(body, e.b...)
		}
	}
	d.tag(t)
	if d.explicit {
		d.b = append(d.b, "SQ\x00\x00"...)
	}
	if defined {
		d.b = binary.LittleEndian.AppendUint32(d.b, uint32(len(body)))
		d.b = append(d.b, body...)
	} else {
		d.b = binary.LittleEndian.AppendUint32(d.b, undefinedLength)
		d.b = append(d.b, body...)
		var e ds
		e.tag(tagSeqDelim)
		e.b = binary.LittleEndian.AppendUint32(e.b, 0)
		d.b = append(d.b, e.b...)
	}
	return d
}

// withSequences is a data set with nested sequences of both length forms
// and long-VR elements inside defined-length items, whose lengths change
// between the encodings.
func withSequences(explicit bool) []byte {
	item := func(d *ds) {
		d.elem(0x00081150, "UI", []byte("1.2.840.10008.5.1.4.1.1.2\x00"))
		d.elem(0x00081155, "UI", []byte("1.2.3.4.5.6.7.8\x00"))
		d.elem(0x0040A160, "UT", []byte("a long text value "))
	}
	d := &ds{explicit: explicit}
	d.elem(0x00080060, "CS", []byte("CT"))
	d.seq(0x00081140, true, item, item)
	d.seq(0x00082112, false, func(d *ds) {
		d.elem(0x00081150, "UI", []byte("1.2.840.10008.5.1.4.1.1.2\x00"))
		d.seq(0x00081140, true, item)
	})
	d.seq(0x00089215, true) // empty sequence
	d.elem(0x00090010, "LO", []byte("PRIVATE "))
	d.elem(0x00091001, "UN", []byte{1, 2, 3, 4})
	d.elem(0x7FE00010, "OW", make([]byte, 32))
	return d.b
}

func TestConvertLE(t *testing.T) {
	for _, tc := range []struct {
		name               string
		explicit, implicit []byte
	}{
		{"synthetic CT", synthDataSet(t, dicomfile.ExplicitVRLittleEndian), synthDataSet(t, dicomfile.ImplicitVRLittleEndian)},
		{"nested sequences", withSequences(true), withSequences(false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var toImplicit, toExplicit bytes.Buffer
			if err := ConvertLE(&toImplicit, bytes.NewReader(tc.explicit), false); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(toImplicit.Bytes(), tc.implicit) {
				t.Errorf("Explicit to Implicit differs from the Implicit encoding:\n got %x\nwant %x", toImplicit.Bytes(), tc.implicit)
			}
			if err := ConvertLE(&toExplicit, bytes.NewReader(tc.implicit), true); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(toExplicit.Bytes(), tc.explicit) {
				t.Errorf("Implicit to Explicit differs from the Explicit encoding:\n got %x\nwant %x", toExplicit.Bytes(), tc.explicit)
			}
		})
	}
}

func TestConvertLERejects(t *testing.T) {
	good := withSequences(true)
	undefinedOB := (&ds{explicit: true}).b
	undefinedOB = append(undefinedOB, 0xE0, 0x7F, 0x10, 0x00, 'O', 'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF)
	for _, tc := range []struct {
		name     string
		in       []byte
		explicit bool
	}{
		{"truncated value", good[:len(good)-5], true},
		{"truncated header", good[:3], true},
		{"encapsulated pixel data", undefinedOB, true},
		{"stray item delimiter", []byte{0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0}, true},
		{"bad VR", []byte{0x08, 0x00, 0x60, 0x00, 'c', 's', 2, 0, 'C', 'T'}, true},
		{"unclosed sequence", withSequences(false)[:60], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := ConvertLE(&out, bytes.NewReader(tc.in), !tc.explicit)
			if !errors.Is(err, ErrCannotConvert) {
				t.Errorf("err = %v, want ErrCannotConvert", err)
			}
		})
	}
}

// FuzzConvertLE: any input either converts or fails with ErrCannotConvert,
// never panics, and never grows by more than an Explicit header's 4 extra
// bytes per 8-byte element.
func FuzzConvertLE(f *testing.F) {
	f.Add(withSequences(true), true)
	f.Add(withSequences(false), false)
	f.Add(synthDataSet(f, dicomfile.ExplicitVRLittleEndian)[:600], true)
	f.Add([]byte{0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF}, false)
	f.Fuzz(func(t *testing.T, in []byte, explicit bool) {
		var out bytes.Buffer
		err := ConvertLE(&out, bytes.NewReader(in), !explicit)
		if err != nil && !errors.Is(err, ErrCannotConvert) {
			t.Fatalf("unexpected error %v", err)
		}
		if err == nil && out.Len() > len(in)+len(in)/2+64 {
			t.Fatalf("output %d bytes from %d", out.Len(), len(in))
		}
	})
}
