package hub_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hub/hubtest"
)

// With the (external) NATS server down, domain writes still commit; their
// events arrive once it is back.
func TestNATSOutage(t *testing.T) {
	outage := 30 * time.Second
	if testing.Short() {
		outage = 3 * time.Second
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	store := filepath.Join(t.TempDir(), "nats")
	start := func() *events.EmbeddedServer {
		srv, err := events.StartEmbedded(events.EmbeddedOptions{StoreDir: store, Listen: addr, Logger: hubtest.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}
	natsSrv := start()
	defer func() { natsSrv.Shutdown() }()

	cfg := hubtest.Config(t)
	cfg.NATS.URL = "nats://" + addr
	cfg.Events.SubjectPrefix, cfg.Events.StreamPrefix = "", ""
	rt := hubtest.Start(t, cfg, nil)

	writeEvents(t, rt, "before", 20)
	waitStreamCount(t, rt, 20)

	natsSrv.Shutdown()
	began := time.Now()
	writeEvents(t, rt, "during", 20)
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("writes took %v with NATS down: they must not wait for it", d)
	}
	if n, err := rt.Catalog.OutboxBacklog(context.Background()); err != nil || n != 20 {
		t.Fatalf("backlog during outage %d %v, want 20", n, err)
	}
	time.Sleep(outage)
	natsSrv = start()
	waitStreamCount(t, rt, 40)
	// The relay marks a batch sent just after JetStream stored it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := rt.Catalog.OutboxBacklog(context.Background())
		if err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog after outage %d %v", n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitStreamCount(t, rt, 40) // and nothing was published twice
}
