// Package ingest receives instances — over DICOM C-STORE here, over
// STOW-RS through the same Storer — and files them: the data set streams
// into the blob store behind a Part 10 File Meta Information group, only
// its header is parsed, and the catalog rows commit together with the
// ih.dicom.instance.stored event. Studies that stop receiving instances
// are announced with ih.dicom.study.stable.
package ingest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imaginghub/imaginghub/blob"
	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/coord"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/journal"
	"github.com/imaginghub/imaginghub/outbox"
)

// Source is the CloudEvents source of ingest's events.
const Source = "imaginghub/ingest"

// StableTimers is the coordination timer set of study stability.
const StableTimers = "study-stable"

// Sentinel errors of Store; each maps to a C-STORE status (see Status).
var (
	// ErrUnreadable: the data set could not be parsed (0xC000).
	ErrUnreadable = errors.New("ingest: data set cannot be understood")
	// ErrMismatch: the data set does not match the request or lacks a
	// required UID (0xA900).
	ErrMismatch = errors.New("ingest: data set does not match the request")
	// ErrOutOfResources: storage or the catalog is unavailable (0xA700).
	ErrOutOfResources = errors.New("ingest: out of resources")
	// ErrDuplicateRejected: the duplicate policy is reject (0x0111).
	ErrDuplicateRejected = errors.New("ingest: duplicate SOP Instance UID refused")
)

// Request is one instance to store.
type Request struct {
	SOPClassUID       string // from the C-STORE command (Affected SOP Class UID)
	SOPInstanceUID    string // from the C-STORE command (Affected SOP Instance UID)
	TransferSyntaxUID string // of Data
	CallingAE         string // the sender; "" for STOW-RS without one
	// Data is the data set without File Meta Information, encoded in
	// TransferSyntaxUID. It is read to the end.
	Data io.Reader
}

// Result is what Store did.
type Result struct {
	Header    *dicomfile.Header
	BlobKey   string
	Size      int64
	Duplicate bool
}

// InstanceStored is the data of ih.dicom.instance.stored. It carries the
// keys consumers route and match on, not the patient's demographics.
type InstanceStored struct {
	StudyInstanceUID  string `json:"studyInstanceUID"`
	SeriesInstanceUID string `json:"seriesInstanceUID"`
	SOPInstanceUID    string `json:"sopInstanceUID"`
	SOPClassUID       string `json:"sopClassUID"`
	TransferSyntaxUID string `json:"transferSyntaxUID"`
	Modality          string `json:"modality,omitempty"`
	BodyPartExamined  string `json:"bodyPartExamined,omitempty"`
	StudyDescription  string `json:"studyDescription,omitempty"`
	InstitutionName   string `json:"institutionName,omitempty"`
	AccessionNumber   string `json:"accessionNumber,omitempty"`
	CallingAE         string `json:"callingAE,omitempty"`
	BlobKey           string `json:"blobKey"`
	Size              int64  `json:"size"`
	Replaced          bool   `json:"replaced,omitempty"`
}

// Storer files instances. It is safe for concurrent use.
type Storer struct {
	Blobs       blob.Store
	Catalog     *catalog.Catalog
	Coord       *coord.Coordinator
	Policy      catalog.DuplicatePolicy
	StableAfter time.Duration
	// Committed is called after each commit that wrote events (to wake
	// the outbox relay); may be nil.
	Committed func()
	Log       *slog.Logger

	// Journal, set by UseJournal, receives every instance small enough
	// for it (see commitJournaled); nil: each instance is fsynced on its
	// own.
	Journal   *journal.Journal
	journalID string // host:path, its row in intake_checkpoints
	deferred  deferredBlobs
	kick      chan struct{} // asks the checkpoint loop for a checkpoint now

	metrics *metrics
}

type metrics struct {
	stored     *prometheus.CounterVec
	bytes      prometheus.Counter
	duplicates prometheus.Counter
	duration   prometheus.Histogram

	// Intake journal.
	checkpoints       *prometheus.CounterVec
	checkpointSeconds prometheus.Histogram
}

// RegisterMetrics registers the storer's metrics on reg.
func (s *Storer) RegisterMetrics(reg prometheus.Registerer) {
	m := &metrics{
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imaginghub_ingest_instances_total", Help: "Instances received, by outcome.",
		}, []string{"outcome"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imaginghub_ingest_bytes_total", Help: "Bytes of instances stored.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imaginghub_ingest_duplicates_total", Help: "Instances received again under a stored SOP Instance UID.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "imaginghub_ingest_store_seconds", Help: "Time to receive, write, index and commit one instance.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		checkpoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imaginghub_ingest_journal_checkpoints_total", Help: "Intake journal checkpoints, by outcome (ok, failed).",
		}, []string{"outcome"}),
		checkpointSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "imaginghub_ingest_journal_checkpoint_seconds", Help: "Time to make the journaled instances durable (blob filesystem sync, catalog commit).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
	}
	if reg != nil {
		// Several Storers in one process (C-STORE, STOW-RS) share the
		// metrics registered first.
		m.stored = register(reg, m.stored)
		m.bytes = register(reg, m.bytes)
		m.duplicates = register(reg, m.duplicates)
		m.duration = register(reg, m.duration)
		m.checkpoints = register(reg, m.checkpoints)
		m.checkpointSeconds = register(reg, m.checkpointSeconds)
	}
	s.metrics = m
}

// register registers c on reg, or returns the equal collector registered
// before.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

func (s *Storer) count(outcome string) {
	if s.metrics != nil {
		s.metrics.stored.WithLabelValues(outcome).Inc()
	}
}

// Store receives one instance. It returns only once the file and its
// catalog rows are durable (or nothing was kept); errors wrap the
// sentinels above.
func (s *Storer) Store(ctx context.Context, req Request) (res Result, err error) {
	began := time.Now()
	defer func() {
		if err != nil {
			io.Copy(io.Discard, req.Data)
		}
		if s.metrics == nil {
			return
		}
		switch {
		case err == nil && res.Duplicate:
			s.count("duplicate")
			s.metrics.duplicates.Inc()
		case err == nil:
			s.count("stored")
			s.metrics.bytes.Add(float64(res.Size))
			s.metrics.duration.Observe(time.Since(began).Seconds())
		default:
			s.count(outcome(err))
		}
	}()

	if _, ok := dicomfile.LookupTransferSyntax(req.TransferSyntaxUID); !ok {
		return res, fmt.Errorf("%w: transfer syntax %s", ErrUnreadable, req.TransferSyntaxUID)
	}
	k := &sink{s: s, ctx: ctx}
	if s.Journal != nil {
		k.buf = journal.GetBuffer(s.journalLimit())
	} else if k.w, err = s.Blobs.Create(ctx); err != nil {
		return res, fmt.Errorf("%w: blob store: %v", ErrOutOfResources, err)
	}
	committed := false
	defer func() {
		if !committed {
			k.abort()
		}
	}()
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(k)
	defer func() { bw.Reset(nil); writers.Put(bw) }()
	if _, err := dicomfile.WriteFileMeta(bw, dicomfile.FileMeta{
		MediaStorageSOPClassUID:      req.SOPClassUID,
		MediaStorageSOPInstanceUID:   req.SOPInstanceUID,
		TransferSyntaxUID:            req.TransferSyntaxUID,
		ImplementationClassUID:       dicomnet.ImplementationClassUID,
		ImplementationVersionName:    dicomnet.ImplementationVersionName,
		SourceApplicationEntityTitle: req.CallingAE,
	}); err != nil {
		return res, fmt.Errorf("%w: write file meta: %v", ErrOutOfResources, err)
	}

	// The header is parsed from the same bytes as they go to the file:
	// what the parser reads (including its read-ahead) is written through
	// the tee, and the rest of the data set is copied straight after it.
	br := readers.Get().(*bufio.Reader)
	br.Reset(io.TeeReader(req.Data, bw))
	hdr, perr := dicomfile.ParseHeader(br, req.TransferSyntaxUID)
	br.Reset(nil)
	readers.Put(br)
	if perr != nil {
		return res, fmt.Errorf("%w: %v", ErrUnreadable, perr)
	}
	if err := k.readFrom(bw, req.Data); err != nil {
		if k.err != nil {
			return res, fmt.Errorf("%w: write: %v", ErrOutOfResources, err)
		}
		return res, fmt.Errorf("receive data set: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return res, fmt.Errorf("%w: write: %v", ErrOutOfResources, err)
	}
	if err := checkHeader(req, hdr); err != nil {
		return res, err
	}

	key := BlobKey(hdr.StudyInstanceUID, hdr.SeriesInstanceUID, hdr.SOPInstanceUID, time.Now())
	committed = true // from here the commit cleans up after itself
	if k.buf != nil {
		return s.commitJournaled(ctx, req, hdr, key, k.buf)
	}
	w := k.w
	size := w.Written()
	// The file's fsync and rename run while the event is built and the
	// catalog writes its rows; the rows commit only once the file is
	// durable.
	blobDone := make(chan error, 1)
	go func() { blobDone <- w.Commit(ctx, key) }()
	return s.index(ctx, req, hdr, key, size, false, func() error { return <-blobDone })
}

// commitJournaled files an instance received whole into buf: its record
// goes to the intake journal (a direct write, and a device flush shared
// with the records written meanwhile) while its file is written through
// the page cache and put in place and its rows are written, to commit
// without waiting for the disk once all are done; the journal's next
// checkpoint makes file and rows durable.
func (s *Storer) commitJournaled(ctx context.Context, req Request, hdr *dicomfile.Header, key string, buf *journal.Buffer) (Result, error) {
	size := int64(buf.Len())
	putDone := make(chan error, 1)
	go func() { putDone <- s.deferred.PutDeferred(ctx, key, buf.Bytes()) }()
	var seq uint64
	var aerr error
	appended := make(chan struct{})
	ready := func() error {
		perr := <-putDone
		<-appended
		if aerr != nil {
			if perr == nil {
				s.Blobs.Delete(context.WithoutCancel(ctx), key)
			}
			return aerr
		}
		return perr
	}
	type filed struct {
		res      Result
		err      error
		panicked any
	}
	indexed := make(chan filed, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				indexed <- filed{panicked: p}
			}
		}()
		res, err := s.index(ctx, req, hdr, key, size, true, ready)
		indexed <- filed{res: res, err: err}
	}()
	// The journal write is what the answer waits for: it starts here, not
	// in a goroutine that may wait its turn for a processor while the
	// others run.
	seq, aerr = s.Journal.Append(key, buf)
	close(appended)
	o := <-indexed
	// index has waited for both; the rows are committed or never will be.
	if aerr == nil {
		s.Journal.Release(seq)
	}
	buf.Put()
	if o.panicked != nil {
		// Where it would have gone had index run here: to the DICOM
		// server, which aborts the association and goes on serving.
		panic(o.panicked)
	}
	return o.res, o.err
}

// index commits the catalog rows of the instance whose file is (being)
// stored under key, with its ih.dicom.instance.stored event, once
// blobReady (if not nil) reports the file in place; journaled rows commit
// lazily (see commitJournaled). Whatever happens, blobReady has returned
// when index does, and a file that ends up unused is deleted.
func (s *Storer) index(ctx context.Context, req Request, hdr *dicomfile.Header, key string, size int64, journaled bool, blobReady func() error) (res Result, err error) {
	res = Result{Header: hdr, BlobKey: key, Size: size}
	var blobOnce sync.Once
	var blobErr error
	ready := func() error {
		blobOnce.Do(func() {
			if blobReady != nil {
				blobErr = blobReady()
			}
		})
		return blobErr
	}
	discard := func() {
		if ready() == nil {
			s.Blobs.Delete(context.WithoutCancel(ctx), key)
		}
	}

	// Arm the stability timer before the rows commit: a crash in between
	// costs at most a stable event for a study that did not change, never a
	// study that is never announced.
	if err := s.Coord.ArmTimer(ctx, StableTimers, hdr.StudyInstanceUID, time.Now().Add(s.StableAfter)); err != nil {
		discard()
		return res, fmt.Errorf("%w: coordination: %v", ErrOutOfResources, err)
	}

	ev, err := events.New(Source, events.TypeInstanceStored, hdr.StudyInstanceUID, InstanceStored{
		StudyInstanceUID:  hdr.StudyInstanceUID,
		SeriesInstanceUID: hdr.SeriesInstanceUID,
		SOPInstanceUID:    hdr.SOPInstanceUID,
		SOPClassUID:       hdr.SOPClassUID,
		TransferSyntaxUID: req.TransferSyntaxUID,
		Modality:          hdr.Modality,
		BodyPartExamined:  hdr.BodyPartExamined,
		StudyDescription:  hdr.StudyDescription,
		InstitutionName:   hdr.InstitutionName,
		AccessionNumber:   hdr.AccessionNumber,
		CallingAE:         req.CallingAE,
		BlobKey:           key,
		Size:              size,
		Replaced:          s.Policy == catalog.Replace,
	}, hdr.SOPInstanceUID, key)
	if err != nil {
		discard()
		return res, err
	}
	msg, err := outbox.Message(ev)
	if err != nil {
		discard()
		return res, err
	}
	// The rows are written while the file syncs and commit once it is
	// durable. On SQLite the writers that queue meanwhile join the same
	// commit (the catalog's group commit), so one association's fsync
	// does not hold the others back.
	store := s.Catalog.StoreInstanceWhen
	if journaled {
		store = s.Catalog.StoreInstanceJournaled
	}
	sr, err := store(ctx, record(req, hdr, key, size), s.Policy, ready, msg)
	if berr := ready(); berr != nil {
		return res, fmt.Errorf("%w: blob commit: %v", ErrOutOfResources, berr)
	}
	if sr.UnusedBlobKey != "" {
		if derr := s.Blobs.Delete(context.WithoutCancel(ctx), sr.UnusedBlobKey); derr != nil {
			s.Log.Warn("could not delete unused file", "key", sr.UnusedBlobKey, "err", derr)
		}
	}
	switch {
	case errors.Is(err, catalog.ErrDuplicate):
		res.Duplicate = true
		return res, fmt.Errorf("%w: %s", ErrDuplicateRejected, hdr.SOPInstanceUID)
	case errors.Is(err, catalog.ErrConflict):
		discard()
		return res, fmt.Errorf("%w: %v", ErrMismatch, err)
	case err != nil:
		discard()
		if errors.Is(err, catalog.ErrInvalid) {
			return res, fmt.Errorf("%w: %v", ErrMismatch, err)
		}
		return res, fmt.Errorf("%w: catalog: %v", ErrOutOfResources, err)
	}
	res.Duplicate = sr.Duplicate
	if sr.Duplicate && s.Policy == catalog.KeepFirst {
		res.BlobKey = sr.ExistingBlobKey
	} else if s.Committed != nil {
		s.Committed()
	}
	return res, nil
}

// checkHeader applies the checks PS3.4 §B.2.3 leaves to the SCP: the data
// set must be the instance the command names and carry the UIDs the
// archive files it under.
func checkHeader(req Request, h *dicomfile.Header) error {
	switch {
	case h.SOPInstanceUID != req.SOPInstanceUID:
		return fmt.Errorf("%w: SOP Instance UID (0008,0018) of the data set is %q, the request's Affected SOP Instance UID is %q",
			ErrMismatch, h.SOPInstanceUID, req.SOPInstanceUID)
	case h.SOPClassUID != req.SOPClassUID:
		return fmt.Errorf("%w: SOP Class UID (0008,0016) of the data set is %q, the request's Affected SOP Class UID is %q",
			ErrMismatch, h.SOPClassUID, req.SOPClassUID)
	case !dicomfile.ValidUID(h.StudyInstanceUID):
		return fmt.Errorf("%w: Study Instance UID (0020,000D) missing or invalid", ErrMismatch)
	case !dicomfile.ValidUID(h.SeriesInstanceUID):
		return fmt.Errorf("%w: Series Instance UID (0020,000E) missing or invalid", ErrMismatch)
	case !dicomfile.ValidUID(h.SOPInstanceUID):
		return fmt.Errorf("%w: SOP Instance UID (0008,0018) invalid", ErrMismatch)
	}
	return nil
}

func record(req Request, h *dicomfile.Header, key string, size int64) catalog.InstanceRecord {
	return catalog.InstanceRecord{
		Patient: catalog.Patient{
			PatientID:         h.PatientID,
			IssuerOfPatientID: h.IssuerOfPatientID,
			PatientName:       h.PatientName,
			PatientBirthDate:  h.PatientBirthDate,
			PatientSex:        h.PatientSex,
		},
		Study: catalog.Study{
			StudyInstanceUID:        h.StudyInstanceUID,
			StudyDate:               h.StudyDate,
			StudyTime:               h.StudyTime,
			AccessionNumber:         h.AccessionNumber,
			IssuerOfAccessionNumber: h.IssuerOfAccessionNumber,
			ReferringPhysicianName:  h.ReferringPhysicianName,
			StudyDescription:        h.StudyDescription,
			StudyID:                 h.StudyID,
		},
		Series: catalog.Series{
			SeriesInstanceUID: h.SeriesInstanceUID,
			Modality:          h.Modality,
			SeriesNumber:      atoi(h.SeriesNumber),
			SeriesDescription: h.SeriesDescription,
			BodyPartExamined:  h.BodyPartExamined,
			Laterality:        h.Laterality,
			SeriesDate:        h.SeriesDate,
			SeriesTime:        h.SeriesTime,
			StationName:       h.StationName,
			InstitutionName:   h.InstitutionName,
		},
		Instance: catalog.Instance{
			SOPInstanceUID:    h.SOPInstanceUID,
			SOPClassUID:       h.SOPClassUID,
			InstanceNumber:    atoi(h.InstanceNumber),
			TransferSyntaxUID: req.TransferSyntaxUID,
			NumberOfFrames:    h.NumberOfFrames,
			Rows:              int(h.Rows),
			Columns:           int(h.Columns),
			BlobKey:           key,
			SizeBytes:         size,
			CallingAE:         req.CallingAE,
		},
	}
}

// atoi reads an IS value; a malformed one indexes as 0.
func atoi(s string) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0
	}
	return n
}

// sink receives a file as it arrives: while it fits there, into the
// intake journal's buffer (buf), from which both its journal record and
// its file are written once it is whole; without a journal, or once it
// outgrows the journal, into the blob writer w (direct I/O where
// configured), to be fsynced on its own. It remembers a write error of
// ours, to tell a failure of our disk from a failure of the peer's stream
// while the data set is copied.
type sink struct {
	s   *Storer
	ctx context.Context
	buf *journal.Buffer
	w   blob.Writer
	err error
}

func (k *sink) Write(p []byte) (int, error) {
	if k.buf != nil {
		if k.buf.Room(len(p)) {
			return k.buf.Write(p)
		}
		if err := k.outgrow(); err != nil {
			k.err = err
			return 0, err
		}
	}
	n, err := k.w.Write(p)
	if err != nil && k.err == nil {
		k.err = err
	}
	return n, err
}

// readFrom copies the rest of the data set from r, after what bw holds.
// Into the journal's buffer it reads directly; into a blob writer through
// bw, whose ReadFrom reads straight into its own buffer.
func (k *sink) readFrom(bw *bufio.Writer, r io.Reader) error {
	if k.buf != nil {
		if err := bw.Flush(); err != nil {
			return err
		}
		_, err := k.buf.ReadFrom(r)
		if !errors.Is(err, journal.ErrTooLarge) {
			return err
		}
		if err := k.outgrow(); err != nil {
			k.err = err
			return err
		}
	}
	_, err := bw.ReadFrom(r)
	return err
}

// outgrow moves the file to a blob writer of the store's own kind.
func (k *sink) outgrow() error {
	w, err := k.s.Blobs.Create(k.ctx)
	if err == nil {
		if _, err = w.Write(k.buf.Bytes()); err != nil {
			w.Abort()
		}
	}
	if err != nil {
		return err
	}
	k.buf.Put()
	k.buf, k.w = nil, w
	return nil
}

// abort drops what the sink holds.
func (k *sink) abort() {
	if k.w != nil {
		k.w.Abort()
	}
	if k.buf != nil {
		k.buf.Put()
		k.buf = nil
	}
}

// The buffers of a transfer are reused: at hundreds of instances a second,
// allocating them for each one keeps the garbage collector busy.
var (
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 256<<10) }}
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}
)

func outcome(err error) string {
	switch {
	case errors.Is(err, ErrUnreadable):
		return "unreadable"
	case errors.Is(err, ErrMismatch):
		return "mismatch"
	case errors.Is(err, ErrOutOfResources):
		return "out_of_resources"
	case errors.Is(err, ErrDuplicateRejected):
		return "duplicate_rejected"
	}
	return "failed"
}
