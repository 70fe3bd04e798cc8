// Command router runs a hub with the ingest and router components only, for
// bench/router.sh: the configuration comes from -config and the
// IMAGINGHUB_* environment, as for "imaginghub serve".
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"

	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/ingest"
	"github.com/imaginghub/imaginghub/router"
)

func main() {
	path := flag.String("config", "", "YAML configuration file")
	profile := flag.Bool("pprof", false, "serve net/http/pprof under /debug/pprof/ on http.addr")
	flag.Parse()
	if err := run(*path, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "router bench hub:", err)
		os.Exit(1)
	}
}

func run(path string, profile bool) error {
	cfg, err := config.Load(path, os.Environ())
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rt, err := hub.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	in, err := ingest.New(rt)
	if err != nil {
		return err
	}
	rt.Server.Add(in)
	r, err := router.New(rt, router.Options{})
	if err != nil {
		return err
	}
	rt.Server.Add(r)
	if profile {
		rt.Server.Mux.HandleFunc("/debug/pprof/", pprof.Index)
		rt.Server.Mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	return rt.Server.Run(ctx)
}
