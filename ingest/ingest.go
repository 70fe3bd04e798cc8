package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/coord"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/journal"
	"github.com/imaginghub/imaginghub/outbox"
)

// Ingest is the component: the DICOM listener with the C-STORE SCP for
// every Storage SOP Class (PS3.4 Annex B) and Verification, and the
// study-stability poller.
type Ingest struct {
	rt       *hub.Runtime
	cfg      config.DICOM
	Storer   *Storer
	Registry *dicomnet.Registry
	log      *slog.Logger

	srv      *dicomnet.Server
	ln       net.Listener
	serving  atomic.Bool
	stable   hub.Component
	serveErr chan error
}

// New builds the ingest component on rt: the DICOM listener, serving the
// handlers of rt.DICOM, where ingest registers every Storage SOP class and
// other components (Q/R, worklist) register theirs.
func New(rt *hub.Runtime) (*Ingest, error) {
	storer, err := NewStorer(rt)
	if err != nil {
		return nil, err
	}
	in := &Ingest{
		rt:       rt,
		cfg:      rt.Config.DICOM,
		log:      rt.Log.With("component", "ingest"),
		Storer:   storer,
		Registry: rt.DICOM,
	}
	var syntaxes []string
	for _, ts := range dicomfile.TransferSyntaxes() {
		if dicomfile.IsSupportedForStorage(ts.UID) {
			syntaxes = append(syntaxes, ts.UID)
		}
	}
	for uid := range dicomfile.StorageSOPClasses() {
		in.Registry.Handle(uid, syntaxes, dicomnet.HandlerFunc(in.serveCStore))
	}
	in.stable = hub.NewLoop("study-stable", in.pollStable)
	rt.Server.AddCheck("dicom listener", func(context.Context) error {
		if !in.serving.Load() {
			return errors.New("not listening")
		}
		return nil
	})
	return in, nil
}

// NewStorer returns the Storer of rt's configuration, for C-STORE and for
// every other way instances arrive (STOW-RS), so that all take one path.
func NewStorer(rt *hub.Runtime) (*Storer, error) {
	v, err := rt.Shared("ingest.storer", func() (any, error) { return newStorer(rt) })
	if err != nil {
		return nil, err
	}
	return v.(*Storer), nil
}

func newStorer(rt *hub.Runtime) (*Storer, error) {
	policy, err := DuplicatePolicy(rt.Config.DICOM.DuplicatePolicy)
	if err != nil {
		return nil, err
	}
	s := &Storer{
		Blobs:       rt.Blobs,
		Catalog:     rt.Catalog,
		Coord:       rt.Coord,
		Policy:      policy,
		StableAfter: rt.Config.Study.StableAfter,
		Committed:   rt.Relay.Kick,
		Log:         rt.Log.With("component", "ingest"),
	}
	s.RegisterMetrics(rt.Registerer())
	if n := rt.Config.Data.IntakeJournalBytes; n > 0 {
		err = s.openJournal(rt, n)
	} else {
		err = s.retireJournal(rt)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

func journalPath(rt *hub.Runtime) string { return filepath.Join(rt.Config.Data.Dir, "intake.journal") }

// retireJournal, with the journal turned off, replays and removes one a
// previous run left: its records may be instances acknowledged before a
// power loss.
func (s *Storer) retireJournal(rt *hub.Runtime) error {
	path := journalPath(rt)
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	j, err := journal.Open(path, journal.Options{Size: fi.Size(), Log: s.Log})
	if errors.Is(err, journal.ErrInUse) {
		return nil // the process that holds it replays it
	}
	if err != nil {
		return &config.Error{Key: "data.intake_journal_bytes", Env: "IMAGINGHUB_DATA_INTAKE_JOURNAL_BYTES", Err: err}
	}
	defer func() { s.Journal, s.deferred = nil, nil }()
	if err := s.UseJournal(j); err != nil {
		j.Close()
		return err
	}
	if err := s.Replay(context.Background()); err != nil {
		j.Close()
		return err
	}
	if err := j.Close(); err != nil {
		return err
	}
	s.Log.Info("intake journal turned off: what it held is filed, the file removed", "path", path)
	return os.Remove(path)
}

// openJournal opens the intake journal in the data directory, replays what
// the last run left in it, and checkpoints it until the runtime shuts
// down. A journal another process of the same data directory holds is
// left to it: this one fsyncs each instance instead.
func (s *Storer) openJournal(rt *hub.Runtime, size int64) error {
	path := journalPath(rt)
	cfgErr := func(err error) error {
		return &config.Error{Key: "data.intake_journal_bytes", Env: "IMAGINGHUB_DATA_INTAKE_JOURNAL_BYTES", Err: err}
	}
	j, err := journal.Open(path, journal.Options{Size: size, Log: s.Log})
	if errors.Is(err, journal.ErrInUse) {
		s.Log.Info("intake journal in use by another process; fsyncing each instance", "path", path)
		return nil
	}
	if err != nil {
		return cfgErr(err)
	}
	if err := s.UseJournal(j); err != nil {
		j.Close()
		return cfgErr(err)
	}
	if err := s.Replay(context.Background()); err != nil {
		j.Close()
		return err
	}
	register(rt.Registerer(), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "imaginghub_ingest_journal_used_bytes", Help: "Bytes of the intake journal held by records not yet checkpointed.",
	}, func() float64 { return float64(j.Used()) }))
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.RunCheckpoints(ctx)
	}()
	rt.Server.OnShutdown(func(ctx context.Context) error {
		// Every component has drained: the last checkpoint covers all.
		stop()
		<-done
		return errors.Join(s.Checkpoint(ctx), j.Close())
	})
	return nil
}

// DuplicatePolicy parses dicom.duplicate_policy.
func DuplicatePolicy(s string) (catalog.DuplicatePolicy, error) {
	switch s {
	case "keep-first", "":
		return catalog.KeepFirst, nil
	case "replace":
		return catalog.Replace, nil
	case "reject":
		return catalog.Reject, nil
	}
	return 0, &config.Error{Key: "dicom.duplicate_policy", Env: "IMAGINGHUB_DICOM_DUPLICATE_POLICY", Err: fmt.Errorf("unknown policy %q", s)}
}

// Name implements hub.Component.
func (in *Ingest) Name() string { return "ingest" }

// Addr is the bound DICOM address once started.
func (in *Ingest) Addr() string {
	if in.ln == nil {
		return ""
	}
	return in.ln.Addr().String()
}

// Start implements hub.Component.
func (in *Ingest) Start(ctx context.Context) error {
	ln, err := hub.Listen("dicom.addr", in.cfg.Addr)
	if err != nil {
		return err
	}
	in.ln = ln
	in.srv = dicomnet.NewServer(dicomnet.ServerOptions{
		AETitle:         in.cfg.AE,
		Registry:        in.Registry,
		Policy:          AEPolicy(in.cfg.AE, in.cfg.AllowedCallingAEs),
		MaxAssociations: in.cfg.MaxAssociations,
		ARTIMTimeout:    in.cfg.ARTIMTimeout,
		IdleTimeout:     in.cfg.IdleTimeout,
		MaxPDULength:    uint32(in.cfg.MaxPDULength),
		Logger:          in.log,
		Registerer:      in.rt.Registerer(),
	})
	in.serveErr = make(chan error, 1)
	in.serving.Store(true)
	go func() {
		err := in.srv.Serve(ln)
		in.serving.Store(false)
		if err != nil && !errors.Is(err, dicomnet.ErrServerClosed) {
			in.log.Error("DICOM listener stopped", "err", err)
		}
		in.serveErr <- err
	}()
	in.log.Info("DICOM listening", "addr", ln.Addr().String(), "ae", in.cfg.AE)
	if in.rt.Config.Redis.URL == "" {
		if err := in.rearmStable(ctx); err != nil {
			return err
		}
	}
	return in.stable.Start(ctx)
}

// rearmStable arms the stability timer of every study that received
// instances after its last study-stable event. The in-process coordinator
// keeps timers in memory, so a restart (or a crash) forgets them; Redis
// keeps them across restarts and needs none of this.
func (in *Ingest) rearmStable(ctx context.Context) error {
	studies, err := in.rt.Catalog.StudiesAwaitingStable(ctx)
	if err != nil {
		return fmt.Errorf("ingest: re-arm study-stable timers: %w", err)
	}
	for _, st := range studies {
		if err := in.rt.Coord.ArmTimer(ctx, StableTimers, st.StudyInstanceUID, st.LastReceived.Add(in.rt.Config.Study.StableAfter)); err != nil {
			return fmt.Errorf("ingest: re-arm study-stable timers: %w", err)
		}
	}
	if len(studies) > 0 {
		in.log.Info("re-armed study-stable timers", "studies", len(studies))
	}
	return nil
}

// Shutdown implements hub.Component: in-flight associations finish (or
// are aborted when ctx ends) before the stability poller stops.
func (in *Ingest) Shutdown(ctx context.Context) error {
	var errs []error
	if in.srv != nil {
		if err := in.srv.Shutdown(ctx); err != nil && !errors.Is(err, dicomnet.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, in.stable.Shutdown(ctx))
	return errors.Join(errs...)
}

// serveCStore is the C-STORE SCP (PS3.4 §B.2): Success only once the file
// and its rows are durable.
func (in *Ingest) serveCStore(ctx context.Context, w dicomnet.ResponseWriter, r *dicomnet.Request) {
	rsp := &dicomnet.Command{Status: dicomnet.StatusSuccess}
	if r.Data == nil {
		rsp.Status = dicomnet.StatusCannotUnderstand
		rsp.ErrorComment = "C-STORE request without a data set"
		w.Respond(rsp, nil)
		return
	}
	res, err := in.Storer.Store(ctx, Request{
		SOPClassUID:       r.Command.AffectedSOPClassUID,
		SOPInstanceUID:    r.Command.AffectedSOPInstanceUID,
		TransferSyntaxUID: r.PresentationContext.TransferSyntax,
		CallingAE:         r.Association.CallingAETitle(),
		Data:              r.Data,
	})
	if err != nil {
		rsp.Status, rsp.ErrorComment = Status(err)
		in.log.Warn("C-STORE failed", "status", fmt.Sprintf("0x%04X", rsp.Status), "calling_ae", r.Association.CallingAETitle(), "err", err)
		in.log.Debug("C-STORE failed instance", "sop_instance_uid", r.Command.AffectedSOPInstanceUID)
	} else if res.Duplicate {
		in.log.Info("duplicate instance kept as first received", "calling_ae", r.Association.CallingAETitle())
	}
	if err := w.Respond(rsp, nil); err != nil {
		in.log.Debug("C-STORE response not sent", "err", err)
	}
}

// Status maps a Store error to a C-STORE status and Error Comment
// (PS3.4 §B.2.3; Error Comment is at most 64 characters, PS3.7 §C.4.2).
func Status(err error) (uint16, string) {
	status := dicomnet.StatusProcessingFailure
	switch {
	case errors.Is(err, ErrOutOfResources):
		status = dicomnet.StatusOutOfResources
	case errors.Is(err, ErrMismatch):
		status = dicomnet.StatusDataSetDoesNotMatchSOPClass
	case errors.Is(err, ErrUnreadable):
		status = dicomnet.StatusCannotUnderstand
	case errors.Is(err, ErrDuplicateRejected):
		status = dicomnet.StatusDuplicateSOPInstance
	}
	comment := err.Error()
	comment = strings.TrimPrefix(comment, "ingest: ")
	if len(comment) > 64 {
		comment = comment[:64]
	}
	return status, comment
}

// AEPolicy accepts associations called to ae from the allowed calling AE
// titles ("AE" from anywhere, "AE@host" from that host only; none listed:
// any). Rejections follow PS3.8 §9.3.4: permanent, service user, reason 7
// for a wrong called AE and reason 3 for a calling AE not recognized.
func AEPolicy(ae string, allowed []string) dicomnet.Policy {
	called := dicomnet.CalledAETitlePolicy(ae)
	return func(ctx context.Context, rq *dicomnet.AssociateRequest) *dicomnet.AssociateRJ {
		if rj := called(ctx, rq); rj != nil {
			return rj
		}
		if len(allowed) == 0 {
			return nil
		}
		calling := strings.TrimSpace(rq.PDU.CallingAETitle)
		host := ""
		if tcp, ok := rq.RemoteAddr.(*net.TCPAddr); ok {
			host = tcp.IP.String()
		}
		for _, a := range allowed {
			name, h, withHost := strings.Cut(a, "@")
			if name != calling {
				continue
			}
			if !withHost || sameHost(h, host) {
				return nil
			}
		}
		return &dicomnet.AssociateRJ{
			Result: dicomnet.RejectPermanent,
			Source: dicomnet.RejectSourceServiceUser,
			Reason: dicomnet.RejectReasonCallingAETitleNotRecognized,
		}
	}
}

// sameHost compares a configured host (IP or name) with the peer's IP.
func sameHost(configured, peerIP string) bool {
	if configured == peerIP {
		return true
	}
	ips, err := net.LookupIP(configured)
	if err != nil {
		return false
	}
	for _, ip := range ips {
		if ip.String() == peerIP {
			return true
		}
	}
	return false
}

// StudyStable is the data of ih.dicom.study.stable.
type StudyStable struct {
	StudyInstanceUID        string    `json:"studyInstanceUID"`
	AccessionNumber         string    `json:"accessionNumber,omitempty"`
	IssuerOfAccessionNumber string    `json:"issuerOfAccessionNumber,omitempty"`
	PatientID               string    `json:"patientID,omitempty"`
	IssuerOfPatientID       string    `json:"issuerOfPatientID,omitempty"`
	StudyDate               string    `json:"studyDate,omitempty"`
	ModalitiesInStudy       []string  `json:"modalitiesInStudy"`
	NumberOfSeries          int       `json:"numberOfStudyRelatedSeries"`
	NumberOfInstances       int       `json:"numberOfStudyRelatedInstances"`
	LastReceived            time.Time `json:"lastReceived"`
}

// pollStable emits ih.dicom.study.stable for studies whose timer falls
// due. Across processes each timer is claimed by one poller; the event id
// is derived from the study and its instance count, so a poller that dies
// after committing and before completing the timer yields a repeat that
// JetStream drops.
func (in *Ingest) pollStable(ctx context.Context) error {
	return in.rt.Coord.PollTimers(ctx, StableTimers, coord.PollOptions{Logger: in.log, MaxWait: 250 * time.Millisecond},
		func(ctx context.Context, t coord.Timer) error { return EmitStable(ctx, in.rt, t.Key) })
}

// EmitStable commits the study-stable event of one study to the outbox.
func EmitStable(ctx context.Context, rt *hub.Runtime, studyUID string) error {
	st, err := rt.Catalog.GetStudy(ctx, studyUID)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil // armed by an instance whose rows never committed
	}
	if err != nil {
		return err
	}
	data := StudyStable{
		StudyInstanceUID:        st.Study.StudyInstanceUID,
		AccessionNumber:         st.Study.AccessionNumber,
		IssuerOfAccessionNumber: st.Study.IssuerOfAccessionNumber,
		PatientID:               st.Patient.PatientID,
		IssuerOfPatientID:       st.Patient.IssuerOfPatientID,
		StudyDate:               st.Study.StudyDate,
		ModalitiesInStudy:       st.Study.ModalitiesInStudy,
		NumberOfSeries:          st.Study.NumberOfStudyRelatedSeries,
		NumberOfInstances:       st.Study.NumberOfStudyRelatedInstances,
		LastReceived:            st.Study.LastReceived.UTC(),
	}
	ev, err := events.New(Source, events.TypeStudyStable, studyUID, data,
		studyUID, fmt.Sprint(data.NumberOfInstances), data.LastReceived.Format(time.RFC3339Nano))
	if err != nil {
		return err
	}
	msg, err := outbox.Message(ev)
	if err != nil {
		return err
	}
	if err := rt.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
		tx.AppendOutbox(msg)
		return tx.MarkStableAnnounced(ctx, studyUID, st.Study.LastReceived)
	}); err != nil {
		return err
	}
	rt.Relay.Kick()
	return nil
}
