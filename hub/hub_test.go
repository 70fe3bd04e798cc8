package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthReadyMetrics(t *testing.T) {
	rt := hubtest.Start(t, hubtest.Config(t), nil)
	base := "http://" + rt.Server.HTTPAddr()
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("readyz %d %q", code, body)
	}
	code, body := get(t, base+"/metrics")
	if code != 200 || !strings.Contains(body, "imaginghub_outbox_backlog") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics %d:\n%.500s", code, body)
	}
}

// A failing check turns /readyz to 503 and names the check.
func TestReadyzReportsFailingCheck(t *testing.T) {
	rt := hubtest.Start(t, hubtest.Config(t), func(rt *hub.Runtime) {
		rt.Server.AddCheck("dicom listener", func(context.Context) error { return fmt.Errorf("not listening") })
	})
	code, body := get(t, "http://"+rt.Server.HTTPAddr()+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "dicom listener: not listening") {
		t.Fatalf("readyz %d %q", code, body)
	}
}

func TestPortInUseNamesKey(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := hubtest.Config(t)
	cfg.HTTP.Addr = ln.Addr().String()
	rt, err := hub.Open(context.Background(), cfg, hubtest.Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Server.Shutdown(context.Background())
	err = rt.Server.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "IMAGINGHUB_HTTP_ADDR") || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("want listen error naming IMAGINGHUB_HTTP_ADDR, got %v", err)
	}
}

// Domain writes commit with their outbox rows; the relay publishes them to
// JetStream; the data is still there after a restart on the same data dir.
func TestOutboxRelayAndRestart(t *testing.T) {
	cfg := hubtest.Config(t)
	rt := hubtest.Start(t, cfg, nil)
	ctx := context.Background()
	const n = 50
	writeEvents(t, rt, "first", n)
	waitStreamCount(t, rt, n)
	hubtest.Stop(t, rt)

	rt2 := hubtest.Start(t, cfg, nil)
	backlog, err := rt2.Catalog.OutboxBacklog(ctx)
	if err != nil || backlog != 0 {
		t.Fatalf("backlog after restart %d %v", backlog, err)
	}
	writeEvents(t, rt2, "second", n)
	waitStreamCount(t, rt2, 2*n)
}

// writeEvents commits n outbox rows, one transaction each, and kicks the
// relay.
func writeEvents(t testing.TB, rt *hub.Runtime, tag string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		e, err := events.New("imaginghub/test", events.TypeOrderScheduled, fmt.Sprintf("%s-%d", tag, i), map[string]int{"i": i}, tag, fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(e)
		err = rt.Catalog.InTx(context.Background(), func(tx *catalog.Tx) error {
			tx.AppendOutbox(catalog.OutboxMessage{EventID: e.ID, Subject: e.Type, Payload: b})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		rt.Relay.Kick()
	}
}

func waitStreamCount(t testing.TB, rt *hub.Runtime, want uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got uint64
	for time.Now().Before(deadline) {
		st, err := rt.Bus.JetStream().Stream(context.Background(), rt.Bus.StreamName(events.EventsStream))
		if err == nil {
			info, err := st.Info(context.Background())
			if err == nil {
				got = info.State.Msgs
				if got == want {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("stream holds %d events, want %d", got, want)
}
