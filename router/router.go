// Package router forwards what arrives at the hub by rules: instances to
// DICOM peers (C-STORE SCU) and events to HTTP webhooks.
//
// Rules (config router.rules) match events of the event stream — their
// type, the calling AE, modality, SOP class, body part, study description
// and institution by regular expression, and the time of day. The durable
// consumer "router-match" applies them and queues one job per destination
// and instance (or event) on the work-queue stream IH_ROUTER, subject
// ihroute.<destination>, with a Nats-Msg-Id derived from what the job
// delivers, so that an event delivered twice queues its jobs once.
//
// Each destination has its own durable consumer, "router-<destination>",
// running up to Destination.Concurrency deliveries at once. DICOM
// deliveries keep their associations open while jobs flow and release them
// when idle; failures are retried with exponential back-off and, after
// Destination.MaxAttempts, dead-lettered for an operator to retry or
// discard. A delivery the destination acknowledged is recorded in the
// catalog before the job is acknowledged, and a job whose delivery is
// recorded already is skipped: nothing is forwarded twice to a destination
// that acknowledged it, across redeliveries and restarts.
package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/ingest"
)

// Sentinel errors.
var (
	// ErrConfig: the router configuration is unusable.
	ErrConfig = errors.New("router: invalid configuration")
	// ErrUnknownDestination: no destination has that name.
	ErrUnknownDestination = errors.New("router: unknown destination")
)

// Defaults of Options and of config.Destination.
const (
	DefaultConcurrency  = 1
	DefaultMaxAttempts  = 10
	DefaultTimeout      = 60 * time.Second
	DefaultIdleRelease  = 10 * time.Second
	DefaultScanInterval = 5 * time.Second
)

// DefaultBackOff is the delay before the 2nd, 3rd, … delivery attempt:
// doubling from one second up to ten minutes.
var DefaultBackOff = []time.Duration{
	time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
	32 * time.Second, 64 * time.Second, 128 * time.Second, 256 * time.Second, 512 * time.Second, 10 * time.Minute,
}

// Options tune a Router; the zero value takes the defaults.
type Options struct {
	// BackOff is the delay after the n-th failed attempt, the last value
	// repeating; default DefaultBackOff.
	BackOff []time.Duration
	// IdleRelease is how long an association with no job to carry stays
	// open; default DefaultIdleRelease.
	IdleRelease time.Duration
	// ScanInterval is how often queue depths are measured and the paused
	// state shared by other processes is read; default DefaultScanInterval.
	ScanInterval time.Duration
	// MatchConcurrency is how many events the rules are applied to at
	// once; default 4.
	MatchConcurrency int
	// HTTPClient posts to webhooks; default a client without redirects to
	// other hosts beyond net/http's defaults.
	HTTPClient *http.Client
}

// Router is the component "router".
type Router struct {
	rt         *hub.Runtime
	log        *slog.Logger
	opts       Options
	rules      []Rule
	dests      map[string]*destination
	order      []string
	callingAE  string
	httpClient *http.Client
	metrics    *metrics
	ledger     *ledger

	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	matcher *events.Consumer
	done    chan struct{}
}

// destination is one configured destination and its delivery consumer.
type destination struct {
	r        *Router
	cfg      config.Destination
	pool     *pool // DICOM only
	inFlight atomic.Int64
	single   exclusive // one delivery of a job at a time

	mu     sync.Mutex
	cons   *events.Consumer
	paused bool
}

// New builds the router on rt from rt.Config.Router and registers its
// admin API on rt.Server.Mux and its metrics on rt.Server.Registry.
func New(rt *hub.Runtime, opts Options) (*Router, error) {
	rules, err := CompileRules(rt.Config.Router.Rules)
	if err != nil {
		return nil, err
	}
	if len(opts.BackOff) == 0 {
		opts.BackOff = DefaultBackOff
	}
	if opts.IdleRelease <= 0 {
		opts.IdleRelease = DefaultIdleRelease
	}
	if opts.ScanInterval <= 0 {
		opts.ScanInterval = DefaultScanInterval
	}
	if opts.MatchConcurrency <= 0 {
		opts.MatchConcurrency = 4
	}
	r := &Router{
		rt:         rt,
		log:        rt.Log.With("component", "router"),
		opts:       opts,
		rules:      rules,
		dests:      map[string]*destination{},
		callingAE:  rt.Config.DICOM.AE,
		httpClient: opts.HTTPClient,
	}
	if r.httpClient == nil {
		r.httpClient = &http.Client{}
	}
	for _, dc := range rt.Config.Router.Destinations {
		if dc.Name == "" || r.dests[dc.Name] != nil {
			return nil, fmt.Errorf("%w: destination %q unnamed or defined twice", ErrConfig, dc.Name)
		}
		if dc.Concurrency <= 0 {
			dc.Concurrency = DefaultConcurrency
		}
		if dc.MaxAttempts <= 0 {
			dc.MaxAttempts = DefaultMaxAttempts
		}
		if dc.Timeout <= 0 {
			dc.Timeout = DefaultTimeout
		}
		d := &destination{r: r, cfg: dc}
		if dc.URL == "" {
			calling := dc.CallingAE
			if calling == "" {
				calling = r.callingAE
			}
			d.pool = &pool{dest: dc, callingAE: calling, log: r.log.With("destination", dc.Name),
				slots: make(chan struct{}, dc.Concurrency)}
		}
		r.dests[dc.Name] = d
		r.order = append(r.order, dc.Name)
	}
	for _, rule := range rules {
		for _, f := range rule.Forward {
			if r.dests[f] == nil {
				return nil, fmt.Errorf("%w: rule %s forwards to unknown destination %q", ErrConfig, rule.Name, f)
			}
		}
	}
	r.metrics = newMetrics(rt.Server.Registry)
	r.routes(rt.Server.Mux)
	return r, nil
}

// Name implements hub.Component.
func (r *Router) Name() string { return "router" }

// Start implements hub.Component: it makes sure the queue stream exists,
// starts a delivery consumer for every destination not paused and the
// rule-matching consumer of the event stream.
func (r *Router) Start(ctx context.Context) error {
	if _, err := r.rt.Bus.EnsureStream(ctx, StreamSpec()); err != nil {
		return fmt.Errorf("router: stream: %w", err)
	}
	r.mu.Lock()
	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.done = make(chan struct{})
	r.ledger = newLedger(r.rt.Catalog)
	r.mu.Unlock()
	paused, err := r.pausedSet(ctx)
	if err != nil {
		return err
	}
	for _, name := range r.order {
		d := r.dests[name]
		d.mu.Lock()
		d.paused = paused[name]
		d.mu.Unlock()
		if !d.paused {
			if err := d.start(r.ctx); err != nil {
				return err
			}
		}
	}
	if len(r.rules) > 0 {
		m, err := r.rt.Bus.ConsumeRaw(r.ctx, events.ConsumerSpec{
			Name:          MatchConsumer,
			Description:   "router: applies the rules and queues deliveries",
			Stream:        events.EventsStream,
			MaxDeliver:    10,
			Concurrency:   r.opts.MatchConcurrency,
			MaxAckPending: 1000,
		}, r.match)
		if err != nil {
			return fmt.Errorf("router: %w", err)
		}
		r.mu.Lock()
		r.matcher = m
		r.mu.Unlock()
	}
	go r.loop()
	return nil
}

// loop measures queues, follows pauses made by other processes and
// releases idle associations.
func (r *Router) loop() {
	defer close(r.done)
	scan := time.NewTicker(r.opts.ScanInterval)
	defer scan.Stop()
	reap := time.NewTicker(min(time.Second, r.opts.IdleRelease))
	defer reap.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-reap.C:
			for _, d := range r.dests {
				if d.pool != nil {
					d.pool.reap(r.opts.IdleRelease)
				}
			}
		case <-scan.C:
			if err := r.sync(r.ctx); err != nil && r.ctx.Err() == nil {
				r.log.Warn("router scan failed", "err", err)
			}
		}
	}
}

// sync applies the shared paused state and refreshes the queue gauges.
func (r *Router) sync(ctx context.Context) error {
	paused, err := r.pausedSet(ctx)
	if err != nil {
		return err
	}
	for _, name := range r.order {
		d := r.dests[name]
		if paused[name] {
			d.stop()
		} else if err := d.start(r.ctx); err != nil {
			return err
		}
		if n, err := d.queueDepth(ctx); err == nil {
			r.metrics.queueDepth.WithLabelValues(name).Set(float64(n))
		}
	}
	return nil
}

// Shutdown implements hub.Component: rule matching stops first, then each
// destination finishes the deliveries in hand, then idle associations are
// released.
func (r *Router) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	if r.cancel == nil {
		r.mu.Unlock()
		return nil
	}
	matcher := r.matcher
	r.mu.Unlock()
	// Cancelling the router's context stops the scan loop and every
	// consumer from fetching; Stop then waits for the deliveries in hand,
	// which run on their own context.
	r.cancel()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		<-r.done
		if matcher != nil {
			matcher.Stop()
		}
		var wg sync.WaitGroup
		for _, d := range r.dests {
			wg.Add(1)
			go func() { defer wg.Done(); d.stop() }()
		}
		wg.Wait()
		for _, d := range r.dests {
			if d.pool != nil {
				d.pool.close()
			}
		}
		r.ledger.close()
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// start runs the destination's delivery consumer unless it runs already.
func (d *destination) start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.paused = false
	if d.cons != nil || ctx.Err() != nil {
		return nil
	}
	handlers := d.cfg.Concurrency
	if d.pool != nil {
		// More handlers than associations: while one handler has the
		// association, others look their jobs up, open their files, and
		// record and acknowledge their deliveries, so that the association
		// does not wait for the bookkeeping.
		handlers *= 8
	}
	cons, err := d.r.rt.Bus.ConsumeRaw(ctx, events.ConsumerSpec{
		Name:           ConsumerName(d.cfg.Name),
		Description:    "router: deliveries to " + d.cfg.Name,
		Stream:         StreamName,
		FilterSubjects: []string{Subject(d.cfg.Name)},
		MaxDeliver:     d.cfg.MaxAttempts,
		BackOff:        d.r.opts.BackOff,
		// A running delivery is kept alive with "in progress" signals, so
		// AckWait only decides how soon jobs held by a process that died
		// (or pulled for one that stopped) go to another: keep it short.
		AckWait: 10 * time.Second,
		// A delivery in hand at shutdown may finish, rather than being cut
		// after the destination stored the instance but before the record.
		DrainTimeout: d.cfg.Timeout,
		Concurrency:  handlers,
		// A few jobs beyond those in hand keep the pipe full without
		// hiding the queue from other processes delivering it.
		MaxAckPending: 2 * handlers,
	}, d.deliver)
	if err != nil {
		return fmt.Errorf("router: destination %s: %w", d.cfg.Name, err)
	}
	d.cons = cons
	return nil
}

// stop stops the delivery consumer after the deliveries in hand.
func (d *destination) stop() {
	d.mu.Lock()
	cons := d.cons
	d.cons = nil
	d.paused = true
	d.mu.Unlock()
	if cons != nil {
		cons.Stop()
	}
}

func (d *destination) isPaused() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.paused
}

// queueDepth is how many jobs wait for the destination or are being
// delivered: the messages left on its subject of the work queue.
func (d *destination) queueDepth(ctx context.Context) (uint64, error) {
	bus := d.r.rt.Bus
	cons, err := bus.JetStream().Consumer(ctx, bus.StreamName(StreamName), ConsumerName(d.cfg.Name))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		st, err := bus.JetStream().Stream(ctx, bus.StreamName(StreamName))
		if err != nil {
			return 0, err
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(bus.Subject(Subject(d.cfg.Name))))
		if err != nil {
			return 0, err
		}
		return info.State.Subjects[bus.Subject(Subject(d.cfg.Name))], nil
	}
	if err != nil {
		return 0, err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}

// deliver is the delivery handler of one job.
func (d *destination) deliver(ctx context.Context, dl events.Delivery) error {
	var j Job
	if err := json.Unmarshal(dl.Data, &j); err != nil {
		return events.Permanent(fmt.Errorf("router: job: %w", err))
	}
	name := d.cfg.Name
	m := d.r.metrics
	release, err := d.single.acquire(ctx, j.MsgID())
	if err != nil {
		return err
	}
	defer release()
	done, err := d.r.ledger.delivered(ctx, name, &j)
	if err != nil {
		return err
	}
	if done {
		m.skipped.WithLabelValues(name).Inc()
		return nil
	}
	d.inFlight.Add(1)
	m.inFlight.WithLabelValues(name).Inc()
	defer func() {
		d.inFlight.Add(-1)
		m.inFlight.WithLabelValues(name).Dec()
	}()
	actx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	if j.IsWebhook() {
		err = d.post(actx, &j)
	} else {
		err = d.r.store(actx, d.pool, &j)
	}
	cancel()
	if err != nil {
		m.failures.WithLabelValues(name).Inc()
		last := events.IsPermanent(err) || dl.NumDelivered >= uint64(d.cfg.MaxAttempts)
		if last {
			m.deadLettered.WithLabelValues(name).Inc()
		}
		d.r.log.Warn("delivery failed", "destination", name, "attempt", dl.NumDelivered, "dead_letter", last, "err", err)
		return err
	}
	// The destination has it: record that before the job is acknowledged,
	// so a crash in between repeats the job and the record skips it.
	if err := d.r.ledger.record(ctx, name, &j); err != nil {
		return err
	}
	m.forwarded.WithLabelValues(name).Inc()
	m.latency.WithLabelValues(name).Observe(time.Since(dl.Timestamp).Seconds())
	return nil
}

// match applies the rules to one event of the event stream and queues the
// deliveries they ask for.
func (r *Router) match(ctx context.Context, dl events.Delivery) error {
	typ := dl.Header.Get(events.HeaderEventType)
	if typ != "" && !r.wants(typ) {
		return nil
	}
	var e events.Event
	if err := json.Unmarshal(dl.Data, &e); err != nil {
		return events.Permanent(fmt.Errorf("router: event: %w", err))
	}
	if !r.wants(e.Type) {
		return nil
	}
	a, study, err := r.attributes(ctx, &e)
	if err != nil {
		return err
	}
	var jobs []events.Message
	for i := range r.rules {
		rule := &r.rules[i]
		if !rule.Matches(a) {
			continue
		}
		for _, name := range rule.Forward {
			js, err := r.jobsFor(ctx, r.dests[name], rule.Name, &e, dl.Data, study)
			if err != nil {
				return err
			}
			jobs = append(jobs, js...)
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	// Repeats (a second rule, a redelivered event) carry the same
	// Nats-Msg-Id and are dropped by the stream.
	if err := r.rt.Bus.PublishMsgs(ctx, jobs); err != nil {
		return fmt.Errorf("router: queue deliveries: %w", err)
	}
	r.log.Debug("deliveries queued", "event_type", e.Type, "jobs", len(jobs))
	return nil
}

func (r *Router) wants(typ string) bool {
	for i := range r.rules {
		if slices.Contains(r.rules[i].On, typ) {
			return true
		}
	}
	return false
}

// studyInfo is what a study-level event says and the catalog adds.
type studyInfo struct {
	uid       string
	instances []catalog.Instance // nil until needed
}

// attributes gathers what rules match on. An instance event carries it
// all; for other events the study they name (data.studyInstanceUID, else
// the event subject) is looked up in the catalog.
func (r *Router) attributes(ctx context.Context, e *events.Event) (Attributes, *studyInfo, error) {
	a := Attributes{Type: e.Type, Time: e.Time}
	if e.Type == events.TypeInstanceStored {
		var in ingest.InstanceStored
		if err := json.Unmarshal(e.Data, &in); err != nil {
			return a, nil, events.Permanent(fmt.Errorf("router: %s data: %w", e.Type, err))
		}
		a.CallingAE = []string{in.CallingAE}
		a.Modality = []string{in.Modality}
		a.SOPClassUID = []string{in.SOPClassUID}
		a.BodyPartExamined = []string{in.BodyPartExamined}
		a.StudyDescription = []string{in.StudyDescription}
		a.InstitutionName = []string{in.InstitutionName}
		return a, nil, nil
	}
	// Any event may name attributes in its data with the hub's keys.
	var generic struct {
		StudyInstanceUID  string   `json:"studyInstanceUID"`
		ModalitiesInStudy []string `json:"modalitiesInStudy"`
		Modality          string   `json:"modality"`
		CallingAE         string   `json:"callingAE"`
		SOPClassUID       string   `json:"sopClassUID"`
		BodyPartExamined  string   `json:"bodyPartExamined"`
		StudyDescription  string   `json:"studyDescription"`
		InstitutionName   string   `json:"institutionName"`
	}
	_ = json.Unmarshal(e.Data, &generic) // data that is not an object names nothing
	add := func(dst *[]string, v string) {
		if v != "" && !slices.Contains(*dst, v) {
			*dst = append(*dst, v)
		}
	}
	for _, m := range generic.ModalitiesInStudy {
		add(&a.Modality, m)
	}
	add(&a.Modality, generic.Modality)
	add(&a.CallingAE, generic.CallingAE)
	add(&a.SOPClassUID, generic.SOPClassUID)
	add(&a.BodyPartExamined, generic.BodyPartExamined)
	add(&a.StudyDescription, generic.StudyDescription)
	add(&a.InstitutionName, generic.InstitutionName)

	uid := generic.StudyInstanceUID
	if uid == "" {
		uid = e.Subject
	}
	if uid == "" {
		return a, nil, nil
	}
	st, err := r.rt.Catalog.GetStudy(ctx, uid)
	if errors.Is(err, catalog.ErrNotFound) {
		return a, nil, nil // not a study, or one not (yet) in this archive
	}
	if err != nil {
		return a, nil, fmt.Errorf("router: study: %w", err)
	}
	info := &studyInfo{uid: uid}
	add(&a.StudyDescription, st.Study.StudyDescription)
	for _, m := range st.Study.ModalitiesInStudy {
		add(&a.Modality, m)
	}
	info.instances, err = r.rt.Catalog.ListInstances(ctx, uid)
	if err != nil {
		return a, nil, fmt.Errorf("router: study instances: %w", err)
	}
	series := map[string]bool{}
	for _, in := range info.instances {
		add(&a.CallingAE, in.CallingAE)
		add(&a.SOPClassUID, in.SOPClassUID)
		if series[in.SeriesInstanceUID] {
			continue
		}
		series[in.SeriesInstanceUID] = true
		s, err := r.rt.Catalog.GetSeries(ctx, in.SeriesInstanceUID)
		if err != nil {
			continue
		}
		add(&a.Modality, s.Modality)
		add(&a.BodyPartExamined, s.BodyPartExamined)
		add(&a.InstitutionName, s.InstitutionName)
	}
	return a, info, nil
}

// jobsFor builds the jobs of one destination for one event: the event
// itself for a webhook; for a DICOM destination the instance of an
// instance event, or every instance of the study another event names.
func (r *Router) jobsFor(ctx context.Context, d *destination, rule string, e *events.Event, raw []byte, study *studyInfo) ([]events.Message, error) {
	var jobs []Job
	switch {
	case d.pool == nil:
		jobs = append(jobs, Job{Destination: d.cfg.Name, Rule: rule, EventID: e.ID, EventType: e.Type, Event: raw})
	case e.Type == events.TypeInstanceStored:
		var in ingest.InstanceStored
		if err := json.Unmarshal(e.Data, &in); err != nil {
			return nil, events.Permanent(fmt.Errorf("router: %s data: %w", e.Type, err))
		}
		jobs = append(jobs, Job{Destination: d.cfg.Name, Rule: rule, StudyInstanceUID: in.StudyInstanceUID,
			SOPInstanceUID: in.SOPInstanceUID, SOPClassUID: in.SOPClassUID, TransferSyntaxUID: in.TransferSyntaxUID, BlobKey: in.BlobKey})
	case study != nil:
		for _, in := range study.instances {
			jobs = append(jobs, Job{Destination: d.cfg.Name, Rule: rule, StudyInstanceUID: study.uid,
				SOPInstanceUID: in.SOPInstanceUID, SOPClassUID: in.SOPClassUID, TransferSyntaxUID: in.TransferSyntaxUID, BlobKey: in.BlobKey})
		}
	default:
		r.log.Debug("event names no study in the archive; nothing to forward", "event_type", e.Type, "destination", d.cfg.Name)
	}
	out := make([]events.Message, 0, len(jobs))
	for i := range jobs {
		m, err := jobs[i].message()
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// pausedSet reads the destinations an operator paused.
func (r *Router) pausedSet(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	err := r.rt.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
		clear(out)
		rows, err := tx.QueryContext(ctx, `SELECT destination FROM router_paused`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				return err
			}
			out[name] = true
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("router: read paused destinations: %w", err)
	}
	return out, nil
}

// Pause stops deliveries to a destination, here at once (after the
// deliveries in hand) and in other processes at their next scan; jobs keep
// queueing. The pause lasts across restarts until Resume.
func (r *Router) Pause(ctx context.Context, name string) error {
	d := r.dests[name]
	if d == nil {
		return fmt.Errorf("%w: %q", ErrUnknownDestination, name)
	}
	err := r.rt.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO router_paused (destination, paused_at) VALUES (?, ?) ON CONFLICT (destination) DO NOTHING`,
			name, tx.Time(time.Now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("router: pause: %w", err)
	}
	d.stop()
	r.log.Info("destination paused", "destination", name)
	return nil
}

// Resume restarts deliveries to a paused destination.
func (r *Router) Resume(ctx context.Context, name string) error {
	d := r.dests[name]
	if d == nil {
		return fmt.Errorf("%w: %q", ErrUnknownDestination, name)
	}
	err := r.rt.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM router_paused WHERE destination = ?`, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("router: resume: %w", err)
	}
	r.mu.Lock()
	rctx := r.ctx
	r.mu.Unlock()
	if rctx == nil {
		d.mu.Lock()
		d.paused = false
		d.mu.Unlock()
		return nil
	}
	if err := d.start(rctx); err != nil {
		return err
	}
	r.log.Info("destination resumed", "destination", name)
	return nil
}
