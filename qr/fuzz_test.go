package qr

import (
	"encoding/binary"
	"testing"

	"github.com/imaginghub/imaginghub/dicomnet"
)

// sequenceSeed is an explicit VR identifier with an undefined-length
// sequence holding one undefined-length item, then a plain key.
func sequenceSeed() []byte {
	var b []byte
	le := binary.LittleEndian
	b = le.AppendUint16(b, 0x0008)
	b = le.AppendUint16(b, 0x1110) // ReferencedStudySequence
	b = append(b, "SQ\x00\x00"...)
	b = le.AppendUint32(b, undefinedLength)
	b = le.AppendUint32(b, uint32(tagItem>>16)|uint32(tagItem&0xFFFF)<<16)
	b = le.AppendUint32(b, undefinedLength)
	b = append(b, identifier(dicomnet.ExplicitVRLittleEndian, key{0x00081150, "UI", "1.2.3"})...)
	b = le.AppendUint32(b, uint32(tagItemDelimitation>>16)|uint32(tagItemDelimitation&0xFFFF)<<16)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, uint32(tagSequenceDelimiter>>16)|uint32(tagSequenceDelimiter&0xFFFF)<<16)
	b = le.AppendUint32(b, 0)
	return append(b, identifier(dicomnet.ExplicitVRLittleEndian, key{tagQueryRetrieveLevel, "CS", "STUDY"})...)
}

func TestParseIdentifierSequence(t *testing.T) {
	elems, err := parseIdentifier(sequenceSeed(), dicomnet.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	if len(elems) != 2 || elems[0].vr != "SQ" || elems[1].str() != "STUDY" {
		t.Errorf("elements = %+v", elems)
	}
	for _, bad := range [][]byte{
		sequenceSeed()[:20],                            // cut inside the sequence
		{0x08, 0x00, 0x52, 0x00, 'C', 'S', 0xFF, 0x00}, // length beyond the end
		{0x08, 0x00},                                   // truncated tag
	} {
		if _, err := parseIdentifier(bad, dicomnet.ExplicitVRLittleEndian); err == nil {
			t.Errorf("parseIdentifier(% x) accepted", bad)
		}
	}
}

// FuzzIdentifier feeds arbitrary bytes to the identifier parser and the
// request builder, in both transfer syntaxes: they must return an error
// or a request, never panic or loop.
func FuzzIdentifier(f *testing.F) {
	for _, ts := range []string{dicomnet.ExplicitVRLittleEndian, dicomnet.ImplicitVRLittleEndian} {
		f.Add(identifier(ts, key{tagQueryRetrieveLevel, "CS", "STUDY"}, key{0x00100010, "PN", "DOE*"}, key{0x00080020, "DA", "20240101-"}), ts == dicomnet.ExplicitVRLittleEndian)
		f.Add(identifier(ts, key{tagQueryRetrieveLevel, "CS", "IMAGE"}, key{0x0020000D, "UI", "1.2.3"}, key{0x0020000E, "UI", "1.2.3.4"}, key{0x00280010, "US", ""}), ts == dicomnet.ExplicitVRLittleEndian)
	}
	f.Add(sequenceSeed(), true)
	f.Fuzz(func(t *testing.T, b []byte, explicit bool) {
		ts := dicomnet.ImplicitVRLittleEndian
		if explicit {
			ts = dicomnet.ExplicitVRLittleEndian
		}
		elems, err := parseIdentifier(b, ts)
		if err != nil {
			return
		}
		for _, patientRoot := range []bool{false, true} {
			for _, retrieve := range []bool{false, true} {
				rq, f := parseRequest(elems, patientRoot, retrieve)
				if (rq == nil) == (f == nil) {
					t.Fatalf("parseRequest returned request %v and failure %v", rq, f)
				}
			}
		}
	})
}
