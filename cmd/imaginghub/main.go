// Command imaginghub runs the imaging hub: every component in one process
// (serve) or one component per process (ingest, …), and the operator tools
// (config, events, dicom).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/hub"
)

const usage = `imaginghub — an event-driven imaging hub

Usage:
  imaginghub [--config FILE] serve              run every component in one process
  imaginghub [--config FILE] <component>        run one component (scale-out): %s
  imaginghub [--config FILE] config print       print the effective configuration (secrets redacted)
  imaginghub config keys                        list every configuration key and its environment variable
  imaginghub [--config FILE] router destinations|failed NAME|retry NAME SEQ|discard NAME SEQ|pause NAME|resume NAME
  imaginghub [--config FILE] events dlq list [--consumer NAME]
  imaginghub [--config FILE] events dlq replay|discard SEQ
  imaginghub [--config FILE] archive check [--remove-orphans] [--min-age 1h]
  imaginghub dicom echo [--aet AE] [--aec AE] HOST:PORT
  imaginghub dicom store [--aet AE] [--aec AE] [--parallel N] HOST:PORT FILE|DIR...
  imaginghub dicom find [--patient-root] [--level STUDY] -k Keyword[=value]... HOST:PORT
  imaginghub dicom move --dest AE [--level STUDY] -k StudyInstanceUID=UID HOST:PORT
  imaginghub dicom worklist [filters] HOST:PORT
  imaginghub dicom mpps create|set [flags] HOST:PORT
  imaginghub dicom synth [--instances N] [--size 512] [--frames 1] DIR
  imaginghub version

Every configuration key can be set in the YAML file or by an environment
variable IMAGINGHUB_<SECTION>_<KEY> (see "imaginghub config keys").
`

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "imaginghub: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	global := flag.NewFlagSet("imaginghub", flag.ContinueOnError)
	global.SetOutput(stderr)
	configPath := global.String("config", "", "YAML configuration file")
	global.Usage = func() { fmt.Fprintf(stderr, usage, componentNames()) }
	if err := global.Parse(args); err != nil {
		return err
	}
	args = global.Args()
	if len(args) == 0 {
		global.Usage()
		return flag.ErrHelp
	}
	load := func() (config.Config, error) { return config.Load(*configPath, os.Environ()) }

	switch cmd := args[0]; cmd {
	case "serve":
		cfg, err := load()
		if err != nil {
			return err
		}
		return serve(ctx, cfg, allComponents, stderr)
	case "config":
		return configCmd(load, args[1:], stdout)
	case "events":
		cfg, err := load()
		if err != nil {
			return err
		}
		return eventsCmd(ctx, cfg, args[1:], stdout)
	case "archive":
		cfg, err := load()
		if err != nil {
			return err
		}
		return archiveCmd(ctx, cfg, args[1:], stdout, stderr)
	case "dicom":
		return dicomCmd(ctx, args[1:], stdout, stderr)
	case "router":
		// "imaginghub router" runs the component; with arguments it is
		// the operator's client of the router's admin API.
		if len(args) == 1 {
			break
		}
		cfg, err := load()
		if err != nil {
			return err
		}
		return routerCmd(ctx, cfg, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "imaginghub", version)
		return nil
	case "help", "-h", "--help":
		global.Usage()
		return nil
	}
	if _, ok := components[args[0]]; ok {
		cfg, err := load()
		if err != nil {
			return err
		}
		return serve(ctx, cfg, []string{args[0]}, stderr)
	}
	global.Usage()
	return fmt.Errorf("unknown command %q", args[0])
}

// newLogger returns the JSON (or text) logger at the configured level.
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// serve opens the backends, adds the named components and runs until
// SIGTERM, then drains.
func serve(ctx context.Context, cfg config.Config, names []string, logw io.Writer) error {
	log := newLogger(cfg, logw)
	slog.SetDefault(log)
	rt, err := hub.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	for _, name := range names {
		c, err := components[name](rt)
		if err != nil {
			rt.Server.Shutdown(context.Background())
			return fmt.Errorf("%s: %w", name, err)
		}
		rt.Server.Add(c)
	}
	log.Info("starting", "version", version, "components", names, "catalog", rt.Catalog.Backend(),
		"nats", natsMode(cfg), "coordination", redisMode(cfg), "data_dir", cfg.Data.Dir)
	return rt.Server.Run(ctx)
}

func natsMode(cfg config.Config) string {
	if cfg.NATS.URL == "" {
		return "embedded"
	}
	return config.Redact(cfg.NATS.URL)
}

func redisMode(cfg config.Config) string {
	if cfg.Redis.URL == "" {
		return "in-process"
	}
	return "redis"
}

func configCmd(load func() (config.Config, error), args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: imaginghub config print|keys")
	}
	switch args[0] {
	case "print":
		cfg, err := load()
		if err != nil {
			return err
		}
		b, err := cfg.Redacted().YAML()
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	case "keys":
		def := config.Default()
		for _, k := range config.Keys() {
			fmt.Fprintf(stdout, "%-34s %-28s %s (default %s)\n", k.Env, k.Path, k.Help, k.Default(def))
		}
		return nil
	}
	return fmt.Errorf("unknown config command %q (want print or keys)", args[0])
}
