package dicomnet

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os/exec"
	"testing"
	"time"
)

// ctLikeDataSet is an Implicit VR Little Endian data set with a few header
// elements and 512x512 16-bit pixels (512 KiB), the size of a CT slice.
func ctLikeDataSet() []byte {
	var b []byte
	el := func(g, e uint16, v []byte) {
		b = binary.LittleEndian.AppendUint16(b, g)
		b = binary.LittleEndian.AppendUint16(b, e)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	el(0x0008, 0x0016, []byte("1.2.840.10008.5.1.4.1.1.2\x00"))
	el(0x0008, 0x0018, []byte("1.2.3.4.5.6.7.8\x00"))
	el(0x0028, 0x0010, []byte{0, 2})
	el(0x0028, 0x0011, []byte{0, 2})
	el(0x0028, 0x0100, []byte{16, 0})
	el(0x7FE0, 0x0010, pattern(512*512*2))
	return b
}

func benchmarkStore(b *testing.B, addr, calledAE string) {
	ds := ctLikeDataSet()
	a, err := Dial(context.Background(), addr, DialOptions{CalledAETitle: calledAE, Logger: quietLogger(),
		PresentationContexts: []ProposedContext{{AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{ImplicitVRLittleEndian}}}})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Release(context.Background())
	r := bytes.NewReader(ds)
	ctx := context.Background()
	b.SetBytes(int64(len(ds)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r.Reset(ds)
		status, err := a.Store(ctx, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5.6.7.8", ImplicitVRLittleEndian, r, nil)
		if err != nil || status != StatusSuccess {
			b.Fatalf("Store: 0x%04X %v", status, err)
		}
	}
}

// BenchmarkStoreCTSlice: our SCU into our SCP over loopback, data set
// discarded by the handler. Reported MB/s is the C-STORE throughput.
func BenchmarkStoreCTSlice(b *testing.B) {
	reg := &Registry{}
	reg.Handle("1.2.840.10008.5.1.4.1.1.2", []string{ImplicitVRLittleEndian}, HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) {
		io.Copy(io.Discard, r.Data)
		w.Respond(&Command{}, nil)
	}))
	_, addr := startServer(b, ServerOptions{AETitle: "HUB", Registry: reg})
	benchmarkStore(b, addr, "HUB")
}

// BenchmarkStoreCTSliceDCMTK: the same into DCMTK storescp (--ignore, max
// PDU 128 KiB) as the reference peer measured in the same run.
func BenchmarkStoreCTSliceDCMTK(b *testing.B) {
	bin, err := exec.LookPath("storescp")
	if err != nil {
		b.Skip("DCMTK storescp not installed")
	}
	port := freePortB(b)
	cmd := exec.Command(bin, "--ignore", "-pdu", "131072", "-aet", "STORESCP", port)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for i := 0; i < 100; i++ {
		a, err := Dial(context.Background(), "127.0.0.1:"+port, DialOptions{CalledAETitle: "STORESCP", Logger: quietLogger()})
		if err == nil {
			a.Release(context.Background())
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	benchmarkStore(b, "127.0.0.1:"+port, "STORESCP")
}
