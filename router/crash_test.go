package router_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/internal/testenv"

	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
	"github.com/imaginghub/imaginghub/ingest"
	"github.com/imaginghub/imaginghub/router"
)

const (
	childEnv       = "IMAGINGHUB_TEST_ROUTER_CHILD"
	childConfigEnv = "IMAGINGHUB_TEST_ROUTER_CONFIG"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

// child runs a hub with ingest and the router from the YAML file named by
// childConfigEnv and the IMAGINGHUB_* environment until killed, printing
// its DICOM address.
func child() int {
	cfg, err := config.Load(os.Getenv(childConfigEnv), os.Environ())
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
	in, err := ingest.New(rt)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	rt.Server.Add(in)
	r, err := router.New(rt, router.Options{BackOff: []time.Duration{100 * time.Millisecond, 300 * time.Millisecond}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	rt.Server.Add(r)
	if err := rt.Server.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(in.Addr())
	select {}
}

// TestKill9DuringForwarding: the hub is killed (SIGKILL) while it drains a
// backlog to storescp and started again on the same data. Nothing is lost;
// an instance is sent again only if the kill fell between the
// destination's acknowledgment and the commit of its record, so repeats
// are bounded by the deliveries in flight.
func TestKill9DuringForwarding(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped with -short")
	}
	testenv.DCMTK(t, "storescu", "storescp")
	cfg := hubtest.Config(t)
	port := testenv.FreePort(t)
	yaml := filepath.Join(t.TempDir(), "router.yaml")
	os.WriteFile(yaml, []byte(fmt.Sprintf(`router:
  destinations:
    - name: pacs
      ae: PACS
      addr: 127.0.0.1:%s
      max_attempts: 1000
  rules:
    - name: all
      on: [ih.dicom.instance.stored]
      forward: [pacs]
`, port)), 0o600)
	env := append(append(os.Environ(), childEnv+"=1", childConfigEnv+"="+yaml), cfg.Environ()...)
	env = append(env, "IMAGINGHUB_HTTP_ADDR=127.0.0.1:0", "IMAGINGHUB_DICOM_ADDR=127.0.0.1:0", "IMAGINGHUB_NATS_LISTEN=")

	cmd, addr := hubtest.StartChild(t, env)
	const n = 300
	paths := writeStudy(t, n, synth.Options{Seed: 6, StudyInstanceUID: dicomfile.NewUID(), Rows: 64, Columns: 64})
	host, p, _ := strings.Cut(addr, ":")
	testenv.Run(t, "storescu", append([]string{"-xi", "-aec", "IMAGINGHUB", host, p}, paths...)...)

	scp := startStorescp(t, "PACS", port, "")
	for len(scp.received(t)) < 20 {
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	before := len(scp.received(t))
	if before >= n {
		t.Fatal("forwarding finished before the kill; nothing was tested")
	}
	hubtest.StartChild(t, env)
	got := scp.waitReceived(t, n, 90*time.Second)
	time.Sleep(500 * time.Millisecond)
	got = scp.received(t)
	if len(got) != n {
		t.Fatalf("received %d distinct instances, want %d", len(got), n)
	}
	repeats := 0
	for _, files := range got {
		repeats += len(files) - 1
	}
	t.Logf("killed after %d of %d were forwarded; %d sent again after the restart", before, n, repeats)
	if repeats > 8 {
		t.Errorf("%d instances sent twice, more than the 8 deliveries that can be in flight", repeats)
	}
}
