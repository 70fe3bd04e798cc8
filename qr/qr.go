// Package qr is the DICOM Query/Retrieve SCP of imaginghub (PS3.4 Annex
// C): C-FIND, C-MOVE and C-GET for the Patient Root and Study Root
// information models, answered from the catalog and the blob store.
//
// It owns no listener: New registers its handlers on the Registry of the
// DICOM listener (ingest's), which must happen before that listener
// starts. C-MOVE destinations come from a table of remote AEs
// (Options.Remotes, from dicom.remotes: see config.ParseRemotes).
package qr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/imaginghub/imaginghub/config"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/hub"
)

// Query/Retrieve SOP classes (PS3.4 §C.6, PS3.6 Annex A).
const (
	PatientRootFind = "1.2.840.10008.5.1.4.1.2.1.1"
	PatientRootMove = "1.2.840.10008.5.1.4.1.2.1.2"
	PatientRootGet  = "1.2.840.10008.5.1.4.1.2.1.3"
	StudyRootFind   = "1.2.840.10008.5.1.4.1.2.2.1"
	StudyRootMove   = "1.2.840.10008.5.1.4.1.2.2.2"
	StudyRootGet    = "1.2.840.10008.5.1.4.1.2.2.3"
)

// Options configure the Q/R SCP. The zero value works: no C-MOVE
// destinations, the hub's AE title, no cap on C-FIND matches.
type Options struct {
	// AETitle is ours: the Retrieve AE Title (0008,0054) in C-FIND
	// responses and the Calling AE Title of C-MOVE sub-associations.
	// Empty means the hub's dicom.ae.
	AETitle string
	// Remotes maps the AE titles C-MOVE may send to onto their
	// host:port. A Move Destination not in it gets 0xA801.
	Remotes map[string]string
	// MaxMatches caps the matches of one C-FIND; the final status is
	// then still Success, as a query that asks for too much is answered
	// in part rather than not at all. Zero means no cap.
	MaxMatches int
	// DialTimeout bounds opening a C-MOVE destination association.
	// Zero means 10s.
	DialTimeout time.Duration
	// Logger; nil means the runtime's.
	Logger *slog.Logger
}

// QR is the Query/Retrieve SCP component.
type QR struct {
	rt   *hub.Runtime
	opts Options
	log  *slog.Logger
}

// New registers the C-FIND, C-MOVE and C-GET handlers on reg, and the
// SCU role for every Storage SOP class so that C-GET can send its
// C-STORE sub-operations back on the same association (PS3.4 §C.4.3.3,
// PS3.7 D.3.3.4). Call it before the listener that serves reg starts.
func New(rt *hub.Runtime, reg *dicomnet.Registry, opts Options) (*QR, error) {
	if rt == nil || reg == nil {
		return nil, errors.New("qr: New needs a runtime and a registry")
	}
	if opts.AETitle == "" {
		opts.AETitle = rt.Config.DICOM.AE
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = rt.Log
	}
	if opts.Remotes == nil {
		remotes, err := config.ParseRemotes(rt.Config.DICOM.Remotes)
		if err != nil {
			return nil, &config.Error{Key: "dicom.remotes", Env: "IMAGINGHUB_DICOM_REMOTES", Err: err}
		}
		opts.Remotes = remotes
	}
	q := &QR{rt: rt, opts: opts, log: opts.Logger.With("component", "qr")}
	// Identifiers are small; the uncompressed syntaxes are all a Q/R
	// SCU proposes (PS3.4 §C.5).
	ts := []string{dicomnet.ExplicitVRLittleEndian, dicomnet.ImplicitVRLittleEndian}
	reg.Handle(PatientRootFind, ts, dicomnet.HandlerFunc(q.serveFind))
	reg.Handle(StudyRootFind, ts, dicomnet.HandlerFunc(q.serveFind))
	reg.Handle(PatientRootMove, ts, dicomnet.HandlerFunc(q.serveMove))
	reg.Handle(StudyRootMove, ts, dicomnet.HandlerFunc(q.serveMove))
	reg.Handle(PatientRootGet, ts, dicomnet.HandlerFunc(q.serveGet))
	reg.Handle(StudyRootGet, ts, dicomnet.HandlerFunc(q.serveGet))
	var storage []string
	for _, t := range dicomfile.TransferSyntaxes() {
		if dicomfile.IsSupportedForStorage(t.UID) {
			storage = append(storage, t.UID)
		}
	}
	for uid := range dicomfile.StorageSOPClasses() {
		reg.AllowSCU(uid, storage)
	}
	return q, nil
}

// Name implements hub.Component.
func (q *QR) Name() string { return "qr" }

// Start implements hub.Component. The handlers run on the DICOM
// listener's associations, so there is nothing to start.
func (q *QR) Start(context.Context) error { return nil }

// Shutdown implements hub.Component. Operations in progress end with the
// listener's associations.
func (q *QR) Shutdown(context.Context) error { return nil }

// request is a parsed C-FIND, C-MOVE or C-GET identifier.
type request struct {
	patientRoot bool
	level       catalog.Level
	elems       []element
	charset     string
	query       catalog.Query
	// unsupported: a matching key with a value that the SCP does not
	// match on (answered 0xFF01, PS3.4 §C.4.1.1.4).
	unsupported bool
}

// failure is a final status with its Error Comment.
type failure struct {
	status  uint16
	comment string
}

func (f *failure) Error() string { return fmt.Sprintf("status 0x%04X: %s", f.status, f.comment) }

// readIdentifier reads and parses the request's data set.
func readIdentifier(r *dicomnet.Request) ([]element, *failure) {
	if r.Data == nil {
		return nil, &failure{dicomnet.StatusDataSetDoesNotMatchSOPClass, "request without an identifier"}
	}
	b, err := io.ReadAll(io.LimitReader(r.Data, MaxIdentifierLength+1))
	if err != nil {
		return nil, &failure{dicomnet.StatusCannotUnderstand, "identifier not received"}
	}
	if len(b) > MaxIdentifierLength {
		return nil, &failure{dicomnet.StatusCannotUnderstand, "identifier too large"}
	}
	elems, err := parseIdentifier(b, r.PresentationContext.TransferSyntax)
	if err != nil {
		return nil, &failure{dicomnet.StatusCannotUnderstand, comment(err)}
	}
	return elems, nil
}

// comment shortens an error to an Error Comment (LO, 64 characters,
// PS3.7 §C.4.2).
func comment(err error) string {
	s := err.Error()
	for _, p := range []string{"qr: ", "catalog: "} {
		s = strings.TrimPrefix(s, p)
	}
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// parseRequest reads the identifier into a catalog query. retrieve says
// whether it is a C-MOVE or C-GET, whose identifier must carry the unique
// key of the level itself (PS3.4 §C.4.2.2.1, §C.4.3.2.1).
func parseRequest(elems []element, patientRoot, retrieve bool) (*request, *failure) {
	rq := &request{patientRoot: patientRoot, elems: elems}
	values := map[tag]string{}
	for _, e := range elems {
		values[e.tag] = e.str()
		if e.tag == tagSpecificCharacterSet {
			rq.charset = e.str()
		}
	}
	lv, ok := values[tagQueryRetrieveLevel]
	if !ok {
		return nil, &failure{dicomnet.StatusDataSetDoesNotMatchSOPClass, "QueryRetrieveLevel (0008,0052) missing"}
	}
	level, ok := parseLevel(lv)
	if !ok {
		return nil, &failure{dicomnet.StatusDataSetDoesNotMatchSOPClass, fmt.Sprintf("QueryRetrieveLevel %q unknown", lv)}
	}
	top := catalog.PatientLevel
	if !patientRoot {
		top = catalog.StudyLevel
		if level == catalog.PatientLevel {
			return nil, &failure{dicomnet.StatusDataSetDoesNotMatchSOPClass, "Study Root has no PATIENT level"}
		}
	}
	rq.level = level
	// PS3.4 §C.4.1.2.1 (hierarchical search): below the top level the
	// unique keys of every level above carry a single value.
	for l := top; l < level; l++ {
		t := uniqueKeys[l]
		v, ok := values[t]
		if !ok || v == "" || strings.ContainsAny(v, `*?\`) {
			return nil, &failure{dicomnet.StatusDataSetDoesNotMatchSOPClass,
				fmt.Sprintf("%s level query needs a single %s", level, dictionary[t].keyword)}
		}
	}
	if retrieve {
		t := uniqueKeys[level]
		if v := values[t]; v == "" || strings.ContainsAny(v, "*?") {
			return nil, &failure{dicomnet.StatusDataSetDoesNotMatchSOPClass,
				fmt.Sprintf("%s level retrieve needs %s", level, dictionary[t].keyword)}
		}
	}
	rq.query = catalog.Query{Level: level, Filters: map[string]string{}}
	for _, e := range elems {
		a, known := dictionary[e.tag]
		v := values[e.tag]
		if !known {
			if v != "" && e.tag>>16 != 0x0000 && e.tag&0x00010000 == 0 {
				rq.unsupported = true // a public key we do not match on
			}
			continue
		}
		if a.level == 0 || v == "" {
			continue
		}
		kl, matchable := catalog.QueryKeyLevel(a.keyword)
		if !matchable || kl > level {
			rq.unsupported = true
			continue
		}
		if retrieve && e.tag != uniqueKeys[kl] {
			continue // C-MOVE and C-GET select by unique keys only
		}
		rq.query.Filters[a.keyword] = decodeText(v, rq.charset)
	}
	return rq, nil
}

// statusFor maps a catalog error to a failure status.
func statusFor(err error, outOfResources uint16) *failure {
	switch {
	case errors.Is(err, catalog.ErrInvalid):
		return &failure{dicomnet.StatusCannotUnderstand, comment(err)}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &failure{dicomnet.StatusCancel, "canceled"}
	}
	return &failure{outOfResources, comment(err)}
}

// canceled reports whether ctx ended because the peer sent C-CANCEL
// (PS3.7 §9.3.2.3), as opposed to the association ending.
func canceled(ctx context.Context) bool {
	return ctx.Err() != nil && errors.Is(context.Cause(ctx), dicomnet.ErrCanceled)
}
