package dicomnet

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Interoperability with DCMTK (Debian package dcmtk); skipped without it.

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("DCMTK %s not installed: %v", name, err)
	}
	return p
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, needTool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// makeSecondaryCapture writes a small synthetic JPEG and wraps it with
// img2dcm into a Secondary Capture file; with explicit it is converted to
// Explicit VR Little Endian (decompressed) by dcmconv/dcmdjpeg.
func makeSecondaryCapture(t *testing.T, dir string) string {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 64, 48))
	for y := range 48 {
		for x := range 64 {
			img.SetGray(x, y, color.Gray{Y: uint8(x*4 + y)})
		}
	}
	jp := filepath.Join(dir, "synthetic.jpg")
	f, err := os.Create(jp)
	if err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(f, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dcm := filepath.Join(dir, "synthetic.dcm")
	runTool(t, "img2dcm", "-k", "PatientName=TEST^SYNTHETIC", "-k", "PatientID=SYN0001", jp, dcm)
	return dcm
}

// part10DataSet returns the transfer syntax and data set bytes of a Part 10
// file: what follows the File Meta Information group (PS3.10 §7.1).
func part10DataSet(t *testing.T, path string) (ts string, ds []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 144 || string(b[128:132]) != "DICM" {
		t.Fatalf("%s is not a Part 10 file", path)
	}
	// (0002,0000) UL, Explicit VR LE: tag 4, VR 2, length 2, value 4.
	glen := binary.LittleEndian.Uint32(b[140:144])
	end := 144 + int(glen)
	meta := b[144:end]
	for len(meta) >= 8 {
		tag := binary.LittleEndian.Uint32(meta)
		vr := string(meta[4:6])
		var l, h int
		if vr == "OB" || vr == "UN" || vr == "UT" || vr == "SQ" || vr == "OW" {
			l, h = int(binary.LittleEndian.Uint32(meta[8:])), 12
		} else {
			l, h = int(binary.LittleEndian.Uint16(meta[6:])), 8
		}
		if tag == 0x00100002 { // (0002,0010) TransferSyntaxUID, tag stored group first
			ts = strings.TrimRight(string(meta[h:h+l]), "\x00 ")
		}
		meta = meta[h+l:]
	}
	return ts, b[end:]
}

func TestDCMTKEchoSCU(t *testing.T) {
	needTool(t, "echoscu")
	_, addr := startServer(t, ServerOptions{AETitle: "HUB"})
	host, port, _ := net.SplitHostPort(addr)
	out := runTool(t, "echoscu", "-v", "-aec", "HUB", "-aet", "ECHOSCU", host, port)
	if !strings.Contains(out, "Received Echo Response (Success)") {
		t.Errorf("echoscu output lacks success:\n%s", out)
	}
	// A wrong called AE title is rejected.
	cmd := exec.Command("echoscu", "-aec", "WRONG", host, port)
	outb, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(outb), "Called AE Title Not Recognized") {
		t.Errorf("echoscu with wrong AE: err %v\n%s", err, outb)
	}
}

// fileStore writes each received data set to a file and remembers the
// transfer syntax it came in.
type fileStore struct {
	dir string
	mu  sync.Mutex
	ts  map[string]string
}

func (s *fileStore) ServeDIMSE(ctx context.Context, w ResponseWriter, r *Request) {
	uid := r.Command.AffectedSOPInstanceUID
	f, err := os.Create(filepath.Join(s.dir, uid))
	if err == nil {
		_, err = io.Copy(f, r.Data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		w.Respond(&Command{Status: StatusOutOfResources, ErrorComment: "cannot write"}, nil)
		return
	}
	s.mu.Lock()
	s.ts[uid] = r.PresentationContext.TransferSyntax
	s.mu.Unlock()
	w.Respond(&Command{Status: StatusSuccess}, nil)
}

func TestDCMTKStoreSCU(t *testing.T) {
	needTool(t, "storescu")
	needTool(t, "img2dcm")
	dir := t.TempDir()
	src := makeSecondaryCapture(t, dir)
	explicit := filepath.Join(dir, "explicit.dcm")
	runTool(t, "dcmdjpeg", "+te", src, explicit)

	out := filepath.Join(dir, "received")
	os.Mkdir(out, 0o755)
	fs := &fileStore{dir: out, ts: map[string]string{}}
	reg := &Registry{}
	reg.Handle(testSOPClass, []string{"1.2.840.10008.1.2.4.50", ExplicitVRLittleEndian, ImplicitVRLittleEndian}, fs)
	_, addr := startServer(t, ServerOptions{AETitle: "HUB", Registry: reg})
	host, port, _ := net.SplitHostPort(addr)

	for _, file := range []string{src, explicit} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			ts, want := part10DataSet(t, file)
			uid := strings.TrimSpace(dcmValue(t, file, "0008,0018"))
			// -R proposes only the SOP class of the file; the file's own
			// transfer syntax is proposed first, so no conversion happens
			// and the bytes must match exactly.
			args := []string{"-R", "-aec", "HUB", "-aet", "STORESCU", "-pdu", "8192"}
			if ts == "1.2.840.10008.1.2.4.50" {
				args = append(args, "-xy") // propose JPEG Baseline too
			}
			runTool(t, "storescu", append(args, host, port, file)...)
			got, err := os.ReadFile(filepath.Join(out, uid))
			if err != nil {
				t.Fatal(err)
			}
			fs.mu.Lock()
			gotTS := fs.ts[uid]
			fs.mu.Unlock()
			if gotTS != ts {
				t.Errorf("transfer syntax %s, file has %s", gotTS, ts)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("received data set differs: %d bytes, file's data set %d bytes", len(got), len(want))
			}
		})
	}
}

// dcmValue returns one element's value as dcmdump prints it.
func dcmValue(t *testing.T, file, tag string) string {
	t.Helper()
	out := runTool(t, "dcmdump", "-q", "+P", tag, "-s", file)
	i, j := strings.IndexByte(out, '['), strings.IndexByte(out, ']')
	if i < 0 || j < i {
		t.Fatalf("dcmdump %s of %s: %q", tag, file, out)
	}
	return out[i+1 : j]
}

func freePort(t *testing.T) string { return freePortB(t) }

func freePortB(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func TestStoreIntoDCMTKStoreSCP(t *testing.T) {
	bin := needTool(t, "storescp")
	needTool(t, "img2dcm")
	dir := t.TempDir()
	src := makeSecondaryCapture(t, dir)
	ts, ds := part10DataSet(t, src)
	uid := strings.TrimSpace(dcmValue(t, src, "0008,0018"))

	out := filepath.Join(dir, "storescp")
	os.Mkdir(out, 0o755)
	port := freePort(t)
	cmd := exec.Command(bin, "+xa", "-aet", "STORESCP", "-od", out, port)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var a *Association
	var err error
	for {
		a, err = Dial(ctx, "127.0.0.1:"+port, DialOptions{CalledAETitle: "STORESCP", CallingAETitle: "HUBTEST", Logger: quietLogger(),
			PresentationContexts: []ProposedContext{{AbstractSyntax: testSOPClass, TransferSyntaxes: []string{ts}}}})
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond) // storescp still starting
	}
	if err != nil {
		t.Fatalf("Dial storescp: %v\n%s", err, logs.String())
	}
	status, err := a.Store(ctx, testSOPClass, uid, ts, bytes.NewReader(ds), nil)
	if err != nil || status != StatusSuccess {
		t.Fatalf("Store: 0x%04X %v\n%s", status, err, logs.String())
	}
	if err := a.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(out, "*"))
	if len(files) != 1 {
		t.Fatalf("storescp wrote %v\n%s", files, logs.String())
	}
	gotTS, got := part10DataSet(t, files[0])
	if gotTS != ts || !bytes.Equal(got, ds) {
		t.Errorf("storescp file: TS %s (want %s), data set %d bytes (want %d), equal=%v", gotTS, ts, len(got), len(ds), bytes.Equal(got, ds))
	}
	if !strings.Contains(fmt.Sprint(filepath.Base(files[0])), uid) {
		t.Errorf("storescp file name %s does not carry the SOP Instance UID", files[0])
	}
}
