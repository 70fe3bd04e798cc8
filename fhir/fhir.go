package fhir

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hub"
)

// ErrConfig is returned (wrapped) for an unusable FHIR configuration.
var ErrConfig = errors.New("fhir: configuration")

// Options tune the component; zero fields take the defaults.
type Options struct {
	// BaseURL is this hub's public FHIR base ("https://hub/fhir"); empty:
	// from each request's Host.
	BaseURL string
	// DICOMwebURL is the public DICOMweb base the Endpoint resource
	// names ("https://hub/dicomweb"); empty: BaseURL's host + /dicomweb.
	DICOMwebURL string
	// Location is the time zone of the modalities' DICOM dates and
	// times; default time.Local.
	Location *time.Location
	// Targets are the EMRs to push to.
	Targets []Target
	// PushAttempts bounds the tries of one push before it is
	// dead-lettered; default 10. PushBackOff are the waits between them;
	// default DefaultPushBackOff.
	PushAttempts int
	PushBackOff  []time.Duration
	// PushTimeout bounds one request to a target; default 30s.
	PushTimeout time.Duration
	// NotifyAttempts and NotifyBackOff do the same for subscription
	// notifications; defaults 10 and DefaultPushBackOff.
	NotifyAttempts int
	NotifyBackOff  []time.Duration
	// HTTPClient sends pushes, token requests and notifications; default
	// a client with PushTimeout.
	HTTPClient *http.Client
}

// DefaultPushBackOff spaces retries of a push so that an EMR down for
// some minutes still gets every version, in order, once it is back.
var DefaultPushBackOff = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute}

// Stream base names and subjects of the component's own queues.
const (
	// PushStream is the work queue of pushes, one subject per target:
	// ihfhir.push.<target>.
	PushStream = "IH_FHIR_PUSH"
	// NotifyStream is the work queue of subscription notifications.
	NotifyStream = "IH_FHIR_NOTIFY"

	pushSubjectRoot   = "ihfhir.push."
	notifySubjectRoot = "ihfhir.notify."
)

// Source is the CloudEvents source of the component's events.
const Source = "imaginghub/fhir"

// FHIR is the FHIR R4 component: the REST API under /fhir, the projection
// of events into resources, the pushes to EMRs and the subscriptions.
type FHIR struct {
	rt      *hub.Runtime
	log     *slog.Logger
	opts    Options
	store   *Store
	targets []*Target
	client  *http.Client
	metrics *metrics

	mu        sync.Mutex
	consumers []*events.Consumer
}

// OptionsFromConfig builds Options from the fhir and dicomweb keys.
func OptionsFromConfig(cfg config.Config) (Options, error) {
	c := cfg.FHIR
	opts := Options{BaseURL: c.BaseURL, PushAttempts: c.PushAttempts, PushTimeout: c.PushTimeout}
	if u := strings.TrimRight(cfg.DICOMweb.PublicURL, "/"); u != "" {
		opts.DICOMwebURL = u + "/dicomweb"
	}
	if c.PushURL != "" {
		opts.Targets = append(opts.Targets, Target{Name: "default", URL: c.PushURL, Auth: c.PushAuth, Token: c.PushToken,
			TokenURL: c.PushTokenURL, ClientID: c.PushClientID, ClientSecret: c.PushClientSecret, Scope: c.PushScope})
	}
	for _, t := range c.Targets {
		opts.Targets = append(opts.Targets, Target{Name: t.Name, URL: t.URL, Auth: t.Auth, Token: t.Token, TokenURL: t.TokenURL,
			ClientID: t.ClientID, ClientSecret: t.ClientSecret, Scope: t.Scope, Transaction: t.Transaction})
	}
	return opts, nil
}

// New returns the component and registers its routes on rt's server.
func New(rt *hub.Runtime, opts Options) (*FHIR, error) {
	if err := initCodec(); err != nil {
		return nil, err
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.PushAttempts <= 0 {
		opts.PushAttempts = 10
	}
	if len(opts.PushBackOff) == 0 {
		opts.PushBackOff = DefaultPushBackOff
	}
	if opts.PushTimeout <= 0 {
		opts.PushTimeout = 30 * time.Second
	}
	if opts.NotifyAttempts <= 0 {
		opts.NotifyAttempts = 10
	}
	if len(opts.NotifyBackOff) == 0 {
		opts.NotifyBackOff = DefaultPushBackOff
	}
	f := &FHIR{rt: rt, log: rt.Log.With("component", "fhir"), opts: opts, store: NewStore(rt.Catalog), client: opts.HTTPClient}
	if f.client == nil {
		f.client = &http.Client{Timeout: opts.PushTimeout}
	}
	seen := map[string]bool{}
	for i := range opts.Targets {
		t := opts.Targets[i]
		if err := t.validate(); err != nil {
			return nil, err
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("%w: push target %q defined twice", ErrConfig, t.Name)
		}
		seen[t.Name] = true
		f.targets = append(f.targets, &t)
	}
	f.metrics = newMetrics(rt.Registerer())
	f.routes(rt.Server.Mux)
	return f, nil
}

// Store is the component's resource store.
func (f *FHIR) Store() *Store { return f.store }

// Name implements hub.Component.
func (f *FHIR) Name() string { return "fhir" }

// Start implements hub.Component: it stores the Endpoint resource and
// starts the projection consumers, one push consumer per target and the
// notification consumer.
func (f *FHIR) Start(ctx context.Context) error {
	if f.opts.DICOMwebURL == "" && f.opts.BaseURL == "" {
		f.log.Warn("neither dicomweb.public_url nor fhir.base_url is set: the Endpoint resource names the listen address, which EMRs may not reach")
	}
	if addr := f.dicomwebURL(); addr != "" {
		if _, _, err := f.store.Put(ctx, Endpoint(addr)); err != nil {
			return fmt.Errorf("fhir: endpoint: %w", err)
		}
	}
	queues := []events.StreamSpec{
		{Name: PushStream, Description: "imaginghub FHIR pushes, one subject per target", Subjects: []string{pushSubjectRoot + ">"}, Retention: jetstream.WorkQueuePolicy},
		{Name: NotifyStream, Description: "imaginghub FHIR subscription notifications", Subjects: []string{notifySubjectRoot + ">"}, Retention: jetstream.WorkQueuePolicy},
	}
	// One filter subject per consumer: NATS servers before 2.10 take no
	// more.
	projections := []struct {
		name, subject string
		h             events.Handler
	}{
		{"fhir-studies", events.TypeStudyStable, f.onStudyStable},
		{"fhir-orders", "ih.order.>", f.onOrder},
		{"fhir-patients", "ih.patient.>", f.onPatient},
		{"fhir-reports", "ih.report.>", f.onReport},
		{"fhir-reconciled", "ih.study.>", f.onReconciled},
	}
	for i, p := range projections {
		var streams []events.StreamSpec
		if i == 0 {
			streams = queues
		}
		c, err := f.rt.StartConsumer(ctx, events.ConsumerSpec{
			Name: p.name, Description: "fhir: resources from " + p.subject, FilterSubjects: []string{p.subject}, MaxDeliver: 10,
		}, p.h, nil, streams...)
		if err != nil {
			return fmt.Errorf("fhir: %w", err)
		}
		f.addConsumer(c)
	}
	for _, t := range f.targets {
		// MaxAckPending 1: the next job waits while one is retried, so a
		// target gets the versions in the order they were made.
		c, err := f.rt.StartConsumer(ctx, events.ConsumerSpec{
			Name: "fhir-push-" + t.Name, Description: "fhir: pushes to " + t.Name, Stream: PushStream,
			FilterSubjects: []string{pushSubjectRoot + t.Name}, MaxDeliver: f.opts.PushAttempts, BackOff: f.opts.PushBackOff,
			MaxAckPending: 1, AckWait: f.opts.PushTimeout * 3,
		}, nil, f.pushHandler(t))
		if err != nil {
			return fmt.Errorf("fhir: %w", err)
		}
		f.addConsumer(c)
	}
	c, err := f.rt.StartConsumer(ctx, events.ConsumerSpec{
		Name: "fhir-notify", Description: "fhir: subscription notifications", Stream: NotifyStream,
		MaxDeliver: f.opts.NotifyAttempts, BackOff: f.opts.NotifyBackOff, Concurrency: 4, AckWait: f.opts.PushTimeout * 3,
	}, nil, f.notify)
	if err != nil {
		return fmt.Errorf("fhir: %w", err)
	}
	f.addConsumer(c)
	return nil
}

func (f *FHIR) addConsumer(c *events.Consumer) {
	f.mu.Lock()
	f.consumers = append(f.consumers, c)
	f.mu.Unlock()
}

// Shutdown implements hub.Component: the consumers finish what they hold.
func (f *FHIR) Shutdown(ctx context.Context) error {
	f.mu.Lock()
	cs := f.consumers
	f.consumers = nil
	f.mu.Unlock()
	var errs []error
	for _, c := range cs {
		errs = append(errs, hub.StopConsumer(ctx, c))
	}
	return errors.Join(errs...)
}

func (f *FHIR) dicomwebURL() string {
	if f.opts.DICOMwebURL != "" {
		return f.opts.DICOMwebURL
	}
	if b := strings.TrimRight(f.opts.BaseURL, "/"); b != "" {
		return strings.TrimSuffix(b, "/fhir") + "/dicomweb"
	}
	a := f.rt.Server.HTTPAddr()
	if strings.HasPrefix(a, ":") || strings.HasPrefix(a, "[::]:") || strings.HasPrefix(a, "0.0.0.0:") {
		a = "localhost:" + a[strings.LastIndexByte(a, ':')+1:]
	}
	return "http://" + a + "/dicomweb"
}
