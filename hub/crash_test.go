package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
)

// The crash tests run the hub in a child process (this test binary again)
// so that it can be killed with SIGKILL.
const childEnv = "IMAGINGHUB_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

// child runs a hub from the IMAGINGHUB_* environment. In mode "write" it
// commits IMAGINGHUB_TEST_CHILD_N events, one transaction each, while the
// relay publishes; in mode "relay" it only relays until the outbox is empty.
func child(mode string) int {
	cfg, err := config.Load("", os.Environ())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	rt, err := hub.Open(ctx, cfg, hubtest.Logger())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := rt.Server.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if mode == "write" {
		n, _ := strconv.Atoi(os.Getenv(childEnv + "_N"))
		fmt.Println("writing")
		writeEvents(tbStub{}, rt, "crash", n)
	}
	for {
		n, err := rt.Catalog.OutboxBacklog(ctx)
		if err == nil && n == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	rt.Server.Shutdown(ctx)
	return 0
}

// tbStub lets writeEvents run outside a test; any failure ends the child.
type tbStub struct{ testing.TB }

func (tbStub) Helper()                   {}
func (tbStub) Fatal(args ...any)         { fmt.Fprintln(os.Stderr, args...); os.Exit(3) }
func (tbStub) Fatalf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...); os.Exit(3) }

func childCmd(t *testing.T, cfg config.Config, mode string, n int) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		childEnv+"="+mode, childEnv+"_N="+strconv.Itoa(n),
	)
	cmd.Env = append(cmd.Env, cfg.Environ()...)
	cmd.Env = append(cmd.Env, "IMAGINGHUB_HTTP_ADDR=127.0.0.1:0", "IMAGINGHUB_NATS_LISTEN=")
	cmd.Stderr = os.Stderr
	return cmd
}

// kill -9 while the relay is publishing: after a restart every committed
// event is published, and a consumer of the stream sees each exactly once.
func TestOutboxSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped with -short")
	}
	for round := range 3 {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) {
			cfg := hubtest.Config(t)
			w := childCmd(t, cfg, "write", 5000)
			out, _ := w.StdoutPipe()
			if err := w.Start(); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 8)
			if _, err := out.Read(buf); err != nil {
				t.Fatalf("child did not start: %v", err)
			}
			time.Sleep(time.Duration(200+rand.IntN(800)) * time.Millisecond)
			w.Process.Signal(syscall.SIGKILL)
			w.Wait()

			committed := countOutbox(t, cfg)
			if committed == 0 || committed == 5000 {
				t.Logf("killed with %d of 5000 committed", committed)
			}
			r := childCmd(t, cfg, "relay", 0)
			if err := r.Run(); err != nil {
				t.Fatalf("relay child: %v", err)
			}
			ids := consumeAll(t, cfg)
			seen := map[string]int{}
			for _, id := range ids {
				seen[id]++
			}
			for id, c := range seen {
				if c != 1 {
					t.Errorf("event %s delivered %d times", id, c)
				}
			}
			if len(seen) != committed || len(ids) != committed {
				t.Fatalf("consumer saw %d events (%d distinct), %d committed", len(ids), len(seen), committed)
			}
			t.Logf("%d committed events, each delivered once", committed)
		})
	}
}

func countOutbox(t *testing.T, cfg config.Config) int {
	t.Helper()
	cat, err := catalog.Open(context.Background(), cfg.Database.URL, catalog.Options{DataDir: cfg.Data.Dir, Logger: hubtest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	var n int
	err = cat.InTx(context.Background(), func(tx *catalog.Tx) error {
		return tx.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM outbox").Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// consumeAll reads the event stream with a fresh consumer and returns the
// event ids in order.
func consumeAll(t *testing.T, cfg config.Config) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	url := cfg.NATS.URL
	opts := events.Options{SubjectPrefix: cfg.Events.SubjectPrefix, StreamPrefix: cfg.Events.StreamPrefix, Logger: hubtest.Logger()}
	if url == "" {
		srv, err := events.StartEmbedded(events.EmbeddedOptions{StoreDir: filepath.Join(cfg.Data.Dir, "nats"), InProcessOnly: true, Logger: hubtest.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Shutdown()
		opts.InProcessServer = srv
	}
	bus, err := events.Connect(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	st, err := bus.JetStream().Stream(ctx, bus.StreamName(events.EventsStream))
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(ctx)
	total := int(info.State.Msgs)
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for len(ids) < total {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			var e events.Event
			if err := json.Unmarshal(m.Data(), &e); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, e.ID)
			got++
		}
		if got == 0 {
			break
		}
	}
	return ids
}
