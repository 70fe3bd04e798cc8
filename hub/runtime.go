package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imaginghub/imaginghub/blob"
	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/coord"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/outbox"
)

// Runtime is what every component shares in one process: the configuration,
// the backends picked by it, and the server that runs the components.
type Runtime struct {
	Config  config.Config
	Log     *slog.Logger
	Server  *Server
	Catalog *catalog.Catalog
	Coord   *coord.Coordinator
	Blobs   blob.Store
	Bus     *events.Bus
	Relay   *outbox.Relay
	// DICOM is the handler registry of this process's DICOM listener:
	// every component that serves DIMSE (storage, Q/R, worklist, MPPS)
	// registers its SOP classes here before the listener starts.
	DICOM *dicomnet.Registry

	embedded *events.EmbeddedServer

	sharedMu sync.Mutex
	shared   map[string]any
}

// Shared returns the value stored under name, building it with build the
// first time: for what several components of one process must share (the
// ingest Storer, with its intake journal, behind both C-STORE and
// STOW-RS). A failed build is not remembered.
func (rt *Runtime) Shared(name string, build func() (any, error)) (any, error) {
	rt.sharedMu.Lock()
	defer rt.sharedMu.Unlock()
	if v, ok := rt.shared[name]; ok {
		return v, nil
	}
	v, err := build()
	if err != nil {
		return nil, err
	}
	if rt.shared == nil {
		rt.shared = map[string]any{}
	}
	rt.shared[name] = v
	return v, nil
}

// BlobsDir is the directory of cfg's blob store.
func BlobsDir(cfg config.Config) string { return filepath.Join(cfg.Data.Dir, "blobs") }

// OpenBlobs opens cfg's blob store. It does not clean the temporary files
// of unfinished transfers: only Open does, at the start of the process
// that writes there.
func OpenBlobs(cfg config.Config, log *slog.Logger) (*blob.FileStore, error) {
	blobs, err := blob.NewFileStore(BlobsDir(cfg), blob.FileOptions{DirectIO: cfg.Data.DirectIO, Log: log})
	if err != nil {
		return nil, &config.Error{Key: "data.dir", Env: "IMAGINGHUB_DATA_DIR", Err: err}
	}
	return blobs, nil
}

// OpenCatalog opens cfg's catalog; errors name database.url.
func OpenCatalog(ctx context.Context, cfg config.Config, log *slog.Logger) (*catalog.Catalog, error) {
	c, err := catalog.Open(ctx, cfg.Database.URL, catalog.Options{DataDir: cfg.Data.Dir, Logger: log})
	if err != nil {
		return nil, &config.Error{Key: "database.url", Env: "IMAGINGHUB_DATABASE_URL", Err: err}
	}
	return c, nil
}

// Open opens the backends named by cfg — embedded or external — and
// returns a runtime whose Server has the readiness checks of each and the
// outbox relay as its first component. Errors name the configuration key.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *Runtime, err error) {
	rt := &Runtime{Config: cfg, Log: log, Server: NewServer(cfg.HTTP.Addr, log), DICOM: &dicomnet.Registry{}}
	rt.Server.ShutdownTimeout = cfg.HTTP.ShutdownTimeout
	defer func() {
		if err != nil {
			rt.Server.runClosers(context.Background())
		}
	}()
	if err := os.MkdirAll(cfg.Data.Dir, 0o750); err != nil {
		return nil, &config.Error{Key: "data.dir", Env: "IMAGINGHUB_DATA_DIR", Err: err}
	}

	blobs, err := OpenBlobs(cfg, log)
	if err != nil {
		return nil, err
	}
	if n, err := blobs.CleanTemp(ctx); err != nil {
		return nil, err
	} else if n > 0 {
		log.Info("removed temporary files of unfinished transfers", "files", n)
	}
	rt.Blobs = blobs
	rt.Server.OnShutdown(func(context.Context) error { return blobs.Close() })
	rt.Server.AddCheck("blobs", blobs.Ping)

	rt.Catalog, err = OpenCatalog(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	rt.Server.OnShutdown(func(context.Context) error { return rt.Catalog.Close() })
	rt.Server.AddCheck("catalog ("+rt.Catalog.Backend()+")", rt.Catalog.Ping)

	rt.Coord, err = coord.Open(ctx, cfg.Redis.URL, coord.Options{KeyPrefix: cfg.Redis.KeyPrefix})
	if err != nil {
		return nil, &config.Error{Key: "redis.url", Env: "IMAGINGHUB_REDIS_URL", Err: err}
	}
	rt.Server.OnShutdown(func(context.Context) error { return rt.Coord.Close() })
	rt.Server.AddCheck("coordination", rt.Coord.Ping)

	busOpts := events.Options{
		SubjectPrefix:   cfg.Events.SubjectPrefix,
		StreamPrefix:    cfg.Events.StreamPrefix,
		Replicas:        cfg.NATS.Replicas,
		EventsMaxAge:    cfg.Events.MaxAge,
		DuplicateWindow: cfg.Events.DuplicateWindow,
		Registerer:      rt.Server.Registry,
		Logger:          log,
	}
	natsURL := cfg.NATS.URL
	if natsURL == "" {
		rt.embedded, err = events.StartEmbedded(events.EmbeddedOptions{
			StoreDir:      filepath.Join(cfg.Data.Dir, "nats"),
			Listen:        cfg.NATS.Listen,
			InProcessOnly: cfg.NATS.Listen == "",
			Logger:        log,
		})
		if err != nil {
			key, env := "data.dir", "IMAGINGHUB_DATA_DIR"
			if errors.Is(err, syscall.EADDRINUSE) || cfg.NATS.Listen != "" && isListenErr(err) {
				key, env = "nats.listen", "IMAGINGHUB_NATS_LISTEN"
			}
			return nil, &config.Error{Key: key, Env: env, Err: err}
		}
		rt.Server.OnShutdown(func(context.Context) error { rt.embedded.Shutdown(); return nil })
		log.Info("embedded NATS with JetStream started", "store", filepath.Join(cfg.Data.Dir, "nats"), "listen", rt.embedded.ClientURL())
		busOpts.InProcessServer = rt.embedded
		natsURL = rt.embedded.ClientURL()
	}
	rt.Bus, err = events.Connect(ctx, natsURL, busOpts)
	if err != nil {
		return nil, &config.Error{Key: "nats.url", Env: "IMAGINGHUB_NATS_URL", Err: err}
	}
	rt.Server.OnShutdown(func(context.Context) error { rt.Bus.Close(); return nil })
	if err := rt.Bus.EnsureStreams(ctx); err != nil {
		return nil, &config.Error{Key: "nats.url", Env: "IMAGINGHUB_NATS_URL", Err: err}
	}
	rt.Server.AddCheck("nats", func(context.Context) error {
		if !rt.Bus.Conn().IsConnected() {
			return fmt.Errorf("not connected (%s)", rt.Bus.Conn().Status())
		}
		return nil
	})

	rt.Relay = outbox.New(rt.Catalog, rt.Bus, rt.Server.Registry, log)
	rt.Server.Add(&loop{name: "outbox", run: rt.Relay.Run, final: func(ctx context.Context) error {
		// Components have drained: publish what they committed last.
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return rt.Relay.Flush(ctx)
	}})
	return rt, nil
}

func isListenErr(err error) bool {
	var se *os.SyscallError
	return errors.As(err, &se) && se.Syscall == "bind"
}

// EmbeddedNATSURL is the client URL of the embedded NATS server, or "".
func (rt *Runtime) EmbeddedNATSURL() string {
	if rt.embedded == nil {
		return ""
	}
	return rt.embedded.ClientURL()
}

// Registerer is where components register their metrics.
func (rt *Runtime) Registerer() prometheus.Registerer { return rt.Server.Registry }

// loop runs a function in the background as a component.
type loop struct {
	name   string
	run    func(ctx context.Context) error
	final  func(ctx context.Context) error // after run returns, on shutdown
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewLoop returns a component that runs run until shutdown.
func NewLoop(name string, run func(ctx context.Context) error) Component {
	return &loop{name: name, run: run}
}

func (l *loop) Name() string { return l.name }

func (l *loop) Start(ctx context.Context) error {
	ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if err := l.run(ctx); err != nil && ctx.Err() == nil {
			slog.Error("background loop stopped", "loop", l.name, "err", err)
		}
	}()
	return nil
}

func (l *loop) Shutdown(ctx context.Context) error {
	l.cancel()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if l.final != nil {
		return l.final(ctx)
	}
	return nil
}
