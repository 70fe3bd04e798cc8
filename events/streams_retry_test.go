package events_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/internal/testenv"
)

// A server that answers a stream creation with a server-side error gets a
// few more tries over about a second before EnsureStream gives up: here
// the server lacks the storage a stream reserves until another stream is
// deleted. A lack that lasts still ends in an error naming the stream.
func TestEnsureStreamRetriesServerErrors(t *testing.T) {
	srv, err := events.StartEmbedded(events.EmbeddedOptions{StoreDir: t.TempDir(), InProcessOnly: true, MaxStore: 4 << 20, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	var logs bytes.Buffer
	tok := testenv.Unique()
	ctx := context.Background()
	b, err := events.Connect(ctx, "", events.Options{InProcessServer: srv, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		SubjectPrefix: "t" + tok + ".", StreamPrefix: "T" + strings.ToUpper(tok) + "_"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)

	spec := func(name string, maxBytes int64) events.StreamSpec {
		return events.StreamSpec{Name: name, Subjects: []string{strings.ToLower(name) + ".>"}, MaxBytes: maxBytes}
	}
	if _, err := b.EnsureStream(ctx, spec("FIRST", 3<<20)); err != nil {
		t.Fatal(err)
	}
	// 3 MiB more do not fit in 4 until FIRST is gone.
	go func() {
		time.Sleep(200 * time.Millisecond)
		b.JetStream().DeleteStream(context.Background(), b.StreamName("FIRST"))
	}()
	if _, err := b.EnsureStream(ctx, spec("SECOND", 3<<20)); err != nil {
		t.Fatalf("EnsureStream while the server lacked storage for 200 ms: %v", err)
	}
	if !strings.Contains(logs.String(), "trying again") {
		t.Errorf("the first attempt did not fail; the test proves nothing:\n%s", logs.String())
	}

	start := time.Now()
	_, err = b.EnsureStream(ctx, spec("HUGE", 8<<20))
	if err == nil || !strings.Contains(err.Error(), b.StreamName("HUGE")) {
		t.Fatalf("EnsureStream of a stream larger than the server's storage: %v; want an error naming it", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %v; want a few short tries", d)
	}
}
