package events_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/imaginghub/imaginghub/internal/testenv"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/events"
)

// restartable is an embedded server on a fixed port and store directory
// that a test can stop and start again, as an operator restarting NATS.
type restartable struct {
	t      *testing.T
	listen string
	dir    string
	srv    *events.EmbeddedServer
}

func newRestartable(t *testing.T) *restartable {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := &restartable{t: t, listen: addr, dir: t.TempDir()}
	r.start()
	t.Cleanup(func() {
		if r.srv != nil {
			r.srv.Shutdown()
		}
	})
	return r
}

func (r *restartable) start() {
	r.t.Helper()
	srv, err := events.StartEmbedded(events.EmbeddedOptions{StoreDir: r.dir, Listen: r.listen, Logger: quiet})
	if err != nil {
		r.t.Fatalf("start NATS on %s: %v", r.listen, err)
	}
	r.srv = srv
}

func (r *restartable) stop() {
	r.srv.Shutdown()
	r.srv = nil
}

func (r *restartable) url() string { return "nats://" + r.listen }

func TestPublishWaitsForServer(t *testing.T) {
	r := newRestartable(t)
	b := connect(t, r.url(), events.Options{ReconnectWait: 50 * time.Millisecond, PublishTimeout: time.Second})
	ctx := testCtx(t)
	e := mustEvent(t, events.TypeInstanceStored, "1.2.3")
	batch := []events.Event{mustEvent(t, events.TypeInstanceStored, "b1"), mustEvent(t, events.TypeInstanceStored, "b2")}

	r.stop()
	type result struct {
		ack events.PubAck
		err error
	}
	single, many := make(chan result, 1), make(chan error, 1)
	go func() {
		ack, err := b.Publish(ctx, e)
		single <- result{ack, err}
	}()
	go func() { many <- b.PublishBatch(ctx, batch) }()
	select {
	case res := <-single:
		t.Fatalf("Publish returned while NATS was down: %+v", res)
	case <-time.After(time.Second):
	}
	r.start()
	res := <-single
	if res.err != nil {
		t.Fatalf("Publish after restart: %v", res.err)
	}
	if err := <-many; err != nil {
		t.Fatalf("PublishBatch after restart: %v", err)
	}
	if n := streamInfo(t, b, events.EventsStream).State.Msgs; n != 3 {
		t.Errorf("stream holds %d messages after restart, want 3", n)
	}

	// A caller's deadline still bounds the wait.
	r.stop()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := b.Publish(short, mustEvent(t, events.TypeInstanceStored, "late")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish with NATS down and a deadline: %v, want DeadlineExceeded", err)
	}
	r.start()
}

func TestConsumerResumesAfterReconnect(t *testing.T) {
	r := newRestartable(t)
	b := connect(t, r.url(), events.Options{ReconnectWait: 50 * time.Millisecond})
	ctx := testCtx(t)
	var rec recorder
	c, err := b.Consume(ctx, events.ConsumerSpec{Name: "reconcile", FilterSubjects: []string{events.TypeStudyStable}},
		func(_ context.Context, e events.Event, d events.Delivery) error {
			rec.add(e, d)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	// Delivery is at least once: an ack the server restart cuts off brings
	// the event again later (consumers drop repeats by event id), so the
	// test counts distinct events.
	for round := range 3 {
		if _, err := b.Publish(ctx, mustEvent(t, events.TypeStudyStable, fmt.Sprint(round))); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, fmt.Sprintf("delivery in round %d", round), 30*time.Second, func() bool { return len(rec.distinct()) == round+1 })
		r.stop()
		time.Sleep(200 * time.Millisecond)
		r.start()
	}
	testenv.WaitFor(t, "consumer caught up", 30*time.Second, func() bool {
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 0
	})
	for i, id := range rec.distinct() {
		if want := mustEvent(t, events.TypeStudyStable, fmt.Sprint(i)).ID; id != want {
			t.Errorf("event %d delivered: %s, want %s", i, id, want)
		}
	}
}

// An ack that finds NATS restarting is tried again once the connection is
// back: the message is settled well before AckWait would bring it again.
func TestAckRetriedAcrossRestart(t *testing.T) {
	r := newRestartable(t)
	b := connect(t, r.url(), events.Options{ReconnectWait: 50 * time.Millisecond, PublishTimeout: 5 * time.Second})
	ctx := testCtx(t)
	release := make(chan struct{})
	var rec recorder
	c, err := b.Consume(ctx, events.ConsumerSpec{Name: "ack-restart", FilterSubjects: []string{events.TypeStudyStable}, AckWait: 30 * time.Second},
		func(_ context.Context, e events.Event, d events.Delivery) error {
			rec.add(e, d)
			<-release
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if _, err := b.Publish(ctx, mustEvent(t, events.TypeStudyStable, "ack")); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "delivery", 10*time.Second, func() bool { return rec.count() == 1 })
	// The handler finishes while the server is down: its ack cannot go out.
	r.stop()
	testenv.WaitFor(t, "client noticing the restart", 5*time.Second, func() bool { return !b.Conn().IsConnected() })
	close(release)
	time.Sleep(300 * time.Millisecond)
	r.start()
	testenv.WaitFor(t, "ack recorded after the restart", 10*time.Second, func() bool {
		info, err := c.Info(context.Background())
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	if n := rec.count(); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
}

func TestStartEmbedded(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cases := []struct {
		name    string
		opts    events.EmbeddedOptions
		wantErr func(error) bool
		wantMsg string
	}{
		{"random port", events.EmbeddedOptions{StoreDir: t.TempDir()}, nil, ""},
		{"explicit port 0", events.EmbeddedOptions{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil, ""},
		{"in-process only", events.EmbeddedOptions{StoreDir: t.TempDir(), InProcessOnly: true}, nil, ""},
		{"port in use", events.EmbeddedOptions{StoreDir: t.TempDir(), Listen: busy.Addr().String()},
			func(err error) bool { return errors.Is(err, syscall.EADDRINUSE) },
			"nats listen " + busy.Addr().String() + ": address already in use"},
		{"no store dir", events.EmbeddedOptions{}, func(err error) bool { return errors.Is(err, events.ErrNoStoreDir) }, "StoreDir"},
		{"bad listen", events.EmbeddedOptions{StoreDir: t.TempDir(), Listen: "localhost"}, func(err error) bool { return err != nil }, "listen"},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			tc.opts.Logger = quiet
			srv, err := events.StartEmbedded(tc.opts)
			if tc.wantErr != nil {
				if srv != nil {
					srv.Shutdown()
				}
				if !tc.wantErr(err) || !strings.Contains(fmt.Sprint(err), tc.wantMsg) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Shutdown()
			url := srv.ClientURL()
			if tc.opts.InProcessOnly != (url == "") {
				t.Errorf("ClientURL = %q with InProcessOnly %v", url, tc.opts.InProcessOnly)
			}
			if strings.HasSuffix(url, ":4222") || strings.HasSuffix(url, ":4223") {
				t.Errorf("random port resolved to a well-known one: %s", url)
			}
			opts := events.Options{}
			if tc.opts.InProcessOnly {
				opts.InProcessServer = srv
			}
			b := connect(t, url, opts)
			if _, err := b.Publish(testCtx(t), mustEvent(t, events.TypeFHIRPublished, tc.name)); err != nil {
				t.Errorf("publish: %v", err)
			}
		})
	}
}

func TestConnectGivesUpWithContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	b, err := events.Connect(ctx, "nats://"+addr, events.Options{ReconnectWait: 50 * time.Millisecond, Logger: quiet})
	if err == nil {
		b.Close()
		t.Fatal("connected to nothing")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
}
