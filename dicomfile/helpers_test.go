package dicomfile_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
)

// requireTool skips the test when a DCMTK tool is not installed.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("DCMTK %s not installed (Debian package dcmtk); skipping interop test", name)
	}
	return p
}

// run runs a DCMTK tool and fails the test with its output on error.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(requireTool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// writeSynth writes a synthetic instance to a file in a test directory.
func writeSynth(t testing.TB, o synth.Options) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "synth.dcm")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	if _, err := synth.CT(bw, o); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// splitFile returns the file meta and the data set bytes of a Part 10 file.
func splitFile(t testing.TB, path string) (dicomfile.FileMeta, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := dicomfile.ReadFileMeta(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return m, b[m.DataSetOffset():]
}

// enc builds data sets by hand for the cases no tool writes.
type enc struct {
	bo       binary.AppendByteOrder
	explicit bool
}

var (
	implicitLE = enc{binary.LittleEndian, false}
	explicitLE = enc{binary.LittleEndian, true}
	explicitBE = enc{binary.BigEndian, true}
)

func (e enc) tag(b []byte, t uint32) []byte {
	b = e.bo.AppendUint16(b, uint16(t>>16))
	return e.bo.AppendUint16(b, uint16(t))
}

// el encodes one element; length overrides len(v) when not zero.
func (e enc) el(t uint32, vr string, v []byte, length ...uint32) []byte {
	l := uint32(len(v))
	if len(length) > 0 {
		l = length[0]
	}
	b := e.tag(nil, t)
	switch {
	case uint16(t>>16) == 0xFFFE || !e.explicit:
		b = e.bo.AppendUint32(b, l)
	case vr == "OB" || vr == "OW" || vr == "SQ" || vr == "UN" || vr == "UT" || vr == "UC" || vr == "OF":
		b = append(b, vr...)
		b = append(b, 0, 0)
		b = e.bo.AppendUint32(b, l)
	default:
		b = append(b, vr...)
		b = e.bo.AppendUint16(b, uint16(l))
	}
	return append(b, v...)
}

func (e enc) str(t uint32, vr, s string) []byte {
	if len(s)%2 == 1 {
		if vr == "UI" {
			s += "\x00"
		} else {
			s += " "
		}
	}
	return e.el(t, vr, []byte(s))
}

// item wraps elements in an item of defined or undefined length.
func (e enc) item(undefined bool, elems ...[]byte) []byte {
	body := bytes.Join(elems, nil)
	if !undefined {
		return e.el(0xFFFEE000, "", body)
	}
	b := e.el(0xFFFEE000, "", nil, dicomfile.UndefinedLength)
	b = append(b, body...)
	return append(b, e.el(0xFFFEE00D, "", nil)...)
}

// seq encodes a sequence of items of defined or undefined length.
func (e enc) seq(t uint32, undefined bool, items ...[]byte) []byte {
	body := bytes.Join(items, nil)
	if !undefined {
		return e.el(t, "SQ", body)
	}
	b := e.el(t, "SQ", nil, dicomfile.UndefinedLength)
	b = append(b, body...)
	return append(b, e.el(0xFFFEE0DD, "", nil)...)
}
