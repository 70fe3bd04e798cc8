package dicomnet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const testSOPClass = "1.2.840.10008.5.1.4.1.1.7" // Secondary Capture Image Storage

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer runs a Server on 127.0.0.1:0 until the test ends.
func startServer(t testing.TB, opts ServerOptions) (*Server, string) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	s := NewServer(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-errc; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s, ln.Addr().String()
}

func dial(t testing.TB, addr string, opts DialOptions) *Association {
	t.Helper()
	if opts.CalledAETitle == "" {
		opts.CalledAETitle = "HUB"
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := Dial(ctx, addr, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { a.Abort() })
	return a
}

// storeRecorder is a C-STORE SCP that hashes what it receives.
type storeRecorder struct {
	mu     sync.Mutex
	sums   map[string][32]byte
	sizes  map[string]int64
	status uint16
}

func (s *storeRecorder) ServeDIMSE(ctx context.Context, w ResponseWriter, r *Request) {
	h := sha256.New()
	n, err := io.Copy(h, r.Data)
	if err != nil {
		w.Respond(&Command{Status: StatusCannotUnderstand, ErrorComment: err.Error()}, nil)
		return
	}
	s.mu.Lock()
	if s.sums == nil {
		s.sums, s.sizes = map[string][32]byte{}, map[string]int64{}
	}
	s.sums[r.Command.AffectedSOPInstanceUID] = [32]byte(h.Sum(nil))
	s.sizes[r.Command.AffectedSOPInstanceUID] = n
	s.mu.Unlock()
	w.Respond(&Command{Status: s.status}, nil)
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestEchoAndStoreOverLoopback(t *testing.T) {
	rec := &storeRecorder{}
	reg := &Registry{}
	reg.Handle(testSOPClass, []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian}, rec)
	_, addr := startServer(t, ServerOptions{AETitle: "HUB", Registry: reg, MaxPDULength: 16 << 10})

	a := dial(t, addr, DialOptions{PresentationContexts: []ProposedContext{
		{AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
		{AbstractSyntax: testSOPClass, TransferSyntaxes: []string{"1.2.840.10008.1.2.4.50", ExplicitVRLittleEndian, ImplicitVRLittleEndian}},
	}})
	ctx := context.Background()
	if err := a.Echo(ctx); err != nil {
		t.Fatalf("Echo: %v", err)
	}
	pc, ok := a.PresentationContext(testSOPClass, "")
	if !ok || pc.TransferSyntax != ExplicitVRLittleEndian {
		t.Fatalf("storage context = %+v, %v; want Explicit VR LE (first proposed that is registered)", pc, ok)
	}
	// Sizes around the fragment boundary (16 KiB - 6) and empty.
	for _, n := range []int{0, 1, 16<<10 - 7, 16<<10 - 6, 16<<10 - 5, 100_000, 1 << 20} {
		data := pattern(n)
		uid := "1.2.3." + itoa(n)
		status, err := a.Store(ctx, testSOPClass, uid, ExplicitVRLittleEndian, bytes.NewReader(data), nil)
		if err != nil || status != StatusSuccess {
			t.Fatalf("Store %d bytes: status 0x%04X, %v", n, status, err)
		}
		rec.mu.Lock()
		got, size := rec.sums[uid], rec.sizes[uid]
		rec.mu.Unlock()
		if got != sha256.Sum256(data) || size != int64(n) {
			t.Errorf("Store %d bytes: SCP received %d bytes with another digest", n, size)
		}
	}
	if err := a.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

func itoa(n int) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

func TestNegotiationResults(t *testing.T) {
	reg := &Registry{}
	reg.Handle(testSOPClass, []string{ImplicitVRLittleEndian}, &storeRecorder{})
	_, addr := startServer(t, ServerOptions{Registry: reg})

	tests := []struct {
		name       string
		pc         ProposedContext
		wantResult byte
	}{
		{"unsupported abstract syntax", ProposedContext{AbstractSyntax: "1.2.3.4.5", TransferSyntaxes: []string{ImplicitVRLittleEndian}}, PresentationContextAbstractSyntaxNotSupported},
		{"no acceptable transfer syntax", ProposedContext{AbstractSyntax: testSOPClass, TransferSyntaxes: []string{"1.2.840.10008.1.2.4.50"}}, PresentationContextTransferSyntaxNotSupported},
		{"accepted", ProposedContext{AbstractSyntax: testSOPClass, TransferSyntaxes: []string{"1.2.840.10008.1.2.4.50", ImplicitVRLittleEndian}}, PresentationContextAccepted},
		{"SCP role we cannot grant", ProposedContext{AbstractSyntax: testSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}, SCPRole: true}, PresentationContextUserRejection},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ac := rawAssociate(t, addr, tt.pc)
			if len(ac.PresentationContexts) != 1 {
				t.Fatalf("AC has %d contexts, want 1", len(ac.PresentationContexts))
			}
			if got := ac.PresentationContexts[0].Result; got != tt.wantResult {
				t.Errorf("result = %d, want %d", got, tt.wantResult)
			}
			if ac.UserInformation.ImplementationClassUID != ImplementationClassUID {
				t.Errorf("implementation class UID = %q", ac.UserInformation.ImplementationClassUID)
			}
		})
	}
}

// rawAssociate sends an A-ASSOCIATE-RQ by hand and returns the AC.
func rawAssociate(t *testing.T, addr string, pc ProposedContext) *AssociateRQAC {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rq := &AssociateRQAC{Type: PDUTypeAssociateRQ, ProtocolVersion: 1, CalledAETitle: "HUB", CallingAETitle: "TEST",
		ApplicationContextName: ApplicationContextName,
		PresentationContexts:   []PresentationContextItem{{ID: 1, AbstractSyntax: pc.AbstractSyntax, TransferSyntaxes: pc.TransferSyntaxes}},
		UserInformation:        UserInformation{MaxLength: 16384, AsyncOperationsWindow: &AsyncOperationsWindow{5, 5}}}
	if pc.SCPRole || pc.SCURole {
		rq.UserInformation.RoleSelections = []RoleSelection{{SOPClassUID: pc.AbstractSyntax, SCURole: pc.SCURole, SCPRole: pc.SCPRole}}
	}
	b, _ := rq.AppendBinary(nil)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	p, err := ReadPDU(conn, DefaultMaxAssociatePDU, nil)
	if err != nil {
		t.Fatal(err)
	}
	ac, ok := p.(*AssociateRQAC)
	if !ok || ac.Type != PDUTypeAssociateAC {
		t.Fatalf("got %#v, want A-ASSOCIATE-AC", p)
	}
	if w := ac.UserInformation.AsyncOperationsWindow; w == nil || *w != (AsyncOperationsWindow{1, 1}) {
		t.Errorf("async operations window = %+v, want 1/1", w)
	}
	return ac
}

func TestAssociationRejections(t *testing.T) {
	_, addr := startServer(t, ServerOptions{AETitle: "HUB"})
	tests := []struct {
		name   string
		mutate func(*AssociateRQAC)
		want   AssociateRJ
	}{
		{"wrong called AE", func(rq *AssociateRQAC) { rq.CalledAETitle = "NOTHUB" }, AssociateRJ{1, 1, 7}},
		{"unsupported application context", func(rq *AssociateRQAC) { rq.ApplicationContextName = "1.2.3.4" }, AssociateRJ{1, 1, 2}},
		{"protocol version", func(rq *AssociateRQAC) { rq.ProtocolVersion = 2 }, AssociateRJ{1, 2, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rq := &AssociateRQAC{Type: PDUTypeAssociateRQ, ProtocolVersion: 1, CalledAETitle: "HUB", CallingAETitle: "TEST",
				ApplicationContextName: ApplicationContextName,
				PresentationContexts:   []PresentationContextItem{{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}},
				UserInformation:        UserInformation{MaxLength: 16384}}
			tt.mutate(rq)
			b, _ := rq.AppendBinary(nil)
			p := exchange(t, addr, b)
			rj, ok := p.(*AssociateRJ)
			if !ok || *rj != tt.want {
				t.Errorf("got %#v, want %+v", p, tt.want)
			}
		})
	}
	// Through Dial the rejection is an *AssociateRJ error.
	_, err := Dial(context.Background(), addr, DialOptions{CalledAETitle: "OTHER", Logger: quietLogger()})
	var rj *AssociateRJ
	if !errors.As(err, &rj) || rj.Reason != RejectReasonCalledAETitleNotRecognized {
		t.Errorf("Dial with wrong AE: %v", err)
	}
}

// exchange writes raw bytes on a fresh connection and reads one PDU back.
func exchange(t *testing.T, addr string, b []byte) PDU {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write(b)
	conn.(*net.TCPConn).CloseWrite()
	p, err := ReadPDU(conn, DefaultMaxAssociatePDU, nil)
	if err != nil {
		t.Fatalf("reading reply: %v", err)
	}
	return p
}

func TestMalformedInputGetsAbort(t *testing.T) {
	_, addr := startServer(t, ServerOptions{})
	valid, _ := (&AssociateRQAC{Type: PDUTypeAssociateRQ, ProtocolVersion: 1, CalledAETitle: "HUB", CallingAETitle: "TEST",
		ApplicationContextName: ApplicationContextName,
		PresentationContexts:   []PresentationContextItem{{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}},
		UserInformation:        UserInformation{MaxLength: 16384}}).AppendBinary(nil)
	truncatedItem := bytes.Clone(valid)
	truncatedItem[6+68+2], truncatedItem[6+68+3] = 0xFF, 0xFF // application context item length beyond the PDU
	tests := []struct {
		name   string
		in     []byte
		reason byte
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), AbortReasonInvalidPDUParameterValue},
		{"absurd length", []byte{0x01, 0, 0xFF, 0xFF, 0xFF, 0xF0}, AbortReasonInvalidPDUParameterValue},
		{"unknown PDU type", []byte{0x09, 0, 0, 0, 0, 4, 0, 0, 0, 0}, AbortReasonUnrecognizedPDU},
		{"P-DATA-TF before association", []byte{0x04, 0, 0, 0, 0, 6, 0, 0, 0, 2, 1, 3}, AbortReasonUnexpectedPDU},
		{"item exceeds parent", truncatedItem, AbortReasonInvalidPDUParameterValue},
		{"fixed fields truncated", append([]byte{0x01, 0, 0, 0, 0, 20}, valid[6:26]...), AbortReasonInvalidPDUParameterValue},
		{"A-RELEASE-RQ of wrong length", []byte{0x05, 0, 0, 0, 0, 2, 0, 0}, AbortReasonInvalidPDUParameterValue},
		// The peer half-closes after these bytes: the body is cut short.
		{"truncated PDU", valid[:40], AbortReasonInvalidPDUParameterValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := exchange(t, addr, tt.in)
			ab, ok := p.(*Abort)
			if !ok || ab.Source != AbortSourceServiceProvider || ab.Reason != tt.reason {
				t.Errorf("got %#v, want A-ABORT source 2 reason %d", p, tt.reason)
			}
		})
	}
	// The server keeps serving.
	a := dial(t, addr, DialOptions{})
	if err := a.Echo(context.Background()); err != nil {
		t.Fatalf("Echo after malformed input: %v", err)
	}
}

func TestMalformedPDataAbortsOnlyThatAssociation(t *testing.T) {
	_, addr := startServer(t, ServerOptions{})
	good := dial(t, addr, DialOptions{})
	bad := dial(t, addr, DialOptions{})
	tests := []struct {
		name   string
		pdu    []byte
		reason byte
	}{
		{"PDV longer than PDU", []byte{0x04, 0, 0, 0, 0, 8, 0, 0, 0, 100, 1, 3, 0, 0}, AbortReasonInvalidPDUParameterValue},
		{"P-DATA-TF above our maximum", []byte{0x04, 0, 0x7F, 0, 0, 0}, AbortReasonInvalidPDUParameterValue},
		{"unknown context", []byte{0x04, 0, 0, 0, 0, 8, 0, 0, 0, 4, 9, 3, 0, 0}, AbortReasonInvalidPDUParameterValue},
		{"A-ASSOCIATE-RQ when established", []byte{0x01, 0, 0, 0, 0, 4, 0, 0, 0, 0}, AbortReasonUnexpectedPDU},
		{"unknown type", []byte{0x0A, 0, 0, 0, 0, 0}, AbortReasonUnrecognizedPDU},
		{"data set without command", []byte{0x04, 0, 0, 0, 0, 8, 0, 0, 0, 4, 1, 2, 0, 0}, AbortReasonUnexpectedPDUParameter},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := bad
			if i > 0 {
				a = dial(t, addr, DialOptions{})
			}
			a.wmu.Lock()
			a.bw.Write(tt.pdu)
			a.bw.Flush()
			a.wmu.Unlock()
			err := waitClosed(t, a)
			var ab *Abort
			if !errors.As(err, &ab) || ab.Source != AbortSourceServiceProvider || ab.Reason != tt.reason {
				t.Errorf("association ended with %v, want A-ABORT reason %d", err, tt.reason)
			}
		})
	}
	if err := good.Echo(context.Background()); err != nil {
		t.Fatalf("other association after aborts: %v", err)
	}
}

func TestMaxAssociations(t *testing.T) {
	prom := prometheus.NewRegistry()
	_, addr := startServer(t, ServerOptions{MaxAssociations: 2, Registerer: prom})
	a1 := dial(t, addr, DialOptions{})
	a2 := dial(t, addr, DialOptions{})
	_, err := Dial(context.Background(), addr, DialOptions{CalledAETitle: "HUB", Logger: quietLogger()})
	var rj *AssociateRJ
	if !errors.As(err, &rj) || *rj != (AssociateRJ{RejectTransient, RejectSourceServiceProviderPresen, RejectReasonLocalLimitExceeded}) {
		t.Fatalf("third association: %v, want A-ASSOCIATE-RJ 2/3/2", err)
	}
	if err := a1.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The slot frees once the server has seen the release through.
	deadline := time.Now().Add(5 * time.Second)
	for {
		a3, err := Dial(context.Background(), addr, DialOptions{CalledAETitle: "HUB", Logger: quietLogger()})
		if err == nil {
			a3.Release(context.Background())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after release, association still rejected: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := a2.Echo(context.Background()); err != nil {
		t.Fatal(err)
	}
	// At least the third association; the retries above may add more.
	if got := gathered(t, prom, "imaginghub_dicom_associations_total", "limit"); got < 1 {
		t.Errorf("associations_total{result=limit} = %v, want >= 1", got)
	}
	if got := gathered(t, prom, "imaginghub_dicom_requests_total", "C-ECHO"); got != 1 {
		t.Errorf("requests_total{command=C-ECHO} = %v, want 1", got)
	}
}

// gathered returns the value of the series of name whose only label has
// the given value.
func gathered(t *testing.T, g prometheus.Gatherer, name, label string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestHandlerPanicAbortsAssociationOnly(t *testing.T) {
	reg := &Registry{}
	reg.Handle(testSOPClass, []string{ImplicitVRLittleEndian}, HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) {
		panic("synthetic failure")
	}))
	_, addr := startServer(t, ServerOptions{Registry: reg})
	pcs := []ProposedContext{{AbstractSyntax: testSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}, {AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}}
	a := dial(t, addr, DialOptions{PresentationContexts: pcs})
	_, err := a.Store(context.Background(), testSOPClass, "1.2.3", ImplicitVRLittleEndian, bytes.NewReader(pattern(50_000)), nil)
	var ab *Abort
	if !errors.As(err, &ab) {
		t.Fatalf("Store to panicking handler: %v, want A-ABORT", err)
	}
	b := dial(t, addr, DialOptions{PresentationContexts: pcs})
	if err := b.Echo(context.Background()); err != nil {
		t.Fatalf("server after panic: %v", err)
	}
}

func TestUnreadDataSetIsDrainedAndDefaultResponse(t *testing.T) {
	reg := &Registry{}
	// Reads nothing and answers nothing: the server drains the data set and
	// sends Processing Failure.
	reg.Handle(testSOPClass, []string{ImplicitVRLittleEndian}, HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) {}))
	_, addr := startServer(t, ServerOptions{Registry: reg, MaxPDULength: 4096})
	a := dial(t, addr, DialOptions{PresentationContexts: []ProposedContext{{AbstractSyntax: testSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}}})
	for i := range 3 {
		status, err := a.Store(context.Background(), testSOPClass, "1.2.3."+itoa(i), ImplicitVRLittleEndian, bytes.NewReader(pattern(300_000)), nil)
		if err != nil || status != StatusProcessingFailure {
			t.Fatalf("Store %d: 0x%04X %v, want 0x0110", i, status, err)
		}
	}
}

func TestCancelReachesHandler(t *testing.T) {
	const findClass = "1.2.840.10008.5.1.4.1.2.2.1"
	var sawCancel atomic.Bool
	reg := &Registry{}
	reg.Handle(findClass, []string{ImplicitVRLittleEndian}, HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) {
		io.Copy(io.Discard, r.Data)
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				sawCancel.Store(errors.Is(context.Cause(ctx), ErrCanceled))
				w.Respond(&Command{Status: StatusCancel}, nil)
				return
			case <-time.After(10 * time.Millisecond):
			}
			if err := w.Respond(&Command{Status: StatusPending}, bytes.NewReader([]byte{0x08, 0x00, 0x50, 0x00, 0x02, 0x00, 0x00, 0x00, 'A', ' '})); err != nil {
				return
			}
		}
	}))
	_, addr := startServer(t, ServerOptions{Registry: reg})
	a := dial(t, addr, DialOptions{PresentationContexts: []ProposedContext{{AbstractSyntax: findClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}}})
	pc, _ := a.PresentationContext(findClass, "")
	ctx := context.Background()
	rs, err := a.Request(ctx, pc, &Command{CommandField: CFindRQ, AffectedSOPClassUID: findClass}, bytes.NewReader([]byte{0x08, 0x00, 0x52, 0x00, 0x06, 0x00, 0x00, 0x00, 'S', 'T', 'U', 'D', 'Y', ' '}))
	if err != nil {
		t.Fatal(err)
	}
	pending := 0
	for {
		rsp, err := rs.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rsp.Final() {
			if rsp.Command.Status != StatusCancel {
				t.Errorf("final status 0x%04X, want Cancel", rsp.Command.Status)
			}
			break
		}
		id, _ := io.ReadAll(rsp.Data)
		if len(id) != 10 {
			t.Errorf("pending identifier of %d bytes", len(id))
		}
		if pending++; pending == 3 {
			if err := rs.Cancel(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !sawCancel.Load() {
		t.Error("handler context not cancelled with ErrCanceled")
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownWaitsThenAborts(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	reg := &Registry{}
	reg.Handle(testSOPClass, []string{ImplicitVRLittleEndian}, HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) {
		close(started)
		select {
		case <-release:
		case <-ctx.Done():
		}
		w.Respond(&Command{}, nil)
	}))
	s, addr := startServer(t, ServerOptions{Registry: reg})
	a := dial(t, addr, DialOptions{PresentationContexts: []ProposedContext{{AbstractSyntax: testSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}}})
	done := make(chan error, 1)
	go func() {
		_, err := a.Store(context.Background(), testSOPClass, "1.2.3", ImplicitVRLittleEndian, bytes.NewReader(nil), nil)
		done <- err
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want deadline exceeded", err)
	}
	if err := <-done; !errors.Is(err, ErrAssociationClosed) {
		t.Errorf("in-flight Store after forced shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("listener still accepting after Shutdown")
	}
	close(release)
}

func TestIdleTimeoutAborts(t *testing.T) {
	_, addr := startServer(t, ServerOptions{IdleTimeout: 100 * time.Millisecond})
	a := dial(t, addr, DialOptions{})
	var ab *Abort
	if err := waitClosed(t, a); !errors.As(err, &ab) {
		t.Errorf("idle association ended with %v, want A-ABORT", err)
	}
}

// waitClosed waits for the association to end and returns why.
func waitClosed(t *testing.T, a *Association) error {
	t.Helper()
	select {
	case <-a.Done():
		return context.Cause(a.ctx)
	case <-time.After(5 * time.Second):
		t.Fatal("association did not end")
		return nil
	}
}

func TestUserIdentityReachesPolicy(t *testing.T) {
	var seen atomic.Value
	_, addr := startServer(t, ServerOptions{Policy: func(ctx context.Context, rq *AssociateRequest) *AssociateRJ {
		id := rq.PDU.UserInformation.UserIdentity
		if id == nil || string(id.PrimaryField) != "tech1" || string(id.SecondaryField) != "s3cret" {
			return &AssociateRJ{Result: RejectPermanent, Source: RejectSourceServiceUser, Reason: RejectReasonNoReasonGiven}
		}
		seen.Store(rq.RemoteAddr.String())
		return nil
	}})
	id := &UserIdentity{Type: UserIdentityUsernamePasscode, PositiveResponseRequested: true, PrimaryField: []byte("tech1"), SecondaryField: []byte("s3cret")}
	a := dial(t, addr, DialOptions{UserIdentity: id})
	if err := a.Echo(context.Background()); err != nil {
		t.Fatal(err)
	}
	if seen.Load() == nil {
		t.Error("policy did not see the request")
	}
	_, err := Dial(context.Background(), addr, DialOptions{CalledAETitle: "HUB", Logger: quietLogger(),
		UserIdentity: &UserIdentity{Type: UserIdentityUsername, PrimaryField: []byte("intruder")}})
	var rj *AssociateRJ
	if !errors.As(err, &rj) {
		t.Errorf("wrong identity: %v, want rejection", err)
	}
}

// A C-GET shaped exchange: the SCU proposes the SCP role for a storage
// class (PS3.7 D.3.3.4); our SCP's handler sends C-STORE sub-operations on
// the same association, which the SCU's registry serves, then the final
// C-GET response with the sub-operation counters.
func TestSubOperationsOnSameAssociation(t *testing.T) {
	const getClass = "1.2.840.10008.5.1.4.1.2.2.3"
	payloads := [][]byte{pattern(1000), pattern(70_000), pattern(0)}
	srvReg := &Registry{}
	srvReg.AllowSCU(testSOPClass, []string{ExplicitVRLittleEndian})
	srvReg.Handle(getClass, []string{ImplicitVRLittleEndian}, HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) {
		io.Copy(io.Discard, r.Data)
		var done uint16
		for i, p := range payloads {
			w.Respond(&Command{Status: StatusPending, NumberOfRemainingSuboperations: U16(uint16(len(payloads) - i)),
				NumberOfCompletedSuboperations: U16(done), NumberOfFailedSuboperations: U16(0), NumberOfWarningSuboperations: U16(0)}, nil)
			status, err := r.Association.Store(ctx, testSOPClass, "1.2.9."+itoa(i), ExplicitVRLittleEndian, bytes.NewReader(p), nil)
			if err != nil || status != StatusSuccess {
				w.Respond(&Command{Status: StatusOutOfResourcesSubOperations, ErrorComment: "sub-operation failed"}, nil)
				return
			}
			done++
		}
		w.Respond(&Command{Status: StatusSuccess, NumberOfCompletedSuboperations: U16(done), NumberOfFailedSuboperations: U16(0), NumberOfWarningSuboperations: U16(0)}, nil)
	}))
	_, addr := startServer(t, ServerOptions{Registry: srvReg})

	rec := &storeRecorder{}
	cliReg := &Registry{}
	cliReg.Handle(testSOPClass, []string{ExplicitVRLittleEndian}, rec)
	a := dial(t, addr, DialOptions{Registry: cliReg, PresentationContexts: []ProposedContext{
		{AbstractSyntax: getClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
		{AbstractSyntax: testSOPClass, TransferSyntaxes: []string{ExplicitVRLittleEndian}, SCURole: false, SCPRole: true},
	}})
	if _, ok := a.PresentationContext(testSOPClass, ExplicitVRLittleEndian); !ok {
		t.Fatal("storage context with SCP role not accepted")
	}
	pc, _ := a.PresentationContext(getClass, "")
	ctx := context.Background()
	rs, err := a.Request(ctx, pc, &Command{CommandField: CGetRQ, AffectedSOPClassUID: getClass}, bytes.NewReader([]byte{0x08, 0x00, 0x52, 0x00, 0x06, 0x00, 0x00, 0x00, 'S', 'T', 'U', 'D', 'Y', ' '}))
	if err != nil {
		t.Fatal(err)
	}
	var pending int
	var final *Command
	for final == nil {
		rsp, err := rs.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rsp.Final() {
			final = rsp.Command
		} else {
			pending++
		}
	}
	if final.Status != StatusSuccess || final.NumberOfCompletedSuboperations == nil || *final.NumberOfCompletedSuboperations != 3 || pending != 3 {
		t.Fatalf("final %+v after %d pending", final, pending)
	}
	for i, p := range payloads {
		rec.mu.Lock()
		sum := rec.sums["1.2.9."+itoa(i)]
		rec.mu.Unlock()
		if sum != sha256.Sum256(p) {
			t.Errorf("sub-operation %d: data set differs", i)
		}
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestPendingConnectionsBounded(t *testing.T) {
	_, addr := startServer(t, ServerOptions{MaxAssociations: 1, ARTIMTimeout: 10 * time.Second})
	idle, err := net.Dial("tcp", addr) // connects, never sends A-ASSOCIATE-RQ
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the server take it in
	p := exchange(t, addr, nil)
	if rj, ok := p.(*AssociateRJ); !ok || *rj != (AssociateRJ{RejectTransient, RejectSourceServiceProviderPresen, RejectReasonTemporaryCongestion}) {
		t.Fatalf("second pending connection got %#v, want A-ASSOCIATE-RJ 2/3/1", p)
	}
	idle.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, err := Dial(context.Background(), addr, DialOptions{CalledAETitle: "HUB", Logger: quietLogger()})
		if err == nil {
			a.Release(context.Background())
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the idle connection closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
