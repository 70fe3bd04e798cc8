package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
	"github.com/imaginghub/imaginghub/router"
)

// TestRouterCommands drives the router admin commands against a running
// hub whose webhook refuses events until told otherwise.
func TestRouterCommands(t *testing.T) {
	var accept atomic.Bool
	var got atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !accept.Load() {
			http.Error(w, "not today", http.StatusUnprocessableEntity)
			return
		}
		got.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer hook.Close()

	cfg := hubtest.Config(t)
	cfg.Router = config.Router{
		Destinations: []config.Destination{{Name: "billing-hook", URL: hook.URL}},
		Rules:        []config.Rule{{Name: "orders", On: []string{events.TypeOrderScheduled}, Forward: []string{"billing-hook"}}},
	}
	rt := hubtest.Start(t, cfg, func(rt *hub.Runtime) {
		r, err := router.New(rt, router.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rt.Server.Add(r)
	})
	cfg.HTTP.Addr = rt.Server.HTTPAddr()
	ctx := context.Background()
	cli := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := routerCmd(ctx, cfg, args, &out, &errOut)
		return out.String(), err
	}

	for _, order := range []string{"ORD1", "ORD2"} {
		e, err := events.New("test", events.TypeOrderScheduled, order, map[string]string{"placerOrderNumber": order}, order)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rt.Bus.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	var out string
	deadline := time.Now().Add(15 * time.Second)
	for !regexp.MustCompile(`billing-hook\s+webhook\s+\S+\s+0\s+0\s+2\s+false`).MatchString(out) {
		if time.Now().After(deadline) {
			t.Fatalf("destinations:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
		var err error
		if out, err = cli("destinations"); err != nil {
			t.Fatal(err)
		}
	}
	out, err := cli("failed", "billing-hook")
	if err != nil {
		t.Fatal(err)
	}
	seqs := regexp.MustCompile(`(?m)^(\d+)\s+\S+\s+1\s+ih\.order\.scheduled .*422`).FindAllStringSubmatch(out, -1)
	if len(seqs) != 2 {
		t.Fatalf("failed:\n%s", out)
	}

	accept.Store(true)
	for _, tc := range []struct {
		args    []string
		want    string
		wantErr string
	}{
		{args: []string{"pause", "billing-hook"}, want: "billing-hook paused"},
		{args: []string{"resume", "billing-hook"}, want: "billing-hook resumed"},
		{args: []string{"retry", "billing-hook", seqs[0][1]}, want: "queued again"},
		{args: []string{"discard", "billing-hook", seqs[1][1]}, want: "discarded"},
		{args: []string{"discard", "billing-hook", seqs[1][1]}, wantErr: "dead letter not found"},
		{args: []string{"pause", "nowhere"}, wantErr: "unknown destination"},
		{args: []string{"retry", "billing-hook", "x"}, wantErr: "not a sequence number"},
		{args: []string{"retry", "billing-hook"}, wantErr: "want 2 argument(s)"},
		{args: []string{"frobnicate"}, wantErr: "unknown command"},
	} {
		out, err := cli(tc.args...)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || !strings.Contains(out, tc.want)):
			t.Errorf("%v: %q %v, want %q", tc.args, out, err, tc.want)
		}
	}
	deadline = time.Now().Add(10 * time.Second)
	for got.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got.Load() != 1 {
		t.Errorf("webhook accepted %d events, want the retried one", got.Load())
	}
	if out, _ := cli("failed", "billing-hook"); strings.Count(out, "\n") != 1 {
		t.Errorf("failed after retry and discard:\n%s", out)
	}
}

func TestAdminURL(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{":8080", "http://127.0.0.1:8080"},
		{"0.0.0.0:8080", "http://127.0.0.1:8080"},
		{"[::]:8080", "http://127.0.0.1:8080"},
		{"10.0.0.5:9000", "http://10.0.0.5:9000"},
		{"hub.example:8080", "http://hub.example:8080"},
	} {
		if got := adminURL(tc.addr); got != tc.want {
			t.Errorf("adminURL(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}
