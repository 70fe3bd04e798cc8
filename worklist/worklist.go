package worklist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hub"
)

// Durable consumer names. The shared NATS takes one filter subject per
// consumer (servers before 2.10), so orders and patients get one each.
const (
	OrdersConsumer   = "worklist-orders"
	PatientsConsumer = "worklist-patients"
)

// Options configure the component. The zero value works.
type Options struct {
	// IncludeFinalSteps makes MWL queries also return COMPLETED,
	// DISCONTINUED and CANCELED steps; by default they are left out.
	IncludeFinalSteps bool
	// MaxMatches bounds the items one MWL query returns; a query matching
	// more is refused with 0xA700. Zero means 5000.
	MaxMatches int
	// MaxDeliver and BackOff bound the consumers' retries before an
	// event is dead-lettered; zero values take the events defaults.
	MaxDeliver int
	BackOff    []time.Duration
}

// Worklist is the component "worklist": the worklist projection fed by
// ih.order.* and ih.patient.* events, the MWL C-FIND and MPPS SCPs on the
// hub's DICOM listener, and the REST API under /api/worklist.
type Worklist struct {
	rt      *hub.Runtime
	opts    Options
	store   *Store
	log     *slog.Logger
	kick    func()
	metrics metrics

	orders, patients *events.Consumer
}

type metrics struct {
	findMatches prometheus.Histogram
	findSeconds prometheus.Histogram
	mpps        *prometheus.CounterVec
	applied     *prometheus.CounterVec
}

// New builds the component on rt. When reg is not nil (the ingest
// component's Registry, before it starts), the MWL and MPPS SOP classes
// are registered on it; the REST routes go on rt's server.
func New(rt *hub.Runtime, reg *dicomnet.Registry, opts Options) (*Worklist, error) {
	if opts.MaxMatches <= 0 {
		opts.MaxMatches = defaultMaxMatches
	}
	w := &Worklist{
		rt:    rt,
		opts:  opts,
		store: &Store{Catalog: rt.Catalog},
		log:   rt.Log.With("component", "worklist"),
		kick:  rt.Relay.Kick,
	}
	w.metrics = metrics{
		findMatches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "imaginghub", Subsystem: "worklist", Name: "find_matches",
			Help: "Items returned per MWL C-FIND.", Buckets: []float64{0, 1, 5, 20, 100, 500, 2000},
		}),
		findSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "imaginghub", Subsystem: "worklist", Name: "find_duration_seconds",
			Help: "Time to answer an MWL C-FIND, from the request to the final response.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		mpps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "imaginghub", Subsystem: "worklist", Name: "mpps_total",
			Help: "MPPS N-CREATE and N-SET accepted, by operation and resulting status.",
		}, []string{"op", "status"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "imaginghub", Subsystem: "worklist", Name: "events_applied_total",
			Help: "Order and patient events applied to the worklist projection, by event type.",
		}, []string{"type"}),
	}
	for _, c := range []prometheus.Collector{w.metrics.findMatches, w.metrics.findSeconds, w.metrics.mpps, w.metrics.applied} {
		if err := rt.Registerer().Register(c); err != nil {
			return nil, fmt.Errorf("worklist: metrics: %w", err)
		}
	}
	if reg != nil {
		syntaxes := []string{dicomnet.ExplicitVRLittleEndian, dicomnet.ImplicitVRLittleEndian}
		reg.Handle(ModalityWorklistFind, syntaxes, dicomnet.HandlerFunc(func(ctx context.Context, rw dicomnet.ResponseWriter, r *dicomnet.Request) {
			began := time.Now()
			w.serveFind(ctx, rw, r)
			w.metrics.findSeconds.Observe(time.Since(began).Seconds())
		}))
		reg.Handle(ModalityPerformedProcedureStep, syntaxes, dicomnet.HandlerFunc(w.serveMPPS))
	}
	w.routes(rt.Server.Mux)
	return w, nil
}

// Store is the component's store, for tools and tests.
func (w *Worklist) Store() *Store { return w.store }

// Name implements hub.Component.
func (w *Worklist) Name() string { return "worklist" }

// Start implements hub.Component: it starts the two projection consumers.
func (w *Worklist) Start(ctx context.Context) error {
	var err error
	w.orders, err = w.rt.Bus.Consume(ctx, events.ConsumerSpec{
		Name:           OrdersConsumer,
		Description:    "worklist items from orders",
		FilterSubjects: []string{"ih.order.>"},
		MaxDeliver:     w.opts.MaxDeliver,
		BackOff:        w.opts.BackOff,
		// An order's changes apply in the order they were made.
		Concurrency: 1,
	}, w.handleOrder)
	if err != nil {
		return fmt.Errorf("worklist: %w", err)
	}
	w.patients, err = w.rt.Bus.Consume(ctx, events.ConsumerSpec{
		Name:           PatientsConsumer,
		Description:    "worklist patient data from the registry",
		FilterSubjects: []string{"ih.patient.>"},
		MaxDeliver:     w.opts.MaxDeliver,
		BackOff:        w.opts.BackOff,
		Concurrency:    1,
	}, w.handlePatient)
	if err != nil {
		w.orders.Stop()
		return fmt.Errorf("worklist: %w", err)
	}
	for name, c := range map[string]*events.Consumer{OrdersConsumer: w.orders, PatientsConsumer: w.patients} {
		w.rt.Server.AddCheck(name+" consumer", func(context.Context) error {
			select {
			case <-c.Done():
				return errors.New("stopped")
			default:
				return nil
			}
		})
	}
	return nil
}

// Shutdown implements hub.Component: the events in hand are finished.
func (w *Worklist) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		for _, c := range []*events.Consumer{w.orders, w.patients} {
			if c != nil {
				c.Stop()
			}
		}
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *Worklist) handleOrder(ctx context.Context, e events.Event, d events.Delivery) error {
	var o OrderEvent
	if err := e.DecodeData(&o); err != nil {
		return events.Permanent(fmt.Errorf("worklist: %s data: %w", e.Type, err))
	}
	if o.ID == 0 {
		return events.Permanent(fmt.Errorf("worklist: %s without order id", e.Type))
	}
	return w.apply(ctx, e, d, func(ctx context.Context, tx *catalog.Tx, now time.Time) error {
		return ApplyOrder(ctx, tx, o, now)
	})
}

func (w *Worklist) handlePatient(ctx context.Context, e events.Event, d events.Delivery) error {
	var p PatientEvent
	if err := e.DecodeData(&p); err != nil {
		return events.Permanent(fmt.Errorf("worklist: %s data: %w", e.Type, err))
	}
	return w.apply(ctx, e, d, func(ctx context.Context, tx *catalog.Tx, now time.Time) error {
		return ApplyPatient(ctx, tx, e.Type, p, now)
	})
}

// apply runs fn once per event id, in one transaction with the record of
// the id.
func (w *Worklist) apply(ctx context.Context, e events.Event, d events.Delivery, fn func(context.Context, *catalog.Tx, time.Time) error) error {
	now := w.store.now()
	applied := false
	err := w.rt.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
		first, err := markApplied(ctx, tx, e.ID, now)
		if err != nil || !first {
			applied = false
			return err
		}
		applied = true
		return fn(ctx, tx, now)
	})
	if err != nil {
		w.log.Warn("event not applied to the worklist", "type", e.Type, "delivery", d.NumDelivered, "err", err)
		return err
	}
	if applied {
		w.metrics.applied.WithLabelValues(e.Type).Inc()
	}
	return nil
}
