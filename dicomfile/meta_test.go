package dicomfile_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/imaginghub/imaginghub/dicomfile"
)

func TestFileMetaRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		meta dicomfile.FileMeta
	}{
		{"required only, even and odd lengths", dicomfile.FileMeta{
			MediaStorageSOPClassUID:    "1.2.840.10008.5.1.4.1.1.2",
			MediaStorageSOPInstanceUID: "2.25.1234",
			TransferSyntaxUID:          dicomfile.ImplicitVRLittleEndian,
			ImplementationClassUID:     "2.25.99",
		}},
		{"all optional elements", dicomfile.FileMeta{
			MediaStorageSOPClassUID:         "1.2.840.10008.5.1.4.1.1.4",
			MediaStorageSOPInstanceUID:      "2.25.123",
			TransferSyntaxUID:               dicomfile.JPEG2000Lossless,
			ImplementationClassUID:          "2.25.98",
			ImplementationVersionName:       "HUB_1",
			SourceApplicationEntityTitle:    "STORESCU",
			SendingApplicationEntityTitle:   "MODALITY1",
			ReceivingApplicationEntityTitle: "IMAGINGHUB",
			PrivateInformationCreatorUID:    "2.25.7",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			n, err := dicomfile.WriteFileMeta(&buf, tt.meta)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(buf.Len()) || n%2 != 0 {
				t.Fatalf("wrote %d bytes, buffer holds %d", n, buf.Len())
			}
			b := buf.Bytes()
			if !bytes.Equal(b[:128], make([]byte, 128)) || string(b[128:132]) != "DICM" {
				t.Fatalf("bad preamble or prefix")
			}
			if gl := binary.LittleEndian.Uint32(b[140:]); int64(gl) != n-144 {
				t.Fatalf("group length %d, want %d", gl, n-144)
			}
			buf.WriteString("DATASET")
			r := bytes.NewReader(buf.Bytes())
			got, err := dicomfile.ReadFileMeta(r)
			if err != nil {
				t.Fatal(err)
			}
			if got.DataSetOffset() != n {
				t.Errorf("DataSetOffset %d, want %d", got.DataSetOffset(), n)
			}
			rest, _ := io.ReadAll(r)
			if string(rest) != "DATASET" {
				t.Errorf("reader left at %q, want the data set", rest)
			}
			got.GroupLength = 0
			if got != tt.meta {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tt.meta)
			}
		})
	}
}

func TestWriteFileMetaPadding(t *testing.T) {
	var buf bytes.Buffer
	_, err := dicomfile.WriteFileMeta(&buf, dicomfile.FileMeta{
		MediaStorageSOPClassUID:      "1.2.3",
		MediaStorageSOPInstanceUID:   "1.2.3.4",
		TransferSyntaxUID:            dicomfile.ExplicitVRLittleEndian,
		ImplementationClassUID:       "1.2",
		ImplementationVersionName:    "ABC",
		SourceApplicationEntityTitle: "AET",
	})
	if err != nil {
		t.Fatal(err)
	}
	b := buf.String()
	for _, want := range []string{
		"\x02\x00\x02\x00UI\x06\x001.2.3\x00", // UI padded with NUL (PS3.5 §9.1)
		"\x02\x00\x03\x00UI\x08\x001.2.3.4",
		"\x02\x00\x13\x00SH\x04\x00ABC ", // SH padded with space
		"\x02\x00\x16\x00AE\x04\x00AET ",
		"\x02\x00\x01\x00OB\x00\x00\x02\x00\x00\x00\x00\x01", // version 00\01
	} {
		if !strings.Contains(b, want) {
			t.Errorf("encoding lacks %q", want)
		}
	}
}

func TestWriteFileMetaRejects(t *testing.T) {
	tests := []struct {
		name string
		meta dicomfile.FileMeta
	}{
		{"missing transfer syntax", dicomfile.FileMeta{MediaStorageSOPClassUID: "1.2", MediaStorageSOPInstanceUID: "1.3", ImplementationClassUID: "1.4"}},
		{"AE title too long", dicomfile.FileMeta{MediaStorageSOPClassUID: "1.2", MediaStorageSOPInstanceUID: "1.3", TransferSyntaxUID: "1.2.840.10008.1.2", ImplementationClassUID: "1.4", SourceApplicationEntityTitle: "SEVENTEEN_CHARS_X"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if _, err := dicomfile.WriteFileMeta(&buf, tt.meta); err == nil {
				t.Fatal("no error")
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes on error", buf.Len())
			}
		})
	}
}

func validMeta(t testing.TB) []byte {
	var buf bytes.Buffer
	if _, err := dicomfile.WriteFileMeta(&buf, dicomfile.FileMeta{
		MediaStorageSOPClassUID:    "1.2.840.10008.5.1.4.1.1.2",
		MediaStorageSOPInstanceUID: "2.25.1",
		TransferSyntaxUID:          dicomfile.ExplicitVRLittleEndian,
		ImplementationClassUID:     "2.25.2",
	}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestReadFileMetaRejects(t *testing.T) {
	good := validMeta(t)
	withGroupLength := func(n uint32) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint32(b[140:], n)
		return b
	}
	tests := []struct {
		name  string
		input []byte
		want  error
	}{
		{"empty", nil, dicomfile.ErrNotPart10},
		{"short preamble", make([]byte, 100), dicomfile.ErrNotPart10},
		{"no DICM", append(make([]byte, 128), "DICX"...), dicomfile.ErrNotPart10},
		{"raw data set", append(make([]byte, 128), "\x08\x00\x05\x00CS\x0a\x00ISO_IR 100"...), dicomfile.ErrNotPart10},
		{"truncated group", good[:len(good)-5], dicomfile.ErrNotPart10},
		{"huge group length", withGroupLength(1 << 30), dicomfile.ErrTooLarge},
		{"group length overruns element", withGroupLength(uint32(len(good) - 144 - 3)), dicomfile.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dicomfile.ReadFileMeta(bytes.NewReader(tt.input))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestReadFileMetaWithoutGroupLength covers writers that omit (0002,0000).
func TestReadFileMetaWithoutGroupLength(t *testing.T) {
	good := validMeta(t)
	b := append(bytes.Clone(good[:132]), good[144:]...)
	b = append(b, "\x08\x00\x05\x00CS\x0a\x00ISO_IR 100"...)
	br := bufio.NewReader(bytes.NewReader(b))
	m, err := dicomfile.ReadFileMeta(br)
	if err != nil {
		t.Fatal(err)
	}
	if m.TransferSyntaxUID != dicomfile.ExplicitVRLittleEndian || m.MediaStorageSOPInstanceUID != "2.25.1" {
		t.Errorf("got %+v", m)
	}
	if got, want := m.DataSetOffset(), int64(len(good)-12); got != want {
		t.Errorf("data set at %d, want %d", got, want)
	}
	h, err := dicomfile.ParseHeader(br, m.TransferSyntaxUID)
	if err != nil {
		t.Fatal(err)
	}
	if h.SpecificCharacterSet != "ISO_IR 100" {
		t.Errorf("SpecificCharacterSet = %q", h.SpecificCharacterSet)
	}
	// Without a way to peek, the missing group length is an error.
	if _, err := dicomfile.ReadFileMeta(bytes.NewReader(b)); !errors.Is(err, dicomfile.ErrNotPart10) {
		t.Errorf("unbuffered: err = %v, want ErrNotPart10", err)
	}
}

func BenchmarkWriteFileMeta(b *testing.B) {
	m := dicomfile.FileMeta{
		MediaStorageSOPClassUID:      "1.2.840.10008.5.1.4.1.1.2",
		MediaStorageSOPInstanceUID:   "2.25.95412302138612385974175794685034071704",
		TransferSyntaxUID:            dicomfile.ExplicitVRLittleEndian,
		ImplementationClassUID:       "2.25.195806157829843128046185236398730147962",
		ImplementationVersionName:    "IMAGINGHUB_1",
		SourceApplicationEntityTitle: "MODALITY",
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dicomfile.WriteFileMeta(io.Discard, m); err != nil {
			b.Fatal(err)
		}
	}
}
