package hl7out_test

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/imaginghub/imaginghub/internal/testenv"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/hl7"
	"github.com/imaginghub/imaginghub/hl7intake"
	"github.com/imaginghub/imaginghub/hl7out"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
)

// peer is a real MLLP receiver whose answer the test controls.
type peer struct {
	mu       sync.Mutex
	answer   func(n int) hl7.AckCode
	received []string // MSH-10 of every message received
	addr     string
}

func startPeer(t *testing.T, answer func(n int) hl7.AckCode) *peer {
	t.Helper()
	p := &peer{answer: answer}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	srv := &hl7.Server{Handler: hl7.HandlerFunc(func(_ context.Context, m *hl7.Message) []byte {
		p.mu.Lock()
		p.received = append(p.received, m.Header().MessageControlID)
		code := p.answer(len(p.received))
		p.mu.Unlock()
		ack, _ := hl7.NewACK(m, code, nil)
		return ack
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

func (p *peer) got() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.received...)
}

func (p *peer) setAnswer(f func(n int) hl7.AckCode) {
	p.mu.Lock()
	p.answer = f
	p.mu.Unlock()
}

func startSender(t *testing.T) (*hub.Runtime, *hl7out.Sender) {
	t.Helper()
	cfg := hubtest.Config(t)
	cfg.HL7.SendTimeout = 2 * time.Second
	cfg.HL7.SendAttempts = 3
	var s *hl7out.Sender
	rt := hubtest.Start(t, cfg, func(rt *hub.Runtime) {
		l, err := hl7intake.New(rt) // for the failed-message admin API
		if err != nil {
			t.Fatal(err)
		}
		s = hl7out.New(rt)
		s.BackOff = []time.Duration{20 * time.Millisecond}
		s.ScanInterval = 100 * time.Millisecond
		rt.Server.Add(l)
		rt.Server.Add(s)
	})
	return rt, s
}

func dft(id string) []byte {
	return []byte("MSH|^~\\&|IMAGINGHUB|IMAGINGHUB|PMS|GENHOSP|20260315100000||DFT^P03^DFT_P03|" + id + "|P|2.5.1\rEVN|P03\rPID|1||PAT-1\rFT1|1|||20260315|20260315|CG|CTHEAD\r")
}

func TestDeliveryRetriesAndOrder(t *testing.T) {
	tests := []struct {
		name   string
		answer func(n int) hl7.AckCode
		sends  int // messages the peer receives for 3 queued ones
	}{
		{"accepted at once", func(int) hl7.AckCode { return hl7.AA }, 3},
		{"AE then AA", func(n int) hl7.AckCode {
			if n == 1 {
				return hl7.AE
			}
			return hl7.AA
		}, 4},
		{"AR twice then AA", func(n int) hl7.AckCode {
			if n <= 2 {
				return hl7.AR
			}
			return hl7.AA
		}, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, s := startSender(t)
			p := startPeer(t, tc.answer)
			for _, id := range []string{"M1", "M2", "M3"} {
				if err := s.Enqueue(context.Background(), p.addr, dft(id)); err != nil {
					t.Fatal(err)
				}
			}
			// A repeat of a queued message is stored once.
			if err := s.Enqueue(context.Background(), p.addr, dft("M3")); err != nil {
				t.Fatal(err)
			}
			testenv.WaitFor(t, "deliveries", 20*time.Second, func() bool { return len(p.got()) >= tc.sends })
			time.Sleep(200 * time.Millisecond)
			got := p.got()
			if len(got) != tc.sends {
				t.Fatalf("peer received %v, want %d messages", got, tc.sends)
			}
			// In order: the last three are M1..M3 when the retries are of M1.
			last := got[len(got)-3:]
			if last[0] != "M1" || last[1] != "M2" || last[2] != "M3" {
				t.Errorf("order %v", got)
			}
		})
	}
}

func TestDeadLetterAndReplay(t *testing.T) {
	rt, s := startSender(t)
	p := startPeer(t, func(int) hl7.AckCode { return hl7.AR })
	if err := s.Enqueue(context.Background(), p.addr, dft("DL-1")); err != nil {
		t.Fatal(err)
	}
	base := "http://" + rt.Server.HTTPAddr()
	var failed []hl7intake.Failed
	testenv.WaitFor(t, "dead letter", 20*time.Second, func() bool {
		rsp, err := http.Get(base + "/api/hl7/failed")
		if err != nil {
			t.Fatal(err)
		}
		defer rsp.Body.Close()
		failed = nil
		json.NewDecoder(rsp.Body).Decode(&failed)
		return len(failed) == 1
	})
	f := failed[0]
	if f.Kind != "dead-letter" || f.Deliveries != 3 || f.MessageType != "DFT^P03" || f.Reason == "" {
		t.Errorf("dead letter %+v", f)
	}
	if n := len(p.got()); n != 3 {
		t.Errorf("peer got %d tries, want hl7.send_attempts = 3", n)
	}
	p.setAnswer(func(int) hl7.AckCode { return hl7.AA })
	rsp, err := http.Post(base+"/api/hl7/failed/"+f.ID+"/replay", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		t.Fatalf("replay: %s", rsp.Status)
	}
	testenv.WaitFor(t, "replayed delivery", 20*time.Second, func() bool { return len(p.got()) == 4 })
	rsp, _ = http.Post(base+"/api/hl7/failed/"+f.ID+"/replay", "", nil)
	if rsp.StatusCode != http.StatusNotFound {
		t.Errorf("second replay: %s", rsp.Status)
	}
	rsp.Body.Close()
	for _, bad := range []string{"dlq-x", "rejected-1", "other"} {
		rsp, _ := http.Post(base+"/api/hl7/failed/"+bad+"/replay", "", nil)
		if rsp.StatusCode/100 != 4 {
			t.Errorf("replay %s: %s", bad, rsp.Status)
		}
		rsp.Body.Close()
	}
}

func TestEnqueueErrors(t *testing.T) {
	rt, _ := startSender(t)
	tests := []struct {
		dest string
		msg  []byte
		want error
	}{
		{"no-port", dft("E1"), hl7out.ErrDestination},
		{"127.0.0.1:2575", []byte("not hl7"), hl7out.ErrMessage},
	}
	for _, tc := range tests {
		if err := hl7out.Enqueue(context.Background(), rt.Bus, tc.dest, tc.msg); !errors.Is(err, tc.want) {
			t.Errorf("Enqueue(%q): %v, want %v", tc.dest, err, tc.want)
		}
	}
}

// TestQueueFoundByScan: a queue filled by another process (only the
// stream knows it) is found and delivered.
func TestQueueFoundByScan(t *testing.T) {
	rt, _ := startSender(t)
	p := startPeer(t, func(int) hl7.AckCode { return hl7.AA })
	// Enqueued by "another process": only the stream knows.
	if err := hl7out.Enqueue(context.Background(), rt.Bus, p.addr, dft("S1")); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "delivery found by scan", 20*time.Second, func() bool { return len(p.got()) == 1 })
}
