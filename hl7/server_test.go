package hl7

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/hl7/mllp"
)

// ackHandler accepts everything, echoing PID-3.1 in MSA-3 so tests can
// match replies to requests.
var ackHandler = HandlerFunc(func(ctx context.Context, m *Message) []byte {
	b, err := NewACK(m, AA, &ACKOptions{Text: m.Get("PID-3.1")})
	if err != nil {
		panic(err)
	}
	return b
})

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer serves srv on a fresh 127.0.0.1 port and returns the address.
func startServer(t testing.TB, srv *Server) string {
	t.Helper()
	if srv.Logger == nil {
		srv.Logger = quietLogger()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

func adt(id, patient string) []byte {
	return []byte("MSH|^~\\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315083000||ADT^A01^ADT_A01|" + id + "|P|2.5.1\r" +
		"EVN|A01|20260315083000\rPID|1||" + patient + "^^^GENHOSP^MR||Test^Patient\r")
}

// rawConn is a bare MLLP connection for sending bytes a Client would not.
type rawConn struct {
	net.Conn
	r *mllp.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{Conn: c, r: mllp.NewReader(c, 0)}
}

func (c *rawConn) send(t *testing.T, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func TestServerRoundTrip(t *testing.T) {
	addr := startServer(t, &Server{Handler: ackHandler})
	cl := &Client{Addr: addr}
	defer cl.Close()
	for i := range 5 {
		ack, err := cl.Send(context.Background(), adt(fmt.Sprint("RT", i), fmt.Sprint("PAT-", i)))
		if err != nil {
			t.Fatal(err)
		}
		h := ack.Header()
		if ack.AckCode() != AA || ack.Get("MSA-2") != fmt.Sprint("RT", i) || ack.Get("MSA-3") != fmt.Sprint("PAT-", i) ||
			h.MessageType != "ACK" || h.TriggerEvent != "A01" || h.SendingApplication != "IMAGINGHUB" || h.ReceivingApplication != "HIS" {
			t.Fatalf("reply %d: %q", i, ack.Bytes())
		}
	}
}

// Several messages written back to back on one connection get their
// replies in the same order.
func TestServerPipelinedInOrder(t *testing.T) {
	addr := startServer(t, &Server{Handler: ackHandler})
	c := dialRaw(t, addr)
	var batch []byte
	for i := range 10 {
		batch = append(batch, mllp.Frame(adt(fmt.Sprint("P", i), "X"))...)
	}
	c.send(t, batch)
	for i := range 10 {
		raw, err := c.r.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		m, err := Parse(raw)
		if err != nil || m.Get("MSA-2") != fmt.Sprint("P", i) {
			t.Fatalf("reply %d = %q, %v", i, raw, err)
		}
	}
}

func TestServerConcurrentConnections(t *testing.T) {
	var handled atomic.Int64
	h := HandlerFunc(func(ctx context.Context, m *Message) []byte {
		handled.Add(1)
		return ackHandler(ctx, m)
	})
	addr := startServer(t, &Server{Handler: h})
	const conns, perConn = 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &Client{Addr: addr}
			defer cl.Close()
			for i := range perConn {
				patient := fmt.Sprintf("C%dM%d", c, i)
				ack, err := cl.Send(context.Background(), adt(patient, patient))
				if err != nil {
					errs <- err
					return
				}
				if ack.Get("MSA-3") != patient {
					errs <- fmt.Errorf("reply for %s carries %q", patient, ack.Get("MSA-3"))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := handled.Load(); got != conns*perConn {
		t.Errorf("handled %d messages, want %d", got, conns*perConn)
	}
}

// A shared Client serializes concurrent Sends on its one connection.
func TestClientConcurrentSends(t *testing.T) {
	addr := startServer(t, &Server{Handler: ackHandler})
	cl := &Client{Addr: addr}
	defer cl.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				id := fmt.Sprintf("G%dI%d", g, i)
				ack, err := cl.Send(context.Background(), adt(id, id))
				if err != nil || ack.Get("MSA-3") != id {
					t.Errorf("send %s: %v", id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestServerOversizedMessage(t *testing.T) {
	addr := startServer(t, &Server{Handler: ackHandler, MaxMessageSize: 4096})
	c := dialRaw(t, addr)
	big := adt("BIG", string(bytes.Repeat([]byte("X"), 8192)))
	c.send(t, mllp.Frame(big))
	if _, err := c.r.ReadMessage(); err == nil {
		t.Fatal("got a reply to an oversized message")
	} else if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("err = %v, want the connection closed", err)
	}
	// The server still serves others.
	cl := &Client{Addr: addr}
	defer cl.Close()
	if ack, err := cl.Send(context.Background(), adt("AFTER", "P1")); err != nil || ack.AckCode() != AA {
		t.Fatalf("after oversized message: %v", err)
	}
}

func TestServerGarbage(t *testing.T) {
	addr := startServer(t, &Server{Handler: ackHandler, MaxMessageSize: 4096})
	tests := []struct {
		name    string
		payload string
		code    ErrorCode // 0: connection closed without reply
		loc     string
	}{
		{"binary", "\x00\x01\x02\x03\xff\xfe\xfd", 0, ""},
		{"not HL7", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0, ""},
		{"empty", "", 0, ""},
		{"MSH with bad separator", "MSH\x00^~\\&", 0, ""},
		{"bad encoding characters", "MSH|^^^^|A|B|C|D|1||ADT^A01|G1|P|2.5\r", DataTypeError, "MSH^1^2^1"},
		{"unknown charset", "MSH|^~\\&|A|B|C|D|1||ADT^A01|G2|P|2.5||||||ISO IR87\r", TableValueNotFound, "MSH^1^18^1"},
		{"missing version", "MSH|^~\\&|A|B|C|D|1||ADT^A01|G3|P\r", RequiredFieldMissing, "MSH^1^12^1^1"},
		{"binary after MSH", "MSH|^~\\&|A|B|C|D|1||ADT^A01|G4|P|2.5\r\x00\x9f\x12|x\r", SegmentSequenceError, ""},
		{"truncated MSH", "MSH|", DataTypeError, "MSH^1^2^1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.send(t, mllp.Frame([]byte(tt.payload)))
			raw, err := c.r.ReadMessage()
			if tt.code == 0 {
				if err == nil {
					t.Fatalf("got reply %q, want the connection closed", raw)
				}
				return
			}
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			ack, err := Parse(raw)
			if err != nil {
				t.Fatalf("reply does not parse: %v\n%q", err, raw)
			}
			if ack.AckCode() != AR || ack.Get("ERR-3.1") != fmt.Sprint(int(tt.code)) || ack.Get("ERR-2") != tt.loc {
				t.Fatalf("reply = %q", raw)
			}
		})
	}
	// Random frames never crash the server; each gets an AR or a close.
	for i := range 200 {
		junk := make([]byte, 1+i*7%300)
		_, _ = rand.Read(junk)
		if i%2 == 0 {
			junk = append([]byte("MSH|^~\\&|"), junk...)
		}
		junk = bytes.ReplaceAll(bytes.ReplaceAll(junk, []byte{0x0b}, nil), []byte{0x1c}, nil)
		c := dialRaw(t, addr)
		c.send(t, mllp.Frame(junk))
		if raw, err := c.r.ReadMessage(); err == nil {
			if ack, perr := Parse(raw); perr != nil || ack.AckCode() != AR {
				t.Fatalf("random frame %d: reply %q", i, raw)
			}
		}
		c.Close()
	}
	cl := &Client{Addr: addr}
	defer cl.Close()
	if _, err := cl.Send(context.Background(), adt("STILL", "UP")); err != nil {
		t.Fatalf("server stopped serving after garbage: %v", err)
	}
}

func TestServerHandlerFailures(t *testing.T) {
	h := HandlerFunc(func(ctx context.Context, m *Message) []byte {
		switch m.Get("PID-3.1") {
		case "PANIC":
			panic("handler bug")
		case "NIL":
			return nil
		}
		return ackHandler(ctx, m)
	})
	addr := startServer(t, &Server{Handler: h})
	cl := &Client{Addr: addr}
	defer cl.Close()
	for _, p := range []string{"PANIC", "NIL", "OK"} {
		ack, err := cl.Send(context.Background(), adt("H-"+p, p))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		want, code := AE, fmt.Sprint(int(ApplicationInternalError))
		if p == "OK" {
			want, code = AA, ""
		}
		if ack.AckCode() != want || ack.Get("ERR-3.1") != code {
			t.Errorf("%s: reply %q", p, ack.Bytes())
		}
	}
}

func TestServerIdleTimeout(t *testing.T) {
	addr := startServer(t, &Server{Handler: ackHandler, IdleTimeout: 200 * time.Millisecond})
	c := dialRaw(t, addr)
	// One exchange, then silence: the trailing <CR> after the reply's <EB>
	// must not count as activity.
	c.send(t, mllp.Frame(adt("I1", "P")))
	if _, err := c.r.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := c.r.ReadMessage()
	if err == nil {
		t.Fatal("idle connection got data")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("idle connection closed after %v", d)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server did not close the idle connection: %v", err)
	}
}

func TestServerMaxConnections(t *testing.T) {
	addr := startServer(t, &Server{Handler: ackHandler, MaxConnections: 2})
	var held []*Client
	for i := range 2 {
		cl := &Client{Addr: addr}
		defer cl.Close()
		if _, err := cl.Send(context.Background(), adt(fmt.Sprint("M", i), "P")); err != nil {
			t.Fatal(err)
		}
		held = append(held, cl)
	}
	c := dialRaw(t, addr)
	c.send(t, mllp.Frame(adt("M3", "P")))
	if _, err := c.r.ReadMessage(); err == nil {
		t.Fatal("third connection was served")
	}
	held[0].Close()
	// Once a slot frees, a new connection is served.
	deadline := time.Now().Add(5 * time.Second)
	for {
		cl := &Client{Addr: addr}
		_, err := cl.Send(context.Background(), adt("M4", "P"))
		cl.Close()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot after a connection closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServerShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	h := HandlerFunc(func(ctx context.Context, m *Message) []byte {
		if m.Get("PID-3.1") == "SLOW" {
			started <- struct{}{}
			<-release
		}
		return ackHandler(ctx, m)
	})
	srv := &Server{Handler: h, Logger: quietLogger()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	addr := ln.Addr().String()

	idle := dialRaw(t, addr)
	busy := &Client{Addr: addr}
	defer busy.Close()
	sent := make(chan error, 1)
	go func() {
		ack, err := busy.Send(context.Background(), adt("SLOW1", "SLOW"))
		if err == nil && ack.AckCode() != AA {
			err = fmt.Errorf("reply %q", ack.Bytes())
		}
		sent <- err
	}()
	<-started

	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	// The idle connection is closed; the busy one is not yet.
	if _, err := idle.r.ReadMessage(); err == nil {
		t.Fatal("idle connection not closed")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v while a message was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-sent; err != nil {
		t.Fatalf("in-flight message lost its reply: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("listener still open after Shutdown")
	}
}

func TestServerShutdownDeadline(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	started := make(chan struct{}, 1)
	h := HandlerFunc(func(ctx context.Context, m *Message) []byte {
		started <- struct{}{}
		select {
		case <-block:
		case <-ctx.Done(): // Close cancels handlers
		}
		return nil
	})
	srv := &Server{Handler: h}
	addr := startServer(t, srv)
	cl := &Client{Addr: addr}
	defer cl.Close()
	go func() { _, _ = cl.Send(context.Background(), adt("STUCK", "P")) }()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
}

func TestClientReconnects(t *testing.T) {
	addr := startServer(t, &Server{Handler: ackHandler, IdleTimeout: 100 * time.Millisecond})
	cl := &Client{Addr: addr}
	defer cl.Close()
	for i := range 3 {
		if _, err := cl.Send(context.Background(), adt(fmt.Sprint("R", i), "P")); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		time.Sleep(300 * time.Millisecond) // the server closes the idle connection
	}
}

func TestClientTimeout(t *testing.T) {
	h := HandlerFunc(func(ctx context.Context, m *Message) []byte {
		time.Sleep(500 * time.Millisecond)
		return ackHandler(ctx, m)
	})
	addr := startServer(t, &Server{Handler: h})
	cl := &Client{Addr: addr, Timeout: 100 * time.Millisecond}
	defer cl.Close()
	start := time.Now()
	_, err := cl.Send(context.Background(), adt("T1", "P"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Fatalf("Send took %v despite a 100ms timeout", d)
	}
	// The late reply to T1 must not be taken as the reply to T2.
	ack, err := cl.Send(context.Background(), adt("T2", "P"))
	if err == nil && ack.Get("MSA-2") != "T2" {
		t.Fatalf("T2 got reply %q", ack.Bytes())
	}
}

func TestClientRejectsBadInput(t *testing.T) {
	cl := &Client{Addr: "127.0.0.1:1"}
	if _, err := cl.Send(context.Background(), []byte("not hl7")); !errors.Is(err, ErrNoMSH) {
		t.Fatalf("err = %v", err)
	}
	if _, err := cl.Send(context.Background(), adt("X", "P")); err == nil {
		t.Fatal("send to a closed port succeeded")
	}
}

// A reply that does not acknowledge the message sent is reported.
func TestClientACKMismatch(t *testing.T) {
	h := HandlerFunc(func(ctx context.Context, m *Message) []byte {
		b, _ := NewACKFromHeader(Header{VersionID: "2.5.1", MessageControlID: "SOMETHING-ELSE"}, AA, nil)
		return b
	})
	addr := startServer(t, &Server{Handler: h})
	cl := &Client{Addr: addr}
	defer cl.Close()
	ack, err := cl.Send(context.Background(), adt("MINE", "P"))
	if !errors.Is(err, ErrACKMismatch) || ack == nil {
		t.Fatalf("err = %v", err)
	}
}

func TestTLSRoundTrip(t *testing.T) {
	cert, pool := selfSigned(t)
	addr := startServer(t, &Server{Handler: ackHandler, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	cl := &Client{Addr: addr, TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}}
	defer cl.Close()
	ack, err := cl.Send(context.Background(), adt("TLS1", "P"))
	if err != nil || ack.AckCode() != AA {
		t.Fatalf("TLS send: %v", err)
	}
	// A client that does not trust the certificate fails.
	bad := &Client{Addr: addr, TLSConfig: &tls.Config{ServerName: "localhost"}}
	defer bad.Close()
	if _, err := bad.Send(context.Background(), adt("TLS2", "P")); err == nil {
		t.Fatal("untrusted certificate accepted")
	}
	// Plain MLLP to a TLS listener gets no HL7 reply.
	c := dialRaw(t, addr)
	c.send(t, mllp.Frame(adt("PLAIN", "P")))
	if raw, err := c.r.ReadMessage(); err == nil {
		t.Fatalf("plain client got %q", raw)
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
