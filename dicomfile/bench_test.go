package dicomfile_test

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/suyashkumar/dicom"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
)

// ctFile is a 512x512 16-bit CT instance in Explicit VR Little Endian.
func ctFile(b *testing.B) []byte {
	var buf bytes.Buffer
	if _, err := synth.CT(&buf, synth.Options{TransferSyntaxUID: dicomfile.ExplicitVRLittleEndian}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkParseHeader reads file meta and header of a 512x512 CT from
// memory, as the indexer does after an instance is stored.
func BenchmarkParseHeader(b *testing.B) {
	file := ctFile(b)
	for _, bc := range []struct {
		name string
		opts dicomfile.ParseOptions
	}{
		{"indexed", dicomfile.ParseOptions{}},
		{"keep-elements", dicomfile.ParseOptions{KeepElements: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(file)))
			r := bytes.NewReader(file)
			br := bufio.NewReader(r)
			for b.Loop() {
				r.Reset(file)
				br.Reset(r)
				m, err := dicomfile.ReadFileMeta(br)
				if err != nil {
					b.Fatal(err)
				}
				h, err := dicomfile.ParseHeaderWithOptions(br, m.TransferSyntaxUID, bc.opts)
				if err != nil || h.Rows != 512 {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseHeaderPeer is the same work done with the DICOM library's
// parser skipping pixel data, for comparison in the same run.
func BenchmarkParseHeaderPeer(b *testing.B) {
	file := ctFile(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(file)))
	for b.Loop() {
		ds, err := dicom.Parse(bytes.NewReader(file), int64(len(file)), nil, dicom.SkipPixelData())
		if err != nil || len(ds.Elements) == 0 {
			b.Fatal(err)
		}
	}
}
