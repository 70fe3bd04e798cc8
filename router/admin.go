package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/imaginghub/imaginghub/events"
)

// DestinationStatus is one destination as GET /api/router/destinations
// lists it.
type DestinationStatus struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // "dicom" or "webhook"
	AE   string `json:"ae,omitempty"`
	Addr string `json:"addr,omitempty"`
	// URL is the webhook's scheme, host and path; query and user
	// information are left out, as they may hold credentials.
	URL         string `json:"url,omitempty"`
	Concurrency int    `json:"concurrency"`
	MaxAttempts int    `json:"maxAttempts"`
	// QueueDepth counts jobs queued or in delivery, across processes.
	QueueDepth uint64 `json:"queueDepth"`
	// InFlight counts deliveries running in this process.
	InFlight int64 `json:"inFlight"`
	// Failed counts dead-lettered jobs waiting for retry or discard.
	Failed int  `json:"failed"`
	Paused bool `json:"paused"`
}

// FailedJob is a dead-lettered delivery.
type FailedJob struct {
	// Seq identifies it for retry and discard.
	Seq              uint64    `json:"seq"`
	SOPInstanceUID   string    `json:"sopInstanceUID,omitempty"`
	StudyInstanceUID string    `json:"studyInstanceUID,omitempty"`
	EventID          string    `json:"eventID,omitempty"`
	EventType        string    `json:"eventType,omitempty"`
	Rule             string    `json:"rule,omitempty"`
	Error            string    `json:"error"`
	Attempts         uint64    `json:"attempts"`
	Time             time.Time `json:"time"`
}

func (r *Router) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/router/destinations", r.serveDestinations)
	mux.HandleFunc("POST /api/router/destinations/{name}/pause", r.servePause)
	mux.HandleFunc("POST /api/router/destinations/{name}/resume", r.servePause)
	mux.HandleFunc("GET /api/router/destinations/{name}/failed", r.serveFailed)
	mux.HandleFunc("POST /api/router/destinations/{name}/failed/{seq}/retry", r.serveFailedAction)
	mux.HandleFunc("DELETE /api/router/destinations/{name}/failed/{seq}", r.serveFailedAction)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// Status returns the state of every destination, in configuration order.
func (r *Router) Status(ctx context.Context) ([]DestinationStatus, error) {
	out := make([]DestinationStatus, 0, len(r.order))
	for _, name := range r.order {
		d := r.dests[name]
		s := DestinationStatus{Name: name, Kind: "dicom", AE: d.cfg.AE, Addr: d.cfg.Addr,
			Concurrency: d.cfg.Concurrency, MaxAttempts: d.cfg.MaxAttempts, InFlight: d.inFlight.Load(), Paused: d.isPaused()}
		if d.pool == nil {
			s.Kind = "webhook"
			if u, err := url.Parse(d.cfg.URL); err == nil {
				s.URL = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
			}
		}
		n, err := d.queueDepth(ctx)
		if err != nil {
			return nil, fmt.Errorf("router: queue of %s: %w", name, err)
		}
		s.QueueDepth = n
		r.metrics.queueDepth.WithLabelValues(name).Set(float64(n))
		failed, err := r.Failed(ctx, name)
		if err != nil {
			return nil, err
		}
		s.Failed = len(failed)
		out = append(out, s)
	}
	return out, nil
}

// Failed lists a destination's dead-lettered deliveries, oldest first.
func (r *Router) Failed(ctx context.Context, name string) ([]FailedJob, error) {
	if r.dests[name] == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownDestination, name)
	}
	var out []FailedJob
	var after uint64
	for {
		dls, err := r.rt.Bus.ListDeadLetters(ctx, events.DeadLetterFilter{Consumer: ConsumerName(name), After: after, Limit: 1000})
		if err != nil {
			return nil, fmt.Errorf("router: dead letters: %w", err)
		}
		for _, dl := range dls {
			f := FailedJob{Seq: dl.Sequence, Error: dl.Error, Attempts: dl.Deliveries, Time: dl.Time}
			var j Job
			if json.Unmarshal(dl.Data, &j) == nil {
				f.SOPInstanceUID, f.StudyInstanceUID, f.EventID, f.EventType, f.Rule = j.SOPInstanceUID, j.StudyInstanceUID, j.EventID, j.EventType, j.Rule
			}
			out = append(out, f)
			after = dl.Sequence
		}
		if len(dls) < 1000 {
			return out, nil
		}
	}
}

// deadLetterOf returns dead letter seq if it belongs to the destination.
func (r *Router) deadLetterOf(ctx context.Context, name string, seq uint64) error {
	if r.dests[name] == nil {
		return fmt.Errorf("%w: %q", ErrUnknownDestination, name)
	}
	dl, err := r.rt.Bus.GetDeadLetter(ctx, seq)
	if err != nil {
		return err
	}
	if dl.Consumer != ConsumerName(name) {
		return fmt.Errorf("%w: %d is not %s's", events.ErrDeadLetterNotFound, seq, name)
	}
	return nil
}

// Retry queues a dead-lettered delivery again, at the back of the
// destination's queue, with a fresh count of attempts.
func (r *Router) Retry(ctx context.Context, name string, seq uint64) error {
	if err := r.deadLetterOf(ctx, name, seq); err != nil {
		return err
	}
	return r.rt.Bus.ReplayDeadLetter(ctx, seq)
}

// Discard drops a dead-lettered delivery for good.
func (r *Router) Discard(ctx context.Context, name string, seq uint64) error {
	if err := r.deadLetterOf(ctx, name, seq); err != nil {
		return err
	}
	return r.rt.Bus.DiscardDeadLetter(ctx, seq)
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrUnknownDestination), errors.Is(err, events.ErrDeadLetterNotFound):
		return http.StatusNotFound
	default:
		return http.StatusInternalServerError
	}
}

func (r *Router) serveDestinations(w http.ResponseWriter, req *http.Request) {
	st, err := r.Status(req.Context())
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (r *Router) servePause(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	var err error
	resume := strings.HasSuffix(req.URL.Path, "/resume")
	if resume {
		err = r.Resume(req.Context(), name)
	} else {
		err = r.Pause(req.Context(), name)
	}
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "paused": !resume})
}

func (r *Router) serveFailed(w http.ResponseWriter, req *http.Request) {
	f, err := r.Failed(req.Context(), req.PathValue("name"))
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	if f == nil {
		f = []FailedJob{}
	}
	writeJSON(w, http.StatusOK, f)
}

func (r *Router) serveFailedAction(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	seq, err := strconv.ParseUint(req.PathValue("seq"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("router: %q is not a dead-letter sequence", req.PathValue("seq")))
		return
	}
	if req.Method == http.MethodDelete {
		err = r.Discard(req.Context(), name, seq)
	} else {
		err = r.Retry(req.Context(), name, seq)
	}
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "seq": seq, "retried": req.Method != http.MethodDelete})
}
