package dicomweb

import (
	"bytes"
	"io"
	"mime/multipart"
	"testing"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
)

const fuzzBoundary = "fuzz-boundary"

func fuzzBody(parts ...[]byte) []byte {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.SetBoundary(fuzzBoundary)
	for _, p := range parts {
		w, _ := mw.CreatePart(map[string][]string{"Content-Type": {"application/dicom"}})
		w.Write(p)
	}
	mw.Close()
	return buf.Bytes()
}

// FuzzReadParts drives the STOW-RS request parsing (multipart framing,
// part media types, File Meta Information, the study check of the header)
// with arbitrary bodies: it must never panic or read without end, and a
// part it accepts must be a Part 10 file of the study asked for.
func FuzzReadParts(f *testing.F) {
	var inst bytes.Buffer
	synth.CT(&inst, synth.Options{Seed: 1, Rows: 2, Columns: 2})
	f.Add(fuzzBody(inst.Bytes()), false)
	f.Add(fuzzBody(inst.Bytes()), true)
	f.Add(fuzzBody([]byte("not dicom"), inst.Bytes()), true)
	f.Add(fuzzBody(inst.Bytes()[:200]), true)
	f.Add([]byte("--fuzz-boundary\r\nContent-Type: text/plain\r\n\r\nx\r\n--fuzz-boundary--\r\n"), false)
	f.Add([]byte("--fuzz-boundary\r\n\r\n"), false)
	study := synth.DerivedUID(1, "study")
	f.Fuzz(func(t *testing.T, body []byte, scoped bool) {
		want := ""
		if scoped {
			want = study
		}
		mr := multipart.NewReader(bytes.NewReader(body), fuzzBoundary)
		for i := 0; i < 100; i++ {
			part, err := mr.NextRawPart()
			if err != nil {
				return
			}
			in, res := readPart(part.Header.Get("Content-Type"), part, want)
			if res.failure != 0 {
				continue
			}
			if in.meta.TransferSyntaxUID == "" {
				t.Fatal("accepted part without a transfer syntax")
			}
			if scoped {
				h, err := dicomfile.ParseHeader(in.data, in.meta.TransferSyntaxUID)
				if err != nil || h.StudyInstanceUID != study {
					t.Fatalf("accepted a part of another study or unreadable: %v", err)
				}
			}
			io.Copy(io.Discard, in.data)
		}
	})
}
