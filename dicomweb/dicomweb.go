// Package dicomweb serves the archive over DICOMweb (PS3.18): QIDO-RS
// search, WADO-RS retrieve (instances, metadata, bulk data, frames,
// rendered images and thumbnails), STOW-RS store, WADO-URI, and CORS for
// browser viewers, under /dicomweb on the hub's HTTP listener.
//
// STOW-RS stores through ingest.Storer, the path C-STORE takes, so an
// instance is acknowledged only once it is durable and its
// ih.dicom.instance.stored event is committed.
package dicomweb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomjson"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/ingest"
)

// BasePath is where the service is rooted on the hub's HTTP listener.
const BasePath = "/dicomweb"

// Media types of PS3.18 §8.7.
const (
	MediaTypeDICOM     = "application/dicom"
	MediaTypeDICOMJSON = "application/dicom+json"
	MediaTypeOctet     = "application/octet-stream"
	MediaTypeMultipart = "multipart/related"
)

// Options configures the service. The zero value works.
type Options struct {
	// PublicURL is the absolute URL clients reach BasePath's parent at,
	// e.g. "https://pacs.example.org"; it prefixes RetrieveURL (0008,1190)
	// and BulkDataURI values. Empty: taken from each request's Host.
	PublicURL string
	// CORSOrigins lists the origins browsers may call from; "*" allows any.
	// Empty: no CORS headers are sent.
	CORSOrigins []string
	// MaxQueryResults caps a QIDO-RS response when the request has no
	// smaller limit (PS3.18 §8.3.4.4 lets the server cap it and warn);
	// 0 means 1000.
	MaxQueryResults int
	// MaxStoreRequestBytes bounds a STOW-RS request body; 0 means 16 GiB.
	MaxStoreRequestBytes int64
	// MetadataConcurrency is how many instance headers are read at once
	// for a metadata response; 0 means 16.
	MetadataConcurrency int
	// MetadataCacheBytes bounds the cache of instance metadata (DICOM
	// JSON of headers) kept in memory; 0 means 64 MiB, negative disables it.
	MetadataCacheBytes int
	// ThumbnailSize is the longest side of a thumbnail; 0 means 128.
	ThumbnailSize int
	// StoreTimeout bounds one STOW-RS request; 0 means 30 minutes.
	StoreTimeout time.Duration
}

// Service is the DICOMweb component (hub.Component).
type Service struct {
	rt     *hub.Runtime
	storer *ingest.Storer
	opts   Options
	log    *slog.Logger
	cat    *catalog.Catalog
	cache  *jsonCache
}

// New builds the service on rt and registers its routes on rt.Server.Mux.
// storer is the ingest storer STOW-RS stores through; when nil,
// ingest.NewStorer(rt) builds it, so both ways in take one path.
func New(rt *hub.Runtime, storer *ingest.Storer, opts Options) (*Service, error) {
	if storer == nil {
		var err error
		if storer, err = ingest.NewStorer(rt); err != nil {
			return nil, err
		}
	}
	if opts.MaxQueryResults <= 0 {
		opts.MaxQueryResults = 1000
	}
	if opts.MaxStoreRequestBytes <= 0 {
		opts.MaxStoreRequestBytes = 16 << 30
	}
	if opts.MetadataConcurrency <= 0 {
		opts.MetadataConcurrency = 16
	}
	if opts.ThumbnailSize <= 0 {
		opts.ThumbnailSize = 128
	}
	if opts.StoreTimeout <= 0 {
		opts.StoreTimeout = 30 * time.Minute
	}
	if opts.MetadataCacheBytes == 0 {
		opts.MetadataCacheBytes = 64 << 20
	}
	opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")
	s := &Service{rt: rt, storer: storer, opts: opts, log: rt.Log.With("component", "dicomweb"), cat: rt.Catalog,
		cache: newJSONCache(opts.MetadataCacheBytes)}
	s.routes(rt.Server.Mux)
	return s, nil
}

// Name implements hub.Component.
func (s *Service) Name() string { return "dicomweb" }

// Start implements hub.Component; the routes are served by the hub's
// HTTP listener, registered by New.
func (s *Service) Start(context.Context) error { return nil }

// Shutdown implements hub.Component; in-flight requests are drained by the
// hub's HTTP server.
func (s *Service) Shutdown(context.Context) error { return nil }

// Handler returns the service's routes alone, for mounting elsewhere.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	s.routes(mux)
	return mux
}

func (s *Service) routes(mux *http.ServeMux) {
	const (
		study    = BasePath + "/studies/{study}"
		series   = study + "/series/{series}"
		instance = series + "/instances/{instance}"
		frames   = instance + "/frames/{frames}"
	)
	h := func(pattern string, f http.HandlerFunc) { mux.Handle(pattern, s.cors(f)) }
	// QIDO-RS (PS3.18 §10.6).
	h("GET "+BasePath+"/studies", s.search(catalog.StudyLevel))
	h("GET "+BasePath+"/series", s.search(catalog.SeriesLevel))
	h("GET "+BasePath+"/instances", s.search(catalog.InstanceLevel))
	h("GET "+study+"/series", s.search(catalog.SeriesLevel))
	h("GET "+study+"/instances", s.search(catalog.InstanceLevel))
	h("GET "+series+"/instances", s.search(catalog.InstanceLevel))
	// STOW-RS (PS3.18 §10.5).
	h("POST "+BasePath+"/studies", s.store)
	h("POST "+study, s.store)
	// WADO-RS (PS3.18 §10.4).
	h("GET "+study, s.retrieve)
	h("GET "+series, s.retrieve)
	h("GET "+instance, s.retrieve)
	h("GET "+study+"/metadata", s.metadata)
	h("GET "+series+"/metadata", s.metadata)
	h("GET "+instance+"/metadata", s.metadata)
	h("GET "+instance+"/bulkdata/{path...}", s.bulkdata)
	h("GET "+frames, s.frames)
	h("GET "+instance+"/rendered", s.rendered)
	h("GET "+frames+"/rendered", s.rendered)
	h("GET "+study+"/thumbnail", s.thumbnail)
	h("GET "+series+"/thumbnail", s.thumbnail)
	h("GET "+instance+"/thumbnail", s.thumbnail)
	h("GET "+frames+"/thumbnail", s.thumbnail)
	// WADO-URI (PS3.18 §9).
	h("GET "+BasePath+"/wado", s.wadoURI)
	// CORS preflight for every path under the base (PS3.18 §8.9, Fetch).
	mux.Handle("OPTIONS "+BasePath+"/", s.cors(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, HEAD, POST, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
	})))
}

// cors adds the CORS response headers for allowed origins and answers
// preflight requests.
func (s *Service) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || len(s.opts.CORSOrigins) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Add("Vary", "Origin")
		allowed := ""
		switch {
		case slices.Contains(s.opts.CORSOrigins, "*"):
			allowed = "*"
		case slices.Contains(s.opts.CORSOrigins, origin):
			allowed = origin
		}
		if allowed == "" {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", allowed)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS")
			req := r.Header.Get("Access-Control-Request-Headers")
			if req == "" {
				req = "Accept, Content-Type, Authorization"
			}
			w.Header().Set("Access-Control-Allow-Headers", req)
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		// Headers a viewer reads from responses.
		w.Header().Set("Access-Control-Expose-Headers", "Content-Type, Content-Length, Content-Location, Content-Disposition, Warning, Location")
		next.ServeHTTP(w, r)
	})
}

// base returns the absolute URL of BasePath for links in responses.
func (s *Service) base(r *http.Request) string {
	if s.opts.PublicURL != "" {
		return s.opts.PublicURL + BasePath
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + BasePath
}

// httpError is an error with the status it answers.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// fail answers an error: 4xx as a DICOM JSON data set carrying the message
// in Error Comment (0000,0902), and 5xx with a generic message (the cause
// is logged, without patient data).
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusInternalServerError, "internal error"
	var he *httpError
	switch {
	case errors.As(err, &he):
		status, msg = he.status, he.msg
	case errors.Is(err, catalog.ErrNotFound):
		status, msg = http.StatusNotFound, "not found"
	case errors.Is(err, catalog.ErrInvalid):
		status, msg = http.StatusBadRequest, strings.TrimPrefix(err.Error(), "catalog: ")
	case errors.Is(err, catalog.ErrUnavailable):
		status, msg = http.StatusServiceUnavailable, "catalog unavailable"
	case errors.Is(err, context.Canceled):
		return
	}
	if status >= 500 {
		s.log.Error("request failed", "method", r.Method, "status", status, "err", err)
	} else {
		s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeErrorBody(w, status, msg)
}

func writeErrorBody(w http.ResponseWriter, status int, msg string) {
	ds := dicomjson.DataSet{0x00000902: {VR: "LO", Strings: []string{msg}}}
	w.Header().Set("Content-Type", MediaTypeDICOMJSON)
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	w.Write(ds.AppendJSON(nil))
}

// pathUIDs reads and checks the UIDs in the request path (PS3.18 §8.2):
// a malformed UID is 400.
func pathUIDs(r *http.Request) (study, series, instance string, err error) {
	for _, p := range []struct {
		name string
		dst  *string
	}{{"study", &study}, {"series", &series}, {"instance", &instance}} {
		v := r.PathValue(p.name)
		if v == "" {
			continue
		}
		if !dicomfile.ValidUID(v) {
			return "", "", "", errorf(http.StatusBadRequest, "%s UID in the path is not a valid UID", p.name)
		}
		*p.dst = v
	}
	return study, series, instance, nil
}

// instances returns the instances the path names (study, series or one
// instance), or 404.
func (s *Service) instances(ctx context.Context, study, series, instance string) ([]catalog.Instance, error) {
	if instance != "" {
		in, err := s.cat.GetInstance(ctx, instance)
		if err != nil {
			return nil, err
		}
		if in.StudyInstanceUID != study || in.SeriesInstanceUID != series {
			return nil, errorf(http.StatusNotFound, "instance not found in this series")
		}
		return []catalog.Instance{in}, nil
	}
	all, err := s.cat.ListInstances(ctx, study)
	if err != nil {
		return nil, err
	}
	if series == "" {
		return all, nil
	}
	out := all[:0]
	for _, in := range all {
		if in.SeriesInstanceUID == series {
			out = append(out, in)
		}
	}
	if len(out) == 0 {
		return nil, errorf(http.StatusNotFound, "series not found in this study")
	}
	return out, nil
}

func instanceURL(base string, in catalog.Instance) string {
	return base + "/studies/" + in.StudyInstanceUID + "/series/" + in.SeriesInstanceUID + "/instances/" + in.SOPInstanceUID
}

func itoa(n int) string { return strconv.Itoa(n) }

func validUID(s string) bool { return dicomfile.ValidUID(s) }
