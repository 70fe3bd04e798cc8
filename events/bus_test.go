package events_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/internal/testenv"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// harness makes Buses on one kind of NATS server, each with its own
// subject and stream prefixes and streams already ensured.
type harness struct {
	name   string
	newBus func(t *testing.T, opts events.Options) *events.Bus
}

func embeddedHarness() harness {
	return harness{name: "embedded", newBus: func(t *testing.T, opts events.Options) *events.Bus {
		t.Helper()
		srv, err := events.StartEmbedded(events.EmbeddedOptions{StoreDir: t.TempDir(), InProcessOnly: true, Logger: quiet})
		if err != nil {
			t.Fatalf("StartEmbedded: %v", err)
		}
		t.Cleanup(srv.Shutdown)
		tok := testenv.Unique()
		opts.InProcessServer = srv
		opts.SubjectPrefix = "t" + tok + "."
		opts.StreamPrefix = "T" + strings.ToUpper(tok) + "_"
		return connect(t, "", opts)
	}}
}

func externalHarness() harness {
	return harness{name: "external", newBus: func(t *testing.T, opts events.Options) *events.Bus {
		t.Helper()
		url, subjPrefix, streamPrefix := testenv.NATSURL(t)
		opts.SubjectPrefix, opts.StreamPrefix = subjPrefix, streamPrefix
		b := connect(t, url, opts)
		t.Cleanup(func() { deleteStreams(t, b) })
		return b
	}}
}

func connect(t *testing.T, url string, opts events.Options) *events.Bus {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := events.Connect(ctx, url, opts)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(b.Close)
	if err := b.EnsureStreams(ctx); err != nil {
		t.Fatalf("EnsureStreams: %v", err)
	}
	return b
}

// deleteStreams removes every stream under the Bus's stream prefix.
func deleteStreams(t *testing.T, b *events.Bus) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	names := b.JetStream().StreamNames(ctx)
	var mine []string
	for n := range names.Name() {
		if strings.HasPrefix(n, b.StreamPrefix()) {
			mine = append(mine, n)
		}
	}
	for _, n := range mine {
		if err := b.JetStream().DeleteStream(ctx, n); err != nil {
			t.Logf("delete stream %s: %v", n, err)
		}
	}
}

// TestBus runs the same cases against the embedded server and, when
// IMAGINGHUB_TEST_NATS_URL is set, an external one.
func TestBus(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, h harness)
	}{
		{"streams", testStreams},
		{"publish", testPublish},
		{"publish_batch", testPublishBatch},
		{"consume_ack", testConsumeAck},
		{"consume_batch", testConsumeBatch},
		{"retry_and_dead_letter", testRetryAndDeadLetter},
		{"dead_letter_ops", testDeadLetterOps},
		{"graceful_stop", testGracefulStop},
	}
	for _, h := range []harness{embeddedHarness(), externalHarness()} {
		t.Run(h.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) { c.run(t, h) })
			}
		})
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustEvent(t *testing.T, typ string, key ...string) events.Event {
	t.Helper()
	e, err := events.New("/imaginghub/test", typ, "1.2.826.0.1.3680043.8.498.1", map[string]string{"k": strings.Join(key, "/")}, key...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func streamInfo(t *testing.T, b *events.Bus, base string) *jetstream.StreamInfo {
	t.Helper()
	st, err := b.JetStream().Stream(testCtx(t), b.StreamName(base))
	if err != nil {
		t.Fatalf("stream %s: %v", base, err)
	}
	return st.CachedInfo()
}

func testStreams(t *testing.T, h harness) {
	ctx := testCtx(t)
	b := h.newBus(t, events.Options{})

	// Ensuring again changes nothing.
	if err := b.EnsureStreams(ctx); err != nil {
		t.Fatalf("second EnsureStreams: %v", err)
	}
	for _, want := range []struct {
		base, subject string
		maxAge        time.Duration
	}{
		{events.EventsStream, "ih.>", 7 * 24 * time.Hour},
		{events.DeadLetterStream, "ihdlq.>", 90 * 24 * time.Hour},
	} {
		cfg := streamInfo(t, b, want.base).Config
		if got := cfg.Subjects; len(got) != 1 || got[0] != b.Subject(want.subject) {
			t.Errorf("%s subjects = %v, want [%s]", want.base, got, b.Subject(want.subject))
		}
		if cfg.Storage != jetstream.FileStorage || cfg.Retention != jetstream.LimitsPolicy {
			t.Errorf("%s storage %v retention %v, want file/limits", want.base, cfg.Storage, cfg.Retention)
		}
		if cfg.MaxAge != want.maxAge || cfg.Duplicates != 10*time.Minute {
			t.Errorf("%s max age %v duplicates %v, want %v, 10m", want.base, cfg.MaxAge, cfg.Duplicates, want.maxAge)
		}
	}

	if _, err := b.Publish(ctx, mustEvent(t, events.TypeStudyStable, "s1")); err != nil {
		t.Fatal(err)
	}

	// A changed configuration is applied in place and keeps the messages.
	spec := b.DefaultStreams()[0]
	spec.MaxAge = 48 * time.Hour
	spec.Duplicates = 2 * time.Minute
	info, err := b.EnsureStream(ctx, spec)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if info.Config.MaxAge != 48*time.Hour || info.Config.Duplicates != 2*time.Minute {
		t.Errorf("after update max age %v duplicates %v", info.Config.MaxAge, info.Config.Duplicates)
	}
	if n := streamInfo(t, b, events.EventsStream).State.Msgs; n != 1 {
		t.Errorf("after update the stream holds %d messages, want 1", n)
	}

	// A caller's own stream goes through the same mechanism.
	hl7 := events.StreamSpec{Name: "IH_HL7", Subjects: []string{"ihraw.hl7.>"}, Retention: jetstream.WorkQueuePolicy, MaxAge: 24 * time.Hour}
	for i := range 2 {
		if err := b.EnsureStreams(ctx, hl7); err != nil {
			t.Fatalf("EnsureStreams with extra (round %d): %v", i, err)
		}
	}
	if cfg := streamInfo(t, b, "IH_HL7").Config; cfg.Retention != jetstream.WorkQueuePolicy || cfg.Subjects[0] != b.Subject("ihraw.hl7.>") {
		t.Errorf("extra stream config %+v", cfg)
	}

	// A change JetStream cannot make is reported, naming the stream.
	mem := hl7
	mem.Storage = jetstream.MemoryStorage
	if _, err := b.EnsureStream(ctx, mem); err == nil || !strings.Contains(err.Error(), b.StreamName("IH_HL7")) {
		t.Errorf("storage change: err = %v, want an error naming the stream", err)
	}
	if _, err := b.EnsureStream(ctx, events.StreamSpec{Name: "X"}); err == nil {
		t.Error("spec without subjects accepted")
	}
}

func testPublish(t *testing.T, h harness) {
	ctx := testCtx(t)
	reg := prometheus.NewRegistry()
	b := h.newBus(t, events.Options{Registerer: reg, PublishTimeout: time.Second})
	e1 := mustEvent(t, events.TypeOrderScheduled, "ORD1")
	e2 := mustEvent(t, events.TypeOrderScheduled, "ORD2")

	steps := []struct {
		name    string
		publish func() (events.PubAck, error)
		wantSeq uint64
		wantDup bool
	}{
		{"first", func() (events.PubAck, error) { return b.Publish(ctx, e1) }, 1, false},
		{"same id again", func() (events.PubAck, error) { return b.Publish(ctx, e1) }, 1, true},
		{"other id", func() (events.PubAck, error) { return b.Publish(ctx, e2) }, 2, false},
		{"raw", func() (events.PubAck, error) {
			return b.PublishRaw(ctx, "ih.test.raw", "raw-1", []byte("MSH|^~\\&|"), nil)
		}, 3, false},
		{"raw again", func() (events.PubAck, error) {
			return b.PublishRaw(ctx, "ih.test.raw", "raw-1", []byte("MSH|^~\\&|"), nil)
		}, 3, true},
	}
	for _, s := range steps {
		ack, err := s.publish()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if ack.Sequence != s.wantSeq || ack.Duplicate != s.wantDup || ack.Stream != b.StreamName(events.EventsStream) {
			t.Errorf("%s: ack %+v, want seq %d duplicate %v on %s", s.name, ack, s.wantSeq, s.wantDup, b.StreamName(events.EventsStream))
		}
	}
	if n := streamInfo(t, b, events.EventsStream).State.Msgs; n != 3 {
		t.Errorf("stream holds %d messages, want 3", n)
	}
	if got := metricValue(t, reg, "imaginghub_events_published_total", "duplicate", "true"); got != 2 {
		t.Errorf("published_total{duplicate=true} = %v, want 2", got)
	}

	// The stored message is the envelope, found by its subject.
	st, _ := b.JetStream().Stream(ctx, b.StreamName(events.EventsStream))
	raw, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.Unmarshal(raw.Data)
	if err != nil || got.ID != e1.ID || raw.Subject != b.Subject(events.TypeOrderScheduled) {
		t.Errorf("stored %s %q (%v), want %s %s", raw.Subject, got.ID, err, b.Subject(events.TypeOrderScheduled), e1.ID)
	}
	if raw.Header.Get(events.HeaderEventType) != events.TypeOrderScheduled {
		t.Errorf("%s header = %q", events.HeaderEventType, raw.Header.Get(events.HeaderEventType))
	}

	// No stream binds the subject: a clear error once PublishTimeout passed.
	_, err = b.PublishRaw(ctx, "nostream.here", "x", []byte("x"), nil)
	if !errors.Is(err, events.ErrNoStream) {
		t.Errorf("publish to unbound subject: %v, want ErrNoStream", err)
	}
	if _, err := b.Publish(ctx, events.Event{ID: "x"}); err == nil {
		t.Error("invalid envelope published")
	}
}

func testPublishBatch(t *testing.T, h harness) {
	ctx := testCtx(t)
	b := h.newBus(t, events.Options{})
	var batch []events.Event
	for i := range 500 {
		batch = append(batch, mustEvent(t, events.TypeInstanceStored, fmt.Sprint(i)))
	}
	if err := b.PublishBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	// A relay re-sending part of a batch after a crash stores nothing new.
	if err := b.PublishBatch(ctx, batch[100:200]); err != nil {
		t.Fatal(err)
	}
	msgs := []events.Message{{Subject: "ih.test.raw", MsgID: "m1", Data: []byte("a")}, {Subject: "ih.test.raw", MsgID: "m1", Data: []byte("a")}}
	if err := b.PublishMsgs(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if n := streamInfo(t, b, events.EventsStream).State.Msgs; n != 501 {
		t.Errorf("stream holds %d messages, want 501", n)
	}
	bad := []events.Message{{Subject: "ih.test.raw", MsgID: "m2"}, {Subject: "nostream.x", MsgID: "m3"}}
	b2 := h.newBus(t, events.Options{PublishTimeout: 500 * time.Millisecond})
	err := b2.PublishMsgs(ctx, bad)
	var be *events.BatchError
	if !errors.As(err, &be) || len(be.Errs) != 2 || be.Errs[0] != nil || !errors.Is(be.Errs[1], events.ErrNoStream) {
		t.Errorf("partial batch: %v, want BatchError with only the second failing (ErrNoStream)", err)
	}
}

// metricValue reads a counter, or a histogram's sample count, from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue()
					}
					return float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	t.Fatalf("metric %s{%s=%q} not found", name, label, value)
	return 0
}

// recorder collects the deliveries a handler saw.
type recorder struct {
	mu   sync.Mutex
	seen []events.Delivery
	evs  []events.Event
	at   []time.Time
}

func (r *recorder) add(e events.Event, d events.Delivery) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, d)
	r.evs = append(r.evs, e)
	r.at = append(r.at, time.Now())
	return len(r.seen)
}

// distinct is the ids of the events seen, each once, in the order of
// their first delivery.
func (r *recorder) distinct() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	seen := map[string]bool{}
	for _, e := range r.evs {
		if !seen[e.ID] {
			seen[e.ID] = true
			ids = append(ids, e.ID)
		}
	}
	return ids
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

func settled(t *testing.T, c *events.Consumer) bool {
	info, err := c.Info(context.Background())
	if err != nil {
		t.Logf("consumer info: %v", err)
		return false
	}
	return info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
}

func testConsumeAck(t *testing.T, h harness) {
	ctx := testCtx(t)
	reg := prometheus.NewRegistry()
	b := h.newBus(t, events.Options{Registerer: reg})
	for i := range 3 {
		if _, err := b.Publish(ctx, mustEvent(t, events.TypeStudyStable, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Publish(ctx, mustEvent(t, events.TypeOrderScheduled, "o")); err != nil {
		t.Fatal(err)
	}
	var rec recorder
	c, err := b.Consume(ctx, events.ConsumerSpec{Name: "archive", FilterSubjects: []string{events.TypeStudyStable}, Concurrency: 2},
		func(_ context.Context, e events.Event, d events.Delivery) error {
			rec.add(e, d)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	testenv.WaitFor(t, "3 deliveries settled", 10*time.Second, func() bool { return rec.count() == 3 && settled(t, c) })
	for i, d := range rec.seen {
		if rec.evs[i].Type != events.TypeStudyStable || d.Subject != b.Subject(events.TypeStudyStable) ||
			d.NumDelivered != 1 || d.Consumer != "archive" || d.Stream != b.StreamName(events.EventsStream) || d.Replay {
			t.Errorf("delivery %d: %+v of %s", i, d, rec.evs[i].Type)
		}
	}
	// Creating the same durable again (a restart) is fine and redelivers nothing.
	c.Stop()
	c2, err := b.Consume(ctx, events.ConsumerSpec{Name: "archive", FilterSubjects: []string{events.TypeStudyStable}}, func(_ context.Context, e events.Event, d events.Delivery) error {
		rec.add(e, d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Stop()
	time.Sleep(200 * time.Millisecond)
	if n := rec.count(); n != 3 {
		t.Errorf("after restart %d deliveries, want still 3", n)
	}
	if got := metricValue(t, reg, "imaginghub_events_processed_total", "consumer", "archive"); got != 3 {
		t.Errorf("processed_total = %v, want 3", got)
	}
	if got := metricValue(t, reg, "imaginghub_events_handler_duration_seconds", "consumer", "archive"); got != 3 {
		t.Errorf("handler_duration_seconds count = %v, want 3", got)
	}
	if _, err := b.Consume(ctx, events.ConsumerSpec{Name: "bad.name"}, func(context.Context, events.Event, events.Delivery) error { return nil }); err == nil {
		t.Error("consumer name with '.' accepted")
	}
}

// testConsumeBatch: a backlog is handed over in batches, in order; a batch
// that fails is handed over again message by message, so only the bad
// message is dead-lettered and every other one is applied exactly once.
func testConsumeBatch(t *testing.T, h harness) {
	ctx := testCtx(t)
	b := h.newBus(t, events.Options{})
	const n = 50
	var want []string
	for i := range n + 1 {
		key := fmt.Sprint(i)
		if i == 20 {
			key = "bad"
		} else {
			want = append(want, key)
		}
		if _, err := b.Publish(ctx, mustEvent(t, events.TypeStudyStable, key)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var applied []string
	var sizes []int
	c, err := b.ConsumeRawBatch(ctx, events.ConsumerSpec{Name: "batcher", FilterSubjects: []string{events.TypeStudyStable},
		Batch: 16, MaxDeliver: 2, BackOff: []time.Duration{50 * time.Millisecond}},
		func(_ context.Context, ds []events.Delivery) error {
			var keys []string
			for _, d := range ds {
				e, err := events.Unmarshal(d.Data)
				if err != nil {
					return events.Permanent(err)
				}
				var data map[string]string
				if err := e.DecodeData(&data); err != nil {
					return events.Permanent(err)
				}
				if data["k"] == "bad" {
					return events.Permanent(errors.New("unreadable"))
				}
				keys = append(keys, data["k"])
			}
			mu.Lock()
			defer mu.Unlock()
			sizes = append(sizes, len(ds))
			applied = append(applied, keys...) // all or nothing, like one transaction
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	testenv.WaitFor(t, "every message settled", 20*time.Second, func() bool {
		mu.Lock()
		done := len(applied) >= n
		mu.Unlock()
		return done && settled(t, c)
	})
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(applied, want) {
		t.Errorf("applied %v, want %v once each in order", applied, want)
	}
	if slices.Max(sizes) < 2 {
		t.Errorf("batch sizes %v: the backlog was not batched", sizes)
	}
	dls, err := b.ListDeadLetters(ctx, events.DeadLetterFilter{Consumer: "batcher"})
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 {
		t.Errorf("%d dead letters, want the bad message alone", len(dls))
	}
}

func testRetryAndDeadLetter(t *testing.T, h harness) {
	errBoom := errors.New("peer unavailable")
	backOff := []time.Duration{100 * time.Millisecond, 300 * time.Millisecond}
	cases := []struct {
		name       string
		maxDeliver int
		raw        []byte // published instead of an envelope when set
		handler    func(n int) error
		wantCalls  int
		wantDLQ    bool
		wantErr    string
	}{
		{name: "succeeds on third delivery", maxDeliver: 5, handler: func(n int) error {
			if n < 3 {
				return errBoom
			}
			return nil
		}, wantCalls: 3},
		{name: "always fails", maxDeliver: 3, handler: func(int) error { return errBoom }, wantCalls: 3, wantDLQ: true, wantErr: "peer unavailable"},
		{name: "permanent", maxDeliver: 5, handler: func(int) error { return events.Permanent(fmt.Errorf("no such order: %w", errBoom)) }, wantCalls: 1, wantDLQ: true, wantErr: "no such order"},
		{name: "panics", maxDeliver: 2, handler: func(int) error { panic("bug") }, wantCalls: 2, wantDLQ: true, wantErr: "panic"},
		{name: "bad envelope", maxDeliver: 5, raw: []byte(`{"specversion":"0.3"`), handler: func(int) error { return nil }, wantCalls: 0, wantDLQ: true, wantErr: "decode envelope"},
	}
	for i, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			ctx := testCtx(t)
			reg := prometheus.NewRegistry()
			b := h.newBus(t, events.Options{Registerer: reg})
			typ := fmt.Sprintf("ih.test.case%d", i)
			name := fmt.Sprintf("worker%d", i)
			var rec recorder
			c, err := b.Consume(ctx, events.ConsumerSpec{Name: name, FilterSubjects: []string{typ}, MaxDeliver: tc.maxDeliver, BackOff: backOff},
				func(_ context.Context, e events.Event, d events.Delivery) error {
					return tc.handler(rec.add(e, d))
				})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Stop()
			e := mustEvent(t, typ, "k")
			if tc.raw != nil {
				_, err = b.PublishRaw(ctx, typ, "raw", tc.raw, nil)
			} else {
				_, err = b.Publish(ctx, e)
			}
			if err != nil {
				t.Fatal(err)
			}
			testenv.WaitFor(t, "message settled", 15*time.Second, func() bool { return settled(t, c) && rec.count() >= tc.wantCalls })
			time.Sleep(150 * time.Millisecond) // a wrong extra redelivery would show up here
			if n := rec.count(); n != tc.wantCalls {
				t.Errorf("handler called %d times, want %d", n, tc.wantCalls)
			}
			for k := 1; k < len(rec.at) && tc.name == "succeeds on third delivery"; k++ {
				if gap := rec.at[k].Sub(rec.at[k-1]); gap < backOff[k-1]-20*time.Millisecond {
					t.Errorf("redelivery %d after %v, want back-off %v", k+1, gap, backOff[k-1])
				}
				if rec.seen[k].NumDelivered != uint64(k+1) {
					t.Errorf("delivery %d NumDelivered = %d", k+1, rec.seen[k].NumDelivered)
				}
			}
			dls, err := b.ListDeadLetters(ctx, events.DeadLetterFilter{Consumer: name})
			if err != nil {
				t.Fatal(err)
			}
			if !tc.wantDLQ {
				if len(dls) != 0 {
					t.Errorf("dead letters %+v, want none", dls)
				}
				return
			}
			if len(dls) != 1 {
				t.Fatalf("%d dead letters, want 1", len(dls))
			}
			dl := dls[0]
			wantDeliveries := uint64(max(tc.wantCalls, 1))
			if dl.Consumer != name || dl.Subject != b.Subject(typ) || dl.Stream != b.StreamName(events.EventsStream) ||
				dl.StreamSeq != 1 || dl.Deliveries != wantDeliveries || !strings.Contains(dl.Error, tc.wantErr) ||
				time.Since(dl.Time) > time.Minute {
				t.Errorf("dead letter %+v", dl)
			}
			if tc.raw == nil && (dl.EventID != e.ID || dl.EventType != typ) {
				t.Errorf("dead letter event %q %q, want %q %q", dl.EventID, dl.EventType, e.ID, typ)
			}
			if tc.raw != nil && string(dl.Data) != string(tc.raw) {
				t.Errorf("dead letter payload %q, want the original %q", dl.Data, tc.raw)
			}
			if got := metricValue(t, reg, "imaginghub_events_dead_lettered_total", "consumer", name); got != 1 {
				t.Errorf("dead_lettered_total = %v", got)
			}
			if tc.wantCalls > 1 {
				if got := metricValue(t, reg, "imaginghub_events_retried_total", "consumer", name); got != float64(tc.wantCalls-1) {
					t.Errorf("retried_total = %v, want %d", got, tc.wantCalls-1)
				}
			}
		})
	}
}

func testDeadLetterOps(t *testing.T, h harness) {
	ctx := testCtx(t)
	b := h.newBus(t, events.Options{})
	var failing sync.Map // event id -> true while the "billing" consumer should fail
	var billing, fhir recorder
	spec := func(name string) events.ConsumerSpec {
		return events.ConsumerSpec{Name: name, FilterSubjects: []string{events.TypeProcedureCompleted}, MaxDeliver: 2, BackOff: []time.Duration{50 * time.Millisecond}}
	}
	cb, err := b.Consume(ctx, spec("billing"), func(_ context.Context, e events.Event, d events.Delivery) error {
		billing.add(e, d)
		if _, ok := failing.Load(e.ID); ok {
			return errors.New("practice management system down")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Stop()
	cf, err := b.Consume(ctx, spec("fhir"), func(_ context.Context, e events.Event, d events.Delivery) error {
		fhir.add(e, d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Stop()

	e1 := mustEvent(t, events.TypeProcedureCompleted, "MPPS1")
	e2 := mustEvent(t, events.TypeProcedureCompleted, "MPPS2")
	failing.Store(e1.ID, true)
	failing.Store(e2.ID, true)
	for _, e := range []events.Event{e1, e2} {
		if _, err := b.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	list := func(f events.DeadLetterFilter) []events.DeadLetter {
		t.Helper()
		dls, err := b.ListDeadLetters(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		return dls
	}
	testenv.WaitFor(t, "two dead letters", 10*time.Second, func() bool { return len(list(events.DeadLetterFilter{})) == 2 })

	filters := []struct {
		name string
		f    events.DeadLetterFilter
		want int
	}{
		{"all", events.DeadLetterFilter{}, 2},
		{"billing", events.DeadLetterFilter{Consumer: "billing"}, 2},
		{"fhir", events.DeadLetterFilter{Consumer: "fhir"}, 0},
		{"limit", events.DeadLetterFilter{Limit: 1}, 1},
	}
	for _, f := range filters {
		if got := len(list(f.f)); got != f.want {
			t.Errorf("filter %s: %d dead letters, want %d", f.name, got, f.want)
		}
	}
	dls := list(events.DeadLetterFilter{Consumer: "billing"})
	if dls[0].EventID != e1.ID || dls[1].EventID != e2.ID {
		t.Fatalf("dead letters %s, %s; want %s, %s", dls[0].EventID, dls[1].EventID, e1.ID, e2.ID)
	}
	if got := list(events.DeadLetterFilter{After: dls[0].Sequence}); len(got) != 1 || got[0].Sequence != dls[1].Sequence {
		t.Errorf("paging after %d: %+v", dls[0].Sequence, got)
	}

	// Replay e1 once the peer is back: only billing sees it again.
	failing.Delete(e1.ID)
	fhirBefore, billingBefore := fhir.count(), billing.count()
	if err := b.ReplayDeadLetter(ctx, dls[0].Sequence); err != nil {
		t.Fatalf("replay: %v", err)
	}
	testenv.WaitFor(t, "replay handled", 10*time.Second, func() bool { return billing.count() == billingBefore+1 && settled(t, cb) && settled(t, cf) })
	last := billing.seen[len(billing.seen)-1]
	if !last.Replay || billing.evs[len(billing.evs)-1].ID != e1.ID || last.NumDelivered != 1 {
		t.Errorf("replayed delivery %+v", last)
	}
	if fhir.count() != fhirBefore {
		t.Errorf("fhir saw the replay meant for billing (%d deliveries, want %d)", fhir.count(), fhirBefore)
	}
	if got := list(events.DeadLetterFilter{}); len(got) != 1 || got[0].EventID != e2.ID {
		t.Errorf("after replay: %+v, want only e2", got)
	}
	if err := b.ReplayDeadLetter(ctx, dls[0].Sequence); !errors.Is(err, events.ErrDeadLetterNotFound) {
		t.Errorf("second replay: %v, want ErrDeadLetterNotFound", err)
	}

	// Discard e2.
	if err := b.DiscardDeadLetter(ctx, dls[1].Sequence); err != nil {
		t.Fatalf("discard: %v", err)
	}
	if got := list(events.DeadLetterFilter{}); len(got) != 0 {
		t.Errorf("after discard: %+v", got)
	}
	if err := b.DiscardDeadLetter(ctx, dls[1].Sequence); !errors.Is(err, events.ErrDeadLetterNotFound) {
		t.Errorf("second discard: %v, want ErrDeadLetterNotFound", err)
	}
	if _, err := b.GetDeadLetter(ctx, 999); !errors.Is(err, events.ErrDeadLetterNotFound) {
		t.Errorf("get missing: %v, want ErrDeadLetterNotFound", err)
	}
}

func testGracefulStop(t *testing.T, h harness) {
	stops := []struct {
		name string
		stop func(c *events.Consumer, cancel context.CancelFunc)
	}{
		{"Stop", func(c *events.Consumer, _ context.CancelFunc) { c.Stop() }},
		{"context", func(c *events.Consumer, cancel context.CancelFunc) { cancel(); <-c.Done() }},
	}
	for _, s := range stops {
		t.Run(s.name, func(t *testing.T) {
			b := h.newBus(t, events.Options{})
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			entered, release := make(chan struct{}), make(chan struct{})
			var calls recorder
			var handlerCtxErr error
			c, err := b.Consume(ctx, events.ConsumerSpec{Name: "slow", FilterSubjects: []string{events.TypeReportRequested}},
				func(hctx context.Context, e events.Event, d events.Delivery) error {
					if calls.add(e, d) == 1 {
						close(entered)
					}
					<-release
					handlerCtxErr = hctx.Err()
					return nil
				})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Publish(testCtx(t), mustEvent(t, events.TypeReportRequested, "r")); err != nil {
				t.Fatal(err)
			}
			<-entered
			stopped := make(chan struct{})
			go func() { s.stop(c, cancel); close(stopped) }()
			select {
			case <-stopped:
				t.Fatal("stopped while a handler was running")
			case <-time.After(300 * time.Millisecond):
			}
			close(release)
			select {
			case <-stopped:
			case <-time.After(10 * time.Second):
				t.Fatal("Stop did not return after the handler finished")
			}
			if handlerCtxErr != nil {
				t.Errorf("handler context ended during drain: %v", handlerCtxErr)
			}
			cons, err := b.JetStream().Consumer(testCtx(t), b.StreamName(events.EventsStream), "slow")
			if err != nil {
				t.Fatal(err)
			}
			info := cons.CachedInfo()
			if info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream != 1 {
				t.Errorf("after drain: ack pending %d, pending %d, ack floor %d; want the message acked",
					info.NumAckPending, info.NumPending, info.AckFloor.Stream)
			}
		})
	}
}
