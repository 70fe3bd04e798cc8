// Package workflow is the component "workflow": the event-driven core of IHE
// Radiology Scheduled Workflow (SWF.b), Patient Information Reconciliation
// (PIR) and Charge Posting (CHG) on the hub's side.
//
// Durable consumers of the event stream, one filter subject each:
//
//   - workflow-received (ih.dicom.instance.stored) starts a study's audit
//     trail with its first instance;
//   - workflow-stable (ih.dicom.study.stable) matches a study to its order
//     — by the Study Instance UID the worklist gave, then Accession Number,
//     then the MPPS that named the study, then (only when enabled) Patient ID
//   - modality + date — and links them, or queues the study as unmatched;
//   - workflow-orders (ih.order.>) re-runs matching for queued studies when
//     their order arrives late, and reverses charges of cancelled orders;
//   - workflow-procedures (ih.procedure.>) posts a charge on MPPS COMPLETED,
//     reverses it on DISCONTINUED, and reports the step's status to the RIS;
//   - workflow-patients (ih.patient.>) carries ADT updates and merges into
//     the linked studies;
//   - workflow-reports (ih.report.>) completes reading tasks;
//   - workflow-reconciled (ih.study.reconciled) tells the RIS that images are
//     available;
//   - workflow-billing (ih.billing.>) sends DFT^P03 to the PMS.
//
// A link makes the catalog's patient and study rows agree with the HIS/RIS,
// so C-FIND and QIDO-RS answer with the corrected values, and keeps a
// per-study coercion row that retrievals (C-MOVE, C-GET, WADO) apply to the
// stored files as they stream (package workflow/coerce); the files
// themselves stay byte for byte as received.
//
// Every decision commits with the event it emits (outbox) and with the id of
// the event that caused it, so a redelivered event changes nothing twice.
// Outbound HL7 goes through hl7out with a message control id (MSH-10) derived
// from the fact it reports, so that a repeat is dropped by the queue's
// duplicate window: one DFT^P03 per charge and one per reversal.
package workflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hl7out"
	"github.com/imaginghub/imaginghub/hub"
)

// Source is the CloudEvents source of the component's events.
const Source = "imaginghub/workflow"

// Durable consumer names. The shared NATS takes one filter subject per
// consumer (servers before 2.10), hence one consumer per domain.
const (
	ReceivedConsumer   = "workflow-received"
	StableConsumer     = "workflow-stable"
	OrdersConsumer     = "workflow-orders"
	ProcedureConsumer  = "workflow-procedures"
	PatientsConsumer   = "workflow-patients"
	ReportsConsumer    = "workflow-reports"
	ReconciledConsumer = "workflow-reconciled"
	BillingConsumer    = "workflow-billing"
)

// How a study was matched to its order (workflow_links.matched_by).
const (
	MatchStudyInstanceUID = "study_instance_uid"
	MatchAccessionNumber  = "accession_number"
	MatchMPPS             = "mpps"
	MatchHeuristic        = "heuristic"
	MatchManual           = "manual"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNotFound: the study or order asked for is not known.
	ErrNotFound = errors.New("workflow: not found")
	// ErrInvalid: a request is malformed.
	ErrInvalid = errors.New("workflow: invalid request")
)

// Options configure the component. The zero value works: no status
// messages and no DFT^P03 are sent, billing follows MPPS.
type Options struct {
	// RISStatusFormat is "orm" (ORM^O01, v2.3.1, the default) or "omi"
	// (OMI^O23, v2.5.1).
	RISStatusFormat string
	// BillingTrigger is "mpps" (the default) or "reconciled".
	BillingTrigger string
	// NoMPPSModalities are charged on reconciliation whatever the trigger.
	NoMPPSModalities []string
	// HeuristicMatching enables matching by Patient ID, modality and date
	// within HeuristicWindow (24h if zero).
	HeuristicMatching bool
	HeuristicWindow   time.Duration
	// RISAddr and PMSAddr are host:port of the MLLP listeners that get
	// order status and DFT^P03; empty sends nothing.
	RISAddr, PMSAddr string
	// Application and Facility are MSH-3 and MSH-4 of outbound messages.
	Application, Facility string
	// MaxDeliver and BackOff bound the consumers' retries before an event
	// is dead-lettered; zero values take the events defaults.
	MaxDeliver int
	BackOff    []time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// OptionsFrom takes the options from the hub's configuration.
func OptionsFrom(cfg config.Config) Options {
	return Options{
		RISStatusFormat:   cfg.Workflow.RISStatusFormat,
		BillingTrigger:    cfg.Workflow.BillingTrigger,
		NoMPPSModalities:  cfg.Workflow.NoMPPSModalities,
		HeuristicMatching: cfg.Workflow.HeuristicMatching,
		HeuristicWindow:   cfg.Workflow.HeuristicWindow,
		RISAddr:           cfg.RIS.MLLPAddr,
		PMSAddr:           cfg.PMS.MLLPAddr,
		Application:       cfg.HL7.Application,
		Facility:          cfg.HL7.Facility,
	}
}

// Workflow is the component.
type Workflow struct {
	rt   *hub.Runtime
	opts Options
	log  *slog.Logger

	// emitted counts the events committed, by type: reconciliations,
	// unmatched studies, charges and reversals, reading requests.
	emitted *prometheus.CounterVec

	mu   sync.Mutex
	cons []*events.Consumer
}

// New builds the component on rt and registers its REST routes:
// GET /api/reconciliation/unmatched, POST
// /api/reconciliation/unmatched/{study}/link, GET /api/reports/worklist and
// GET /api/studies/{study}/timeline.
func New(rt *hub.Runtime, opts Options) (*Workflow, error) {
	switch opts.RISStatusFormat {
	case "":
		opts.RISStatusFormat = "orm"
	case "orm", "omi":
	default:
		return nil, fmt.Errorf("%w: RIS status format %q", ErrInvalid, opts.RISStatusFormat)
	}
	switch opts.BillingTrigger {
	case "":
		opts.BillingTrigger = "mpps"
	case "mpps", "reconciled":
	default:
		return nil, fmt.Errorf("%w: billing trigger %q", ErrInvalid, opts.BillingTrigger)
	}
	if opts.HeuristicWindow <= 0 {
		opts.HeuristicWindow = 24 * time.Hour
	}
	if opts.Application == "" {
		opts.Application = "IMAGINGHUB"
	}
	if opts.Facility == "" {
		opts.Facility = "IMAGINGHUB"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	w := &Workflow{rt: rt, opts: opts, log: rt.Log.With("component", "workflow"),
		emitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "imaginghub", Subsystem: "workflow", Name: "events_emitted_total",
			Help: "Workflow events committed, by type (reconciled, unmatched, charge posted and reversed, report requested).",
		}, []string{"type"}),
	}
	if err := rt.Registerer().Register(w.emitted); err != nil {
		return nil, fmt.Errorf("workflow: metrics: %w", err)
	}
	w.routes()
	return w, nil
}

// Name implements hub.Component.
func (w *Workflow) Name() string { return "workflow" }

// Start implements hub.Component: it starts the consumers.
func (w *Workflow) Start(ctx context.Context) error {
	specs := []struct {
		name, filter string
		h            events.Handler
	}{
		{ReceivedConsumer, events.TypeInstanceStored, w.handleReceived},
		{StableConsumer, events.TypeStudyStable, w.handleStable},
		{OrdersConsumer, "ih.order.>", w.handleOrder},
		{ProcedureConsumer, "ih.procedure.>", w.handleProcedure},
		{PatientsConsumer, "ih.patient.>", w.handlePatient},
		{ReportsConsumer, events.TypeReportReceived, w.handleReport},
		{ReconciledConsumer, events.TypeStudyReconciled, w.handleReconciled},
		{BillingConsumer, "ih.billing.>", w.handleBilling},
	}
	for _, s := range specs {
		c, err := w.rt.StartConsumer(ctx, events.ConsumerSpec{
			Name:           s.name,
			Description:    "workflow: " + s.filter,
			FilterSubjects: []string{s.filter},
			MaxDeliver:     w.opts.MaxDeliver,
			BackOff:        w.opts.BackOff,
		}, s.h, nil)
		if err != nil {
			_ = w.Shutdown(context.WithoutCancel(ctx))
			return fmt.Errorf("workflow: %w", err)
		}
		w.mu.Lock()
		w.cons = append(w.cons, c)
		w.mu.Unlock()
	}
	if w.opts.RISAddr != "" || w.opts.PMSAddr != "" {
		// The queues must exist before the first Enqueue.
		if _, err := w.rt.Bus.EnsureStream(ctx, hl7out.StreamSpec()); err != nil {
			_ = w.Shutdown(context.WithoutCancel(ctx))
			return fmt.Errorf("workflow: %w", err)
		}
	}
	return nil
}

// Shutdown implements hub.Component: the events in hand are finished.
func (w *Workflow) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	cons := w.cons
	w.cons = nil
	w.mu.Unlock()
	var errs []error
	for _, c := range cons {
		errs = append(errs, hub.StopConsumer(ctx, c))
	}
	return errors.Join(errs...)
}

// billOnReconcile reports whether a study of these modalities is charged
// when it is reconciled rather than on MPPS COMPLETED.
func (w *Workflow) billOnReconcile(modalities []string) bool {
	if w.opts.BillingTrigger == "reconciled" {
		return true
	}
	for _, m := range modalities {
		if slices.ContainsFunc(w.opts.NoMPPSModalities, func(n string) bool { return strings.EqualFold(strings.TrimSpace(n), m) }) {
			return true
		}
	}
	return false
}

// billOnMPPS reports whether an MPPS of this modality is charged when it
// completes.
func (w *Workflow) billOnMPPS(modality string) bool {
	return w.opts.BillingTrigger == "mpps" && !w.billOnReconcile([]string{modality})
}
