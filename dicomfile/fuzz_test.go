package dicomfile_test

import (
	"bytes"
	"compress/flate"
	"testing"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
)

// fuzzSyntaxes are the encodings FuzzParseHeader picks from.
var fuzzSyntaxes = []string{
	dicomfile.ImplicitVRLittleEndian,
	dicomfile.ExplicitVRLittleEndian,
	dicomfile.ExplicitVRBigEndian,
	dicomfile.DeflatedExplicitVRLittleEndian,
	dicomfile.JPEGBaseline8Bit,
}

// headerSeed returns the data set of a small synthetic instance with its
// pixel data cut short.
func headerSeed(f *testing.F, ts string) []byte {
	var buf bytes.Buffer
	if _, err := synth.CT(&buf, synth.Options{Rows: 4, Columns: 4, TransferSyntaxUID: ts}); err != nil {
		f.Fatal(err)
	}
	m, err := dicomfile.ReadFileMeta(bytes.NewReader(buf.Bytes()))
	if err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()[m.DataSetOffset():]
}

func FuzzParseHeader(f *testing.F) {
	implicit := headerSeed(f, dicomfile.ImplicitVRLittleEndian)
	explicit := headerSeed(f, dicomfile.ExplicitVRLittleEndian)
	f.Add(implicit, uint8(0))
	f.Add(explicit, uint8(1))
	f.Add(explicit, uint8(4))
	var deflated bytes.Buffer
	fw, _ := flate.NewWriter(&deflated, flate.BestSpeed)
	fw.Write(explicit)
	fw.Close()
	f.Add(deflated.Bytes(), uint8(3))
	e := explicitLE
	f.Add(bytes.Join([][]byte{
		e.str(0x00080050, "SH", "A1"),
		e.seq(0x00080051, true, e.item(true, e.str(0x00400031, "UT", "HOSP"))),
		append(e.el(0x00091010, "UN", nil, dicomfile.UndefinedLength), implicitLE.el(0xFFFEE0DD, "", nil)...),
		e.el(0x7FE00010, "OB", nil, dicomfile.UndefinedLength),
	}, nil), uint8(1))
	be := explicitBE
	f.Add(bytes.Join([][]byte{
		be.str(0x00080050, "SH", "A1"),
		be.seq(0x00080051, false, be.item(false, be.str(0x00400031, "UT", "HOSP"))),
		be.el(0x00280010, "US", []byte{0, 8}),
	}, nil), uint8(2))

	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		ts := fuzzSyntaxes[int(which)%len(fuzzSyntaxes)]
		h, err := dicomfile.ParseHeaderWithOptions(bytes.NewReader(data), ts, dicomfile.ParseOptions{KeepElements: true, BulkDataThreshold: 256})
		if err != nil {
			return
		}
		if ts == dicomfile.DeflatedExplicitVRLittleEndian {
			return // offsets count inflated bytes
		}
		for _, el := range h.Elements {
			if el.Offset < 0 || el.Offset+int64(len(el.Value)) > int64(len(data)) ||
				!bytes.Equal(data[el.Offset:el.Offset+int64(len(el.Value))], el.Value) {
				t.Fatalf("%v: value at %d does not match the input", el.Tag, el.Offset)
			}
		}
		if h.PixelData.Tag != 0 && h.PixelData.Offset > int64(len(data)) {
			t.Fatalf("pixel data at %d beyond %d bytes", h.PixelData.Offset, len(data))
		}
	})
}

func FuzzReadFileMeta(f *testing.F) {
	f.Add(validMeta(f))
	good := validMeta(f)
	f.Add(append(bytes.Clone(good[:132]), good[144:]...))
	f.Add(append(make([]byte, 128), "DICM"...))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := dicomfile.ReadFileMeta(bytes.NewReader(data))
		if err != nil {
			return
		}
		if m.DataSetOffset() > int64(len(data)) || m.TransferSyntaxUID == "" {
			t.Fatalf("meta %+v from %d bytes", m, len(data))
		}
		// What we read, we can write back and read again the same.
		if m.MediaStorageSOPClassUID == "" || m.MediaStorageSOPInstanceUID == "" || m.ImplementationClassUID == "" {
			return
		}
		var buf bytes.Buffer
		if _, err := dicomfile.WriteFileMeta(&buf, m); err != nil {
			return // e.g. an AE title too long to write
		}
		again, err := dicomfile.ReadFileMeta(&buf)
		if err != nil {
			t.Fatalf("rereading: %v", err)
		}
		again.GroupLength, m.GroupLength = 0, 0
		if again != m {
			t.Fatalf("round trip\n got %+v\nwant %+v", again, m)
		}
	})
}
