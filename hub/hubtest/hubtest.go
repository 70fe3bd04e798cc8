// Package hubtest starts real hubs for tests: real listeners on
// 127.0.0.1:0, a temporary data directory, embedded NATS and SQLite — or
// the shared PostgreSQL, Redis and NATS named by IMAGINGHUB_TEST_*, each
// isolated for the test.
package hubtest

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/internal/testenv"
)

// Config returns a configuration for a test hub: listeners on free
// loopback ports, NATS in-process only, data in a temporary directory, and
// the external backends of this run (see testenv.External).
func Config(tb testing.TB) config.Config {
	tb.Helper()
	cfg := config.Default()
	cfg.Data.Dir = tb.TempDir()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.ShutdownTimeout = 10 * time.Second
	cfg.DICOM.Addr = "127.0.0.1:0"
	cfg.HL7.Addr = "127.0.0.1:0"
	cfg.NATS.Listen = ""
	// A small intake journal: each test hub writes its file of zeros.
	cfg.Data.IntakeJournalBytes = 8 << 20
	b := testenv.External(tb)
	cfg.Database.URL = b.DatabaseURL
	cfg.Redis.URL, cfg.Redis.KeyPrefix = b.RedisURL, b.RedisKeyPrefix
	cfg.NATS.URL = b.NATSURL
	cfg.Events.SubjectPrefix, cfg.Events.StreamPrefix = b.SubjectPrefix, b.StreamPrefix
	tb.Logf("hub backends: %s", b)
	return cfg
}

// Logger returns a logger for test hubs: quiet unless IMAGINGHUB_TEST_LOG
// is set.
func Logger() *slog.Logger {
	if os.Getenv("IMAGINGHUB_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Start opens a runtime for cfg, lets add put components on it, starts it
// and shuts it down when the test ends.
func Start(tb testing.TB, cfg config.Config, add func(rt *hub.Runtime)) *hub.Runtime {
	tb.Helper()
	ctx := context.Background()
	rt, err := hub.Open(ctx, cfg, Logger())
	if err != nil {
		tb.Fatalf("open hub: %v", err)
	}
	if add != nil {
		add(rt)
	}
	if err := rt.Server.Start(ctx); err != nil {
		tb.Fatalf("start hub: %v", err)
	}
	tb.Cleanup(func() { Stop(tb, rt) })
	return rt
}

// Stop shuts a runtime down gracefully; stopping twice is harmless.
func Stop(tb testing.TB, rt *hub.Runtime) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := rt.Server.Shutdown(ctx); err != nil {
		tb.Errorf("shutdown: %v", err)
	}
}

// StartChild runs the test binary again as a child process with env only
// (its TestMain runs a hub from the environment and prints one line, its
// DICOM address, first), and returns the child with that line; the child
// is killed when the test ends.
func StartChild(tb testing.TB, env []string) (*exec.Cmd, string) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = env
	cmd.Stderr = os.Stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		tb.Fatalf("child: %v", err)
	}
	return cmd, strings.TrimSpace(addr)
}
