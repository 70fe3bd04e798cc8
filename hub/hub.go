// Package hub runs a set of components in one process: it owns the HTTP
// listener (health, readiness, metrics and every component's routes), the
// readiness checks, and the order of start and graceful shutdown.
//
// Components never call each other: each gets the shared backends (catalog,
// coordination, blobs, event bus) from the Runtime and talks to the others
// through events.
package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Component is one part of the hub (ingest, router, a bridge, …).
type Component interface {
	// Name is the component's name as used on the command line.
	Name() string
	// Start starts the component's listeners and workers and returns once
	// they are running. Listener errors name the configuration key.
	Start(ctx context.Context) error
	// Shutdown stops accepting work, drains what is in flight until ctx
	// ends, and releases the component's resources.
	Shutdown(ctx context.Context) error
}

// Check reports whether one listener or backend is up.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Server is the process: an HTTP listener plus components.
type Server struct {
	Addr            string
	ShutdownTimeout time.Duration
	Log             *slog.Logger
	Registry        *prometheus.Registry
	Mux             *http.ServeMux

	mu         sync.Mutex
	checks     []Check
	components []Component
	started    []Component
	httpSrv    *http.Server
	ln         net.Listener
	closers    []func(context.Context) error
	shutdown   bool
	ready      atomic.Bool // every component started
}

// NewServer returns a server listening on addr once Run is called.
func NewServer(addr string, log *slog.Logger) *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Server{Addr: addr, Log: log, Registry: reg, Mux: http.NewServeMux(), ShutdownTimeout: 30 * time.Second}
	s.Mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	s.Mux.HandleFunc("GET /readyz", s.readyz)
	s.Mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return s
}

// AddCheck adds a readiness check.
func (s *Server) AddCheck(name string, f func(ctx context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, Check{Name: name, Check: f})
}

// Add adds a component, started in order by Run and shut down in reverse.
func (s *Server) Add(c Component) { s.components = append(s.components, c) }

// OnShutdown registers a function run after every component has shut down
// (closing backends), in reverse order of registration.
func (s *Server) OnShutdown(f func(context.Context) error) { s.closers = append(s.closers, f) }

// Ready runs every check and returns the failures by name.
func (s *Server) Ready(ctx context.Context) map[string]error {
	s.mu.Lock()
	checks := append([]Check(nil), s.checks...)
	s.mu.Unlock()
	failed := map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Check(ctx); err != nil {
				mu.Lock()
				failed[c.Name] = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failed
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	failed := s.Ready(ctx)
	if !s.ready.Load() {
		failed["components"] = errors.New("starting")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if len(failed) == 0 {
		fmt.Fprintln(w, "ready")
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	for name, err := range failed {
		fmt.Fprintf(w, "%s: %v\n", name, err)
	}
}

// ListenError names the configuration key of a listener that could not bind.
type ListenError struct {
	Key  string // e.g. "http.addr"
	Addr string
	Err  error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("config %s (IMAGINGHUB_%s): listen %s: %v", e.Key, envName(e.Key), e.Addr, unwrapOp(e.Err))
}

func (e *ListenError) Unwrap() error { return e.Err }

func envName(key string) string {
	b := []byte(key)
	for i, c := range b {
		switch {
		case c == '.':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// unwrapOp drops net.OpError's repetition of the address.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// Listen binds a TCP listener for the listener configured under key.
func Listen(key, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &ListenError{Key: key, Addr: addr, Err: err}
	}
	return ln, nil
}

// HTTPAddr is the bound HTTP address once Start has returned.
func (s *Server) HTTPAddr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Start binds the HTTP listener and starts every component. On error what
// was started is shut down again.
func (s *Server) Start(ctx context.Context) error {
	ln, err := Listen("http.addr", s.Addr)
	if err != nil {
		return err
	}
	s.ln = ln
	s.httpSrv = &http.Server{
		Handler:           s.Mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.Log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := s.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Log.Error("http server stopped", "err", err)
		}
	}()
	for _, c := range s.components {
		if err := c.Start(ctx); err != nil {
			sctx, cancel := context.WithTimeout(context.Background(), s.ShutdownTimeout)
			defer cancel()
			s.Shutdown(sctx)
			return fmt.Errorf("%s: %w", c.Name(), err)
		}
		s.started = append(s.started, c)
		s.Log.Info("component started", "component", c.Name())
	}
	s.ready.Store(true)
	return nil
}

// Shutdown drains HTTP requests and components (in reverse start order),
// then runs the OnShutdown functions. Only the first call does anything.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	done := s.shutdown
	s.shutdown = true
	s.mu.Unlock()
	if done {
		return nil
	}
	s.ready.Store(false)
	var errs []error
	if s.httpSrv != nil {
		s.httpSrv.SetKeepAlivesEnabled(false)
	}
	for i := len(s.started) - 1; i >= 0; i-- {
		if err := s.started[i].Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.started[i].Name(), err))
		}
	}
	if s.httpSrv != nil {
		if err := s.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http: %w", err))
		}
	}
	errs = append(errs, s.runClosers(ctx))
	return errors.Join(errs...)
}

func (s *Server) runClosers(ctx context.Context) error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i](ctx))
	}
	s.closers = nil
	return errors.Join(errs...)
}

// Run starts the server, waits until ctx is done (SIGTERM), then shuts down
// gracefully within ShutdownTimeout.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting: what started is shut down
		}
		return err
	}
	s.Log.Info("imaginghub ready to serve", "http", s.HTTPAddr())
	<-ctx.Done()
	s.Log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), s.ShutdownTimeout)
	defer cancel()
	return s.Shutdown(sctx)
}
