package hl7intake_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/hl7"
	"github.com/imaginghub/imaginghub/hl7/mllp"
	"github.com/imaginghub/imaginghub/hl7intake"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
)

const validADT = "MSH|^~\\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315100000||ADT^A08|OK-%d|P|2.5.1\rPID|1||PAT-1\r"

func startListener(t *testing.T) (*hub.Runtime, *hl7intake.Listener) {
	t.Helper()
	cfg := hubtest.Config(t)
	cfg.HL7.MaxMessageSize = 4096
	cfg.HL7.IdleTimeout = 5 * time.Second
	var l *hl7intake.Listener
	rt := hubtest.Start(t, cfg, func(rt *hub.Runtime) {
		var err error
		l, err = hl7intake.New(rt, hl7intake.Route{Domain: "test", MessageType: "ADT", TriggerEvents: []string{"A08"}})
		if err != nil {
			t.Fatal(err)
		}
		rt.Server.Add(l)
	})
	return rt, l
}

// exchange writes raw bytes on a new connection and returns the reply
// block, or io.EOF when the listener closed the connection without one.
func exchange(t *testing.T, addr string, raw []byte) ([]byte, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(raw); err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	return mllp.NewReader(bufio.NewReader(c), 0).ReadMessage()
}

func TestMalformedInput(t *testing.T) {
	_, l := startListener(t)
	garbage := make([]byte, 3000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(r.UintN(256))
	}
	tests := []struct {
		name string
		raw  []byte
		// wantAR: an AR reply; otherwise the connection is closed without
		// a reply.
		wantAR bool
	}{
		{"no MSH", mllp.Frame([]byte("PID|1||PAT-1\r")), false},
		{"bad encoding characters", mllp.Frame([]byte("MSH|^^^^|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315||ADT^A08|BAD-1|P|2.5.1\r")), true},
		{"missing MSH-10", mllp.Frame([]byte("MSH|^~\\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315||ADT^A08||P|2.5.1\r")), true},
		{"truncated frame", []byte("\x0bMSH|^~\\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|2026"), false},
		{"oversized frame", mllp.Frame(bytes.Repeat([]byte("A"), 8000)), false},
		{"binary garbage", garbage, false},
		{"garbage in a frame", mllp.Frame(bytes.ReplaceAll(bytes.ReplaceAll(garbage, []byte{0x0b}, nil), []byte{0x1c}, nil)), false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reply, err := exchange(t, l.Addr(), tc.raw)
			if tc.wantAR {
				if err != nil {
					t.Fatalf("want AR, got %v", err)
				}
				ack, perr := hl7.Parse(reply)
				if perr != nil || ack.Get("MSA-1") != "AR" {
					t.Fatalf("want AR, got %q (%v)", reply, perr)
				}
			} else if err == nil {
				ack, _ := hl7.Parse(reply)
				if ack == nil || ack.Get("MSA-1") != "AR" {
					t.Fatalf("want closed connection or AR, got %q", reply)
				}
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isReset(err) {
				t.Fatalf("read: %v", err)
			}
			// The listener keeps serving.
			c := &hl7.Client{Addr: l.Addr(), Timeout: 5 * time.Second}
			defer c.Close()
			ack, err := c.Send(context.Background(), []byte(strings.Replace(validADT, "%d", string(rune('a'+i)), 1)))
			if err != nil || ack.Get("MSA-1") != "AA" {
				t.Fatalf("valid message after %s: %v %v", tc.name, err, ack)
			}
		})
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

func TestAckAfterStoreAndDuplicates(t *testing.T) {
	rt, l := startListener(t)
	c := &hl7.Client{Addr: l.Addr(), Timeout: 5 * time.Second}
	defer c.Close()
	msg := []byte("MSH|^~\\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315100000||ADT^A08|DUP-1|P|2.5.1\rPID|1||PAT-1\r")
	for i := range 3 {
		ack, err := c.Send(context.Background(), msg)
		if err != nil || ack.Get("MSA-1") != "AA" || ack.Get("MSA-2") != "DUP-1" {
			t.Fatalf("send %d: %v %v", i, err, ack)
		}
	}
	// The same control ID from another facility is another message.
	other := bytes.Replace(msg, []byte("GENHOSP"), []byte("OTHERHOSP"), 1)
	if ack, err := c.Send(context.Background(), other); err != nil || ack.Get("MSA-1") != "AA" {
		t.Fatalf("other facility: %v %v", err, ack)
	}
	s, err := rt.Bus.JetStream().Stream(context.Background(), rt.Bus.StreamName(hl7intake.StreamName))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("stream holds %d messages, want 2 (one per sender's MSH-10)", info.State.Msgs)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), rt.Bus.Subject(hl7intake.Subject("test", "ADT")))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Data, other) || m.Header.Get(hl7intake.HeaderMessageKey) == "" || m.Header.Get(hl7intake.HeaderMessageType) != "ADT^A08" {
		t.Errorf("stored message %q headers %v", m.Data, m.Header)
	}
}

func TestMessageKey(t *testing.T) {
	base := hl7.Header{SendingApplication: "HIS", SendingFacility: "GENHOSP", MessageControlID: "1"}
	tests := []struct {
		name string
		h    hl7.Header
		same bool
	}{
		{"same message", base, true},
		{"other receiver", hl7.Header{SendingApplication: "HIS", SendingFacility: "GENHOSP", MessageControlID: "1", ReceivingApplication: "X"}, true},
		{"other control ID", hl7.Header{SendingApplication: "HIS", SendingFacility: "GENHOSP", MessageControlID: "2"}, false},
		{"other facility", hl7.Header{SendingApplication: "HIS", SendingFacility: "OTHER", MessageControlID: "1"}, false},
		{"fields shifted", hl7.Header{SendingApplication: "HISG", SendingFacility: "ENHOSP", MessageControlID: "1"}, false},
	}
	k := hl7intake.MessageKey(base)
	for _, tc := range tests {
		if got := hl7intake.MessageKey(tc.h) == k; got != tc.same {
			t.Errorf("%s: same key = %v, want %v", tc.name, got, tc.same)
		}
	}
}

// TestMarkProcessedBatch: a key recorded before, or earlier in the same
// batch (also across the statement chunks), is not new.
func TestMarkProcessedBatch(t *testing.T) {
	rt, _ := startListener(t)
	ctx := context.Background()
	err := rt.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
		_, err := hl7intake.MarkProcessed(ctx, tx, "test", "old", "ADT^A08")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"k1", "old", "k2", "k1"}
	want := []bool{true, false, true, false}
	for i := range 200 {
		keys = append(keys, fmt.Sprintf("n%d", i))
		want = append(want, true)
	}
	keys = append(keys, "k2", "n150", "k3")
	want = append(want, false, false, true)
	types := make([]string, len(keys))
	for i := range types {
		types[i] = "ADT^A08"
	}
	var first []bool
	err = rt.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
		var err error
		first, err = hl7intake.MarkProcessedBatch(ctx, tx, "test", keys, types)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		if first[i] != want[i] {
			t.Errorf("key %d %s: first %v, want %v", i, keys[i], first[i], want[i])
		}
	}
	// Everything is recorded now.
	err = rt.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
		first, err = hl7intake.MarkProcessedBatch(ctx, tx, "test", keys[:8], types[:8])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(first, true) {
		t.Errorf("recorded keys reported new: %v", first)
	}
}
