package dicomfile_test

import (
	"bufio"
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
)

// wantFromOptions is the header synth writes for o (see synth.CT).
func wantFromOptions(o synth.Options, ts string) dicomfile.Header {
	h := dicomfile.Header{
		TransferSyntaxUID:    ts,
		SpecificCharacterSet: "ISO_IR 100",
		PatientID:            "SYN0001",
		PatientName:          "DOE^JANE",
		PatientBirthDate:     "19700101",
		PatientSex:           "F",
		StudyInstanceUID:     synth.DerivedUID(o.Seed, "study"),
		StudyDate:            "20250101",
		StudyTime:            "080000",
		AccessionNumber:      "ACC0001",
		StudyDescription:     "CT CHEST",
		StudyID:              "1",
		SeriesInstanceUID:    synth.DerivedUID(o.Seed, "series"),
		Modality:             "CT",
		SeriesNumber:         "1",
		SeriesDescription:    "SYNTHETIC SERIES",
		SeriesDate:           "20250101",
		SeriesTime:           "080000",
		StationName:          "SYNTH01",
		InstitutionName:      "SYNTHETIC HOSPITAL",
		Manufacturer:         "IMAGINGHUB SYNTH",
		SOPClassUID:          synth.CTImageStorage,
		SOPInstanceUID:       synth.DerivedUID(o.Seed, "instance"),
		InstanceNumber:       "1",
		Rows:                 uint16(o.Rows),
		Columns:              uint16(o.Columns),
		BitsAllocated:        16,
		ContentDate:          "20250101",
		ContentTime:          "080000",
	}
	if o.Frames > 1 {
		h.SOPClassUID = synth.MultiFrameGrayscaleWordSCImageStorage
		h.NumberOfFrames = o.Frames
	}
	return h
}

// indexed returns h without the fields that depend on the encoding.
func indexed(h *dicomfile.Header) dicomfile.Header {
	c := *h
	c.PixelData = dicomfile.Element{}
	c.Elements = nil
	return c
}

func TestParseHeaderSynth(t *testing.T) {
	tests := []struct {
		name string
		o    synth.Options
	}{
		{"implicit single frame", synth.Options{Rows: 512, Columns: 512}},
		{"explicit single frame", synth.Options{Rows: 256, Columns: 128, TransferSyntaxUID: dicomfile.ExplicitVRLittleEndian, Seed: 2}},
		{"implicit multi-frame", synth.Options{Rows: 32, Columns: 32, Frames: 5, Seed: 3}},
		{"explicit multi-frame", synth.Options{Rows: 16, Columns: 48, Frames: 3, TransferSyntaxUID: dicomfile.ExplicitVRLittleEndian, Seed: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeSynth(t, tt.o)
			m, h, err := dicomfile.ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			ts := tt.o.TransferSyntaxUID
			if ts == "" {
				ts = dicomfile.ImplicitVRLittleEndian
			}
			if m.TransferSyntaxUID != ts || m.MediaStorageSOPInstanceUID != h.SOPInstanceUID {
				t.Errorf("file meta %+v", m)
			}
			if got, want := indexed(h), wantFromOptions(tt.o, ts); !reflect.DeepEqual(got, want) {
				t.Errorf("header:\n got %+v\nwant %+v", got, want)
			}
			// The pixel data element is where the header says it is.
			b, _ := os.ReadFile(path)
			if h.PixelData.Tag != dicomfile.TagPixelData || int64(h.PixelData.Length) != tt.o.PixelDataLength() {
				t.Fatalf("pixel data %+v", h.PixelData)
			}
			end := m.DataSetOffset() + h.PixelData.Offset + int64(h.PixelData.Length)
			if end != int64(len(b)) {
				t.Errorf("pixel data ends at %d, file is %d bytes", end, len(b))
			}
		})
	}
}

// TestSynthValidForDCMTK checks that dcmdump reads our file meta and data
// set as valid Part 10 and finds the values we wrote.
func TestSynthValidForDCMTK(t *testing.T) {
	requireTool(t, "dcmdump")
	for _, ts := range []string{dicomfile.ImplicitVRLittleEndian, dicomfile.ExplicitVRLittleEndian} {
		o := synth.Options{Rows: 64, Columns: 64, Frames: 2, TransferSyntaxUID: ts}
		path := writeSynth(t, o)
		out := run(t, "dcmdump", "-M", "+L", "-q", "+E", path)
		for _, want := range []string{
			"(0002,0000) UL",
			"(0002,0001) OB 00\\01",
			"(0002,0002) UI =MultiframeGrayscaleWordSecondaryCaptureImageStorage",
			"(0002,0003) UI [" + synth.DerivedUID(0, "instance") + "]",
			"(0002,0012) UI [" + synth.ImplementationClassUID + "]",
			"(0002,0013) SH [IMAGINGHUB_SYN]",
			"(0002,0016) AE [SYNTH]",
			"(0010,0010) PN [DOE^JANE]",
			"(0028,0008) IS [2]",
			"(7fe0,0010) OW",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: dcmdump output lacks %q:\n%s", ts, want, out)
			}
		}
		if strings.Contains(out, "E: ") || strings.Contains(out, "W: ") {
			t.Errorf("dcmdump complained:\n%s", out)
		}
	}
}

// richFile makes a synthetic file that dcmodify has given sequences,
// nested sequences and the optional indexed attributes.
func richFile(t *testing.T, charset, patientName string) string {
	path := writeSynth(t, synth.Options{Rows: 64, Columns: 64, TransferSyntaxUID: dicomfile.ExplicitVRLittleEndian})
	run(t, "dcmodify", "-nb", "-q",
		"-m", "(0008,0005)="+charset,
		"-m", "(0010,0010)="+patientName,
		"-i", "(0010,0021)=HOSP_PID",
		"-i", "(0008,0051)[0].(0040,0031)=HOSP_ACC",
		"-i", "(0008,0051)[0].(0040,0032)=1.2.3.4",
		"-i", "(0008,0051)[0].(0040,0033)=ISO",
		"-i", "(0008,1111)[0].(0008,1150)=1.2.840.10008.3.1.2.3.3",
		"-i", "(0040,0275)[0].(0040,0008)[0].(0008,0100)=CTCHEST",
		"-i", "(0040,0275)[0].(0040,0008)[0].(0008,0102)=99SYN",
		"-i", "(0040,0275)[1].(0040,1001)=RP1",
		"-i", "(0018,0015)=CHEST",
		"-i", "(0020,0060)=R",
		"-i", "(0040,0244)=20250102",
		"-i", "(0040,0245)=093000",
		"-m", "(0008,0090)=WELBY^MARCUS",
		path)
	return path
}

// TestParseHeaderDCMTKConversions parses one data set in every transfer
// syntax and length encoding dcmconv writes.
func TestParseHeaderDCMTKConversions(t *testing.T) {
	requireTool(t, "dcmconv")
	src := richFile(t, "ISO_IR 100", "M\xdcLLER^J\xc9R\xd4ME")
	_, base, err := dicomfile.ParseFile(src)
	if err != nil {
		t.Fatal(err)
	}
	want := indexed(base)
	if want.PatientName != "MÜLLER^JÉRÔME" || want.IssuerOfAccessionNumber != "HOSP_ACC" ||
		want.IssuerOfPatientID != "HOSP_PID" || want.BodyPartExamined != "CHEST" || want.Laterality != "R" ||
		want.PerformedProcedureStepStartDate != "20250102" || want.PerformedProcedureStepStartTime != "093000" ||
		want.ReferringPhysicianName != "WELBY^MARCUS" {
		t.Fatalf("source header %+v", want)
	}
	tests := []struct {
		name string
		args []string
		ts   string
	}{
		{"implicit", []string{"+ti"}, dicomfile.ImplicitVRLittleEndian},
		{"implicit undefined lengths", []string{"+ti", "-e"}, dicomfile.ImplicitVRLittleEndian},
		{"explicit", []string{"+te"}, dicomfile.ExplicitVRLittleEndian},
		{"explicit undefined lengths", []string{"+te", "-e"}, dicomfile.ExplicitVRLittleEndian},
		{"big endian", []string{"+tb"}, dicomfile.ExplicitVRBigEndian},
		{"big endian undefined lengths", []string{"+tb", "-e"}, dicomfile.ExplicitVRBigEndian},
		{"deflated", []string{"+td"}, dicomfile.DeflatedExplicitVRLittleEndian},
		{"deflated undefined lengths", []string{"+td", "-e"}, dicomfile.DeflatedExplicitVRLittleEndian},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.dcm")
			run(t, "dcmconv", append(tt.args, src, out)...)
			m, h, err := dicomfile.ParseFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if m.TransferSyntaxUID != tt.ts {
				t.Fatalf("dcmconv wrote %s", m.TransferSyntaxUID)
			}
			w := want
			w.TransferSyntaxUID = tt.ts
			if got := indexed(h); !reflect.DeepEqual(got, w) {
				t.Errorf("header:\n got %+v\nwant %+v", got, w)
			}
			if h.PixelData.Tag != dicomfile.TagPixelData || h.PixelData.Length != 64*64*2 {
				t.Errorf("pixel data %+v", h.PixelData)
			}
		})
	}
}

// TestParseHeaderEncapsulated parses files whose pixel data DCMTK
// compressed, and a JPEG wrapped by img2dcm.
func TestParseHeaderEncapsulated(t *testing.T) {
	src := writeSynth(t, synth.Options{Rows: 64, Columns: 64})
	_, base, err := dicomfile.ParseFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		tool string
		args []string
		ts   string
	}{
		{"dcmcjpeg", nil, dicomfile.JPEGLosslessSV1},
		{"dcmcjpls", nil, dicomfile.JPEGLSLossless},
		{"dcmcrle", nil, dicomfile.RLELossless},
	}
	for _, tt := range tests {
		t.Run(tt.tool, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.dcm")
			run(t, tt.tool, append(tt.args, src, out)...)
			m, h, err := dicomfile.ParseFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if m.TransferSyntaxUID != tt.ts || h.TransferSyntaxUID != tt.ts {
				t.Fatalf("transfer syntax %s", m.TransferSyntaxUID)
			}
			if h.SOPInstanceUID != base.SOPInstanceUID || h.PatientName != base.PatientName || h.Rows != 64 || h.BitsAllocated != 16 {
				t.Errorf("header %+v", indexed(h))
			}
			if h.PixelData.Tag != dicomfile.TagPixelData || h.PixelData.Length != dicomfile.UndefinedLength || h.PixelData.VR != "OB" {
				t.Errorf("pixel data %+v", h.PixelData)
			}
		})
	}

	t.Run("img2dcm", func(t *testing.T) {
		requireTool(t, "img2dcm")
		dir := t.TempDir()
		img := image.NewGray(image.Rect(0, 0, 40, 30))
		for y := range 30 {
			for x := range 40 {
				img.SetGray(x, y, color.Gray{Y: uint8(x * y)})
			}
		}
		jpg := filepath.Join(dir, "in.jpg")
		f, err := os.Create(jpg)
		if err != nil {
			t.Fatal(err)
		}
		if err := jpeg.Encode(f, img, nil); err != nil {
			t.Fatal(err)
		}
		f.Close()
		out := filepath.Join(dir, "out.dcm")
		run(t, "img2dcm", "-q", "-k", "PatientName=ROE^RICHARD", "-k", "PatientID=SYN0042",
			"-k", "AccessionNumber=ACC42", "-k", "Modality=OT", jpg, out)
		m, h, err := dicomfile.ParseFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if m.TransferSyntaxUID != dicomfile.JPEGBaseline8Bit {
			t.Fatalf("transfer syntax %s", m.TransferSyntaxUID)
		}
		if h.PatientName != "ROE^RICHARD" || h.PatientID != "SYN0042" || h.AccessionNumber != "ACC42" ||
			h.Rows != 30 || h.Columns != 40 || h.BitsAllocated != 8 || !dicomfile.ValidUID(h.SOPInstanceUID) ||
			h.SOPClassUID != m.MediaStorageSOPClassUID || h.SOPInstanceUID != m.MediaStorageSOPInstanceUID {
			t.Errorf("header %+v", indexed(h))
		}
		if h.PixelData.Length != dicomfile.UndefinedLength {
			t.Errorf("pixel data %+v", h.PixelData)
		}
	})
}

func TestParseHeaderCharacterSets(t *testing.T) {
	requireTool(t, "dcmodify")
	tests := []struct {
		name, charset, raw, want string
	}{
		{"Latin-1", "ISO_IR 100", "M\xdcLLER^J\xc9R\xd4ME", "MÜLLER^JÉRÔME"},
		{"UTF-8", "ISO_IR 192", "MÜLLER^JÉRÔME", "MÜLLER^JÉRÔME"},
		{"default", "ISO_IR 6", "DOE^JOHN", "DOE^JOHN"},
		{"undeclared Latin-1", "ISO_IR 6", "D\xd6E^JOHN", "DÖE^JOHN"},
		{"other set kept as bytes", "ISO_IR 144", "\xb4\xb5\xb6", "\xb4\xb5\xb6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, h, err := dicomfile.ParseFile(richFile(t, tt.charset, tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			if h.PatientName != tt.want || h.SpecificCharacterSet != tt.charset {
				t.Errorf("PatientName = %q (charset %q), want %q", h.PatientName, h.SpecificCharacterSet, tt.want)
			}
		})
	}
}

// TestParseHeaderHandBuilt covers encodings no tool here writes: UN of
// undefined length, icon images with encapsulated pixel data inside a
// sequence, float pixel data, and data sets without pixel data.
func TestParseHeaderHandBuilt(t *testing.T) {
	issuer := func(e enc, undef bool) []byte {
		return e.seq(0x00080051, undef, e.item(undef, e.str(0x00400031, "UT", "HOSP_ACC"), e.str(0x00400032, "UT", "1.2.3")))
	}
	icon := func(e enc) []byte {
		frag := append(e.el(0xFFFEE000, "", nil), e.el(0xFFFEE000, "", []byte("JPEGDATA"))...)
		frag = append(frag, e.el(0xFFFEE0DD, "", nil)...)
		pixels := append(e.el(0x7FE00010, "OB", nil, dicomfile.UndefinedLength), frag...)
		return e.seq(0x00880200, true, e.item(true, e.str(0x00280010, "US", "\x08\x00"), pixels))
	}
	un := func(e enc) []byte {
		inner := implicitLE.item(true, implicitLE.str(0x00080100, "SH", "CODE"))
		inner = append(inner, implicitLE.el(0xFFFEE0DD, "", nil)...)
		return append(e.el(0x00091010, "UN", nil, dicomfile.UndefinedLength), inner...)
	}
	tests := []struct {
		name     string
		ts       string
		data     []byte
		wantTag  dicomfile.Tag
		wantAcc  string
		wantIsu  string
		wantRows uint16
	}{
		{"explicit, undefined issuer, icon, UN sequence", dicomfile.ExplicitVRLittleEndian, bytes.Join([][]byte{
			explicitLE.str(0x00080050, "SH", "A1"), issuer(explicitLE, true), un(explicitLE), icon(explicitLE),
			explicitLE.el(0x00280010, "US", []byte{0, 2}), explicitLE.el(0x7FE00010, "OW", nil, 1<<30),
		}, nil), dicomfile.TagPixelData, "A1", "HOSP_ACC", 512},
		{"implicit, defined issuer", dicomfile.ImplicitVRLittleEndian, bytes.Join([][]byte{
			implicitLE.str(0x00080050, "SH", "A2"), issuer(implicitLE, false), icon(implicitLE),
			implicitLE.el(0x00280010, "US", []byte{0, 1}), implicitLE.el(0x7FE00010, "", nil, 1<<30),
		}, nil), dicomfile.TagPixelData, "A2", "HOSP_ACC", 256},
		{"big endian, undefined issuer", dicomfile.ExplicitVRBigEndian, bytes.Join([][]byte{
			explicitBE.str(0x00080050, "SH", "A3"), issuer(explicitBE, true), un(explicitBE), icon(explicitBE),
			explicitBE.el(0x00280010, "US", []byte{1, 0}), explicitBE.el(0x7FE00010, "OW", nil, 1<<30),
		}, nil), dicomfile.TagPixelData, "A3", "HOSP_ACC", 256},
		{"float pixel data", dicomfile.ExplicitVRLittleEndian, bytes.Join([][]byte{
			explicitLE.str(0x00080050, "SH", "A4"), explicitLE.el(0x7FE00008, "OF", nil, 1<<30),
		}, nil), dicomfile.TagFloatPixelData, "A4", "", 0},
		{"double float pixel data, implicit", dicomfile.ImplicitVRLittleEndian, bytes.Join([][]byte{
			implicitLE.str(0x00080050, "SH", "A5"), implicitLE.el(0x7FE00009, "", nil, 1<<30),
		}, nil), dicomfile.TagDoubleFloatPixelData, "A5", "", 0},
		{"no pixel data", dicomfile.ExplicitVRLittleEndian, bytes.Join([][]byte{
			explicitLE.str(0x00080050, "SH", "A6"), issuer(explicitLE, false), explicitLE.el(0x00420011, "OB", make([]byte, 100<<10)),
		}, nil), 0, "A6", "HOSP_ACC", 0},
		{"empty issuer sequence", dicomfile.ExplicitVRLittleEndian, bytes.Join([][]byte{
			explicitLE.str(0x00080050, "SH", "A7"), explicitLE.seq(0x00080051, true),
		}, nil), 0, "A7", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, keep := range []bool{false, true} {
				h, err := dicomfile.ParseHeaderWithOptions(bytes.NewReader(tt.data), tt.ts, dicomfile.ParseOptions{KeepElements: keep})
				if err != nil {
					t.Fatal(err)
				}
				if h.PixelData.Tag != tt.wantTag || h.AccessionNumber != tt.wantAcc || h.IssuerOfAccessionNumber != tt.wantIsu || h.Rows != tt.wantRows {
					t.Errorf("keep=%v: got pixel data %v, accession %q, issuer %q, rows %d", keep, h.PixelData.Tag, h.AccessionNumber, h.IssuerOfAccessionNumber, h.Rows)
				}
				if tt.wantTag != 0 && h.PixelData.Offset+int64(h.PixelData.Length) != int64(len(tt.data))+1<<30 {
					t.Errorf("pixel data value at %d", h.PixelData.Offset)
				}
				if keep == (h.Elements == nil) {
					t.Errorf("keep=%v, %d elements", keep, len(h.Elements))
				}
			}
		})
	}
}

func TestParseHeaderMalformed(t *testing.T) {
	e := explicitLE
	deep := e.el(0x00080050, "SH", []byte("AB"))
	for range 40 {
		deep = e.seq(0x00081111, true, e.item(true, deep))
	}
	tests := []struct {
		name string
		ts   string
		data []byte
		want error
	}{
		{"unknown transfer syntax", "1.2.3.4", nil, dicomfile.ErrUnsupportedTransferSyntax},
		{"truncated tag", dicomfile.ExplicitVRLittleEndian, []byte{8, 0}, dicomfile.ErrMalformed},
		{"truncated header", dicomfile.ExplicitVRLittleEndian, []byte{8, 0, 0x50, 0, 'S'}, dicomfile.ErrMalformed},
		{"bad VR", dicomfile.ExplicitVRLittleEndian, []byte{8, 0, 0x50, 0, 'Z', 'Z', 2, 0, 'A', 'B'}, dicomfile.ErrMalformed},
		{"truncated value", dicomfile.ExplicitVRLittleEndian, e.el(0x00080050, "SH", []byte("AB"), 10), dicomfile.ErrMalformed},
		{"truncated skipped value", dicomfile.ExplicitVRLittleEndian, e.el(0x00091000, "OB", []byte("AB"), 1<<20), dicomfile.ErrMalformed},
		{"item at top level", dicomfile.ExplicitVRLittleEndian, e.el(0xFFFEE000, "", nil), dicomfile.ErrMalformed},
		{"unterminated sequence", dicomfile.ExplicitVRLittleEndian, e.el(0x00081111, "SQ", nil, dicomfile.UndefinedLength), dicomfile.ErrMalformed},
		{"element in sequence", dicomfile.ExplicitVRLittleEndian, append(e.el(0x00081111, "SQ", nil, dicomfile.UndefinedLength), e.str(0x00080050, "SH", "AB")...), dicomfile.ErrMalformed},
		{"unterminated item", dicomfile.ExplicitVRLittleEndian, append(e.el(0x00081111, "SQ", nil, dicomfile.UndefinedLength), e.el(0xFFFEE000, "", nil, dicomfile.UndefinedLength)...), dicomfile.ErrMalformed},
		{"nested too deep", dicomfile.ExplicitVRLittleEndian, deep, dicomfile.ErrMalformed},
		{"not deflated", dicomfile.DeflatedExplicitVRLittleEndian, e.str(0x00080050, "SH", "AB"), dicomfile.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dicomfile.ParseHeader(bytes.NewReader(tt.data), tt.ts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestParseHeaderKeepElements checks that kept elements are the bytes of
// the file at their offsets.
func TestParseHeaderKeepElements(t *testing.T) {
	requireTool(t, "dcmconv")
	src := richFile(t, "ISO_IR 100", "DOE^JANE")
	for _, args := range [][]string{{"+te", "-e"}, {"+ti"}, {"+tb", "-e"}} {
		out := filepath.Join(t.TempDir(), "out.dcm")
		run(t, "dcmconv", append(args, src, out)...)
		m, ds := splitFile(t, out)
		h, err := dicomfile.ParseHeaderWithOptions(bytes.NewReader(ds), m.TransferSyntaxUID, dicomfile.ParseOptions{KeepElements: true, BulkDataThreshold: 64})
		if err != nil {
			t.Fatal(err)
		}
		if len(h.Elements) < 40 {
			t.Fatalf("%v: %d elements", args, len(h.Elements))
		}
		var prev dicomfile.Tag
		var sawSeq bool
		for _, el := range h.Elements {
			if el.Tag <= prev {
				t.Errorf("%v: %v after %v", args, el.Tag, prev)
			}
			prev = el.Tag
			if el.VR == "" {
				t.Errorf("%v: %v has no VR", args, el.Tag)
			}
			if el.Value == nil {
				if el.Length != dicomfile.UndefinedLength && el.Length <= 64 {
					t.Errorf("%v: %v of %d bytes not kept", args, el.Tag, el.Length)
				}
				continue
			}
			if !bytes.Equal(ds[el.Offset:el.Offset+int64(len(el.Value))], el.Value) {
				t.Errorf("%v: %v value differs from the file at %d", args, el.Tag, el.Offset)
			}
			if el.VR == "SQ" {
				sawSeq = true
				if el.Length == dicomfile.UndefinedLength && !bytes.HasSuffix(el.Value, []byte{0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0}) &&
					!bytes.HasSuffix(el.Value, []byte{0xFF, 0xFE, 0xE0, 0xDD, 0, 0, 0, 0}) {
					t.Errorf("%v: undefined-length %v lacks its delimiter", args, el.Tag)
				}
			}
		}
		if !sawSeq {
			t.Errorf("%v: no sequence kept", args)
		}
		if prev >= dicomfile.TagPixelData {
			t.Errorf("%v: kept %v", args, prev)
		}
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestParseHeaderReadsOnlyHeader streams a 200 MiB instance and checks that
// parsing reads less than 1 MiB of it.
func TestParseHeaderReadsOnlyHeader(t *testing.T) {
	for _, ts := range []string{dicomfile.ImplicitVRLittleEndian, dicomfile.ExplicitVRLittleEndian} {
		o := synth.Options{Rows: 512, Columns: 512, Frames: 400, TransferSyntaxUID: ts}
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			_, err := synth.CT(pw, o)
			pw.CloseWithError(err)
			done <- err
		}()
		cr := &countingReader{r: pr}
		br := bufio.NewReader(cr)
		m, err := dicomfile.ReadFileMeta(br)
		if err != nil {
			t.Fatal(err)
		}
		h, err := dicomfile.ParseHeader(br, m.TransferSyntaxUID)
		if err != nil {
			t.Fatal(err)
		}
		pr.CloseWithError(io.ErrClosedPipe) // stop the writer
		if err := <-done; !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("writer: %v", err)
		}
		if o.PixelDataLength() != 200<<20 || int64(h.PixelData.Length) != o.PixelDataLength() || h.NumberOfFrames != 400 {
			t.Errorf("pixel data %+v, frames %d", h.PixelData, h.NumberOfFrames)
		}
		if cr.n >= 1<<20 {
			t.Errorf("read %d bytes of a 200 MiB instance", cr.n)
		}
		t.Logf("%s: read %d bytes of %d", ts, cr.n, o.PixelDataLength())
	}
}

// TestSynthStreamsInConstantMemory writes a 1 GiB instance and checks the
// generator allocates a small constant amount while doing so.
func TestSynthStreamsInConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 1 GiB; skipped in -short mode")
	}
	o := synth.Options{Rows: 1024, Columns: 1024, Frames: 512}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n, err := synth.CT(io.Discard, o)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if n < 1<<30 || n-o.PixelDataLength() > 4096 {
		t.Errorf("wrote %d bytes", n)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("allocated %d bytes to write 1 GiB", alloc)
	}
}

func TestWriteStudy(t *testing.T) {
	dir := t.TempDir()
	paths, err := synth.WriteStudy(dir, 3, synth.Options{Rows: 8, Columns: 8, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 {
		t.Fatalf("%d files", len(paths))
	}
	seen := map[string]bool{}
	for i, p := range paths {
		_, h, err := dicomfile.ParseFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if h.StudyInstanceUID != synth.DerivedUID(9, "study") || h.InstanceNumber != string(rune('1'+i)) ||
			seen[h.SOPInstanceUID] || !dicomfile.ValidUID(h.SOPInstanceUID) {
			t.Errorf("%s: %+v", p, indexed(h))
		}
		seen[h.SOPInstanceUID] = true
	}
	// Deterministic: the same options give the same bytes.
	again, err := synth.WriteStudy(t.TempDir(), 1, synth.Options{Rows: 8, Columns: 8, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(paths[0])
	b, _ := os.ReadFile(again[0])
	if !bytes.Equal(a, b) {
		t.Error("same options gave different files")
	}
}
