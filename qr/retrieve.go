package qr

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/imaginghub/imaginghub/dicomfile/tsconv"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/workflow/coerce"
)

// maxContexts is how many presentation contexts one association can
// propose: IDs are the odd numbers 1–255 (PS3.8 §9.3.2.2).
const maxContexts = 128

// serveMove is the C-MOVE SCP (PS3.4 §C.4.2): it opens an association to
// the Move Destination and sends the matching instances over it as
// C-STORE sub-operations.
func (q *QR) serveMove(ctx context.Context, w dicomnet.ResponseWriter, r *dicomnet.Request) {
	patientRoot := r.Command.AffectedSOPClassUID == PatientRootMove
	dest := strings.TrimSpace(r.Command.MoveDestination)
	addr, known := q.opts.Remotes[dest]
	if !known {
		// Unknown destination is answered before the identifier is
		// even read (PS3.4 §C.4.2.1.4.1).
		q.fail(w, "C-MOVE", r, &failure{dicomnet.StatusMoveDestinationUnknown, fmt.Sprintf("move destination %q unknown", dest)})
		return
	}
	instances, f := q.retrieveMatches(ctx, r, patientRoot)
	if f != nil {
		q.fail(w, "C-MOVE", r, f)
		return
	}
	if len(instances) == 0 {
		w.Respond(&dicomnet.Command{Status: dicomnet.StatusSuccess, NumberOfCompletedSuboperations: dicomnet.U16(0),
			NumberOfFailedSuboperations: dicomnet.U16(0), NumberOfWarningSuboperations: dicomnet.U16(0)}, nil)
		return
	}
	// One context per SOP class and stored transfer syntax, so each
	// instance goes in the syntax it was stored in (compressed data is
	// never transcoded); an uncompressed Little Endian one also gets a
	// context in the other Little Endian syntax, for a peer that accepts
	// only that one.
	var proposed []dicomnet.ProposedContext
	seen := map[[2]string]bool{}
	propose := func(class, ts string) {
		k := [2]string{class, ts}
		if seen[k] || len(proposed) == maxContexts {
			return
		}
		seen[k] = true
		proposed = append(proposed, dicomnet.ProposedContext{AbstractSyntax: class, TransferSyntaxes: []string{ts}})
	}
	for _, in := range instances {
		propose(in.SOPClassUID, in.TransferSyntaxUID)
	}
	for _, in := range instances {
		if other, ok := otherLE(in.TransferSyntaxUID); ok {
			propose(in.SOPClassUID, other)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, q.opts.DialTimeout)
	as, err := dicomnet.Dial(dctx, addr, dicomnet.DialOptions{
		CallingAETitle:       q.opts.AETitle,
		CalledAETitle:        dest,
		PresentationContexts: proposed,
		Logger:               q.log,
	})
	cancel()
	if err != nil {
		q.log.Warn("C-MOVE destination unreachable", "destination", dest, "err", err)
		failed := make([]string, len(instances))
		for i, in := range instances {
			failed[i] = in.SOPInstanceUID
		}
		q.finish(w, r, counts{failed: len(instances)}, failed, "move destination not reachable")
		return
	}
	defer func() {
		if err := as.Release(context.WithoutCancel(ctx)); err != nil {
			q.log.Debug("C-MOVE sub-association release", "err", err)
		}
	}()
	opts := &dicomnet.StoreOptions{
		Priority:                r.Command.Priority,
		MoveOriginatorAETitle:   r.Association.CallingAETitle(),
		MoveOriginatorMessageID: r.Command.MessageID,
	}
	q.subOperations(ctx, w, r, "C-MOVE", as, opts, instances)
}

// serveGet is the C-GET SCP (PS3.4 §C.4.3): the C-STORE sub-operations go
// back over the same association, on the storage contexts for which the
// SCU took the SCP role (PS3.7 D.3.3.4).
func (q *QR) serveGet(ctx context.Context, w dicomnet.ResponseWriter, r *dicomnet.Request) {
	patientRoot := r.Command.AffectedSOPClassUID == PatientRootGet
	instances, f := q.retrieveMatches(ctx, r, patientRoot)
	if f != nil {
		q.fail(w, "C-GET", r, f)
		return
	}
	q.subOperations(ctx, w, r, "C-GET", r.Association, &dicomnet.StoreOptions{Priority: r.Command.Priority}, instances)
}

// retrieveMatches parses a C-MOVE or C-GET identifier and lists the
// instances it selects.
func (q *QR) retrieveMatches(ctx context.Context, r *dicomnet.Request, patientRoot bool) ([]catalog.Instance, *failure) {
	elems, f := readIdentifier(r)
	if f != nil {
		return nil, f
	}
	rq, f := parseRequest(elems, patientRoot, true)
	if f != nil {
		return nil, f
	}
	qy := rq.query
	qy.Level = catalog.InstanceLevel
	res, err := q.rt.Catalog.Search(ctx, qy)
	if err != nil {
		return nil, statusFor(err, dicomnet.StatusOutOfResourcesMatches)
	}
	out := make([]catalog.Instance, len(res))
	for i := range res {
		out[i] = res[i].Instance
		if out[i].StudyInstanceUID == "" {
			out[i].StudyInstanceUID = res[i].Study.StudyInstanceUID
		}
	}
	q.log.Debug("retrieve matches", "level", rq.level.String(), "filters", rq.query.Filters, "instances", len(out))
	return out, nil
}

// counts are the sub-operation counters of PS3.4 §C.4.2.1.6.
type counts struct{ remaining, completed, failed, warning int }

func u16(n int) *uint16 { return dicomnet.U16(uint16(min(n, 0xFFFF))) }

// subOperations sends every instance with C-STORE on as, with a Pending
// response after each, then the final response.
func (q *QR) subOperations(ctx context.Context, w dicomnet.ResponseWriter, r *dicomnet.Request, op string,
	as *dicomnet.Association, opts *dicomnet.StoreOptions, instances []catalog.Instance) {
	c := counts{remaining: len(instances)}
	var failed []string
	for _, in := range instances {
		if ctx.Err() != nil {
			if !canceled(ctx) {
				return // the association is gone
			}
			// PS3.4 §C.4.2.3.2: the Cancel response carries the counts
			// and the UIDs of the sub-operations not completed.
			for _, rest := range instances[c.completed+c.failed+c.warning:] {
				failed = append(failed, rest.SOPInstanceUID)
			}
			w.Respond(&dicomnet.Command{Status: dicomnet.StatusCancel,
				NumberOfRemainingSuboperations: u16(c.remaining), NumberOfCompletedSuboperations: u16(c.completed),
				NumberOfFailedSuboperations: u16(c.failed), NumberOfWarningSuboperations: u16(c.warning)},
				bytes.NewReader(failedList(failed, explicitVR(r.PresentationContext.TransferSyntax))))
			q.log.Info(op+" canceled", "calling_ae", r.Association.CallingAETitle(), "completed", c.completed, "remaining", c.remaining)
			return
		}
		sctx, done := subOperationContext(ctx)
		status, err := q.send(sctx, as, in, opts)
		done()
		c.remaining--
		switch {
		case err != nil:
			q.log.Warn(op+" sub-operation failed", "err", err)
			q.log.Debug(op+" sub-operation failed instance", "sop_instance_uid", in.SOPInstanceUID)
			c.failed++
			failed = append(failed, in.SOPInstanceUID)
		case status == dicomnet.StatusSuccess:
			c.completed++
		case status&0xF000 == 0xB000:
			c.warning++ // PS3.4 §B.2.3: Warning statuses B000, B006, B007
		default:
			q.log.Warn(op+" sub-operation refused", "status", fmt.Sprintf("0x%04X", status))
			c.failed++
			failed = append(failed, in.SOPInstanceUID)
		}
		if c.remaining > 0 {
			err := w.Respond(&dicomnet.Command{Status: dicomnet.StatusPending,
				NumberOfRemainingSuboperations: u16(c.remaining), NumberOfCompletedSuboperations: u16(c.completed),
				NumberOfFailedSuboperations: u16(c.failed), NumberOfWarningSuboperations: u16(c.warning)}, nil)
			if err != nil {
				q.log.Debug(op+" pending response not sent", "err", err)
				return
			}
		}
	}
	q.finish(w, r, c, failed, "")
	q.log.Info(op+" done", "calling_ae", r.Association.CallingAETitle(), "completed", c.completed, "failed", c.failed, "warning", c.warning)
}

// finish sends the final C-MOVE/C-GET response (PS3.4 §C.4.2.1.5, Table
// C.4-2): Success when every sub-operation succeeded; 0xB000 when some
// failed or had warnings; 0xA702 when none succeeded. A final response
// with failures carries Failed SOP Instance UID List (0008,0058).
func (q *QR) finish(w dicomnet.ResponseWriter, r *dicomnet.Request, c counts, failed []string, why string) {
	rsp := &dicomnet.Command{Status: dicomnet.StatusSuccess,
		NumberOfCompletedSuboperations: u16(c.completed), NumberOfFailedSuboperations: u16(c.failed),
		NumberOfWarningSuboperations: u16(c.warning)}
	switch {
	case c.failed > 0 && c.completed+c.warning == 0:
		rsp.Status = dicomnet.StatusOutOfResourcesSubOperations
		rsp.ErrorComment = why
		if why == "" {
			rsp.ErrorComment = "no sub-operation succeeded"
		}
	case c.failed > 0 || c.warning > 0:
		rsp.Status = dicomnet.StatusCoercionOfDataElements // 0xB000
	}
	if len(failed) == 0 {
		w.Respond(rsp, nil)
		return
	}
	w.Respond(rsp, bytes.NewReader(failedList(failed, explicitVR(r.PresentationContext.TransferSyntax))))
}

// failedList encodes an identifier with Failed SOP Instance UID List.
func failedList(uids []string, explicit bool) []byte {
	enc := encoder{explicit: explicit}
	enc.add(tagFailedSOPInstanceUIDs, "UI", strings.Join(uids, `\`))
	return enc.bytes()
}

// subOperationContext is ctx for one C-STORE sub-operation, except that
// C-CANCEL does not end it: the sub-operation in progress completes and
// the SCP stops before the next (PS3.4 §C.4.2.3.2). Ending it half way
// would abort the association the sub-operation runs on, which for C-GET
// is the requester's own.
func subOperationContext(ctx context.Context) (context.Context, func()) {
	sub, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		if cause := context.Cause(ctx); !errors.Is(cause, dicomnet.ErrCanceled) {
			cancel(cause)
		}
	})
	return sub, func() { stop(); cancel(nil) }
}

// otherLE returns the other uncompressed Little Endian transfer syntax.
func otherLE(ts string) (string, bool) {
	switch ts {
	case dicomfile.ImplicitVRLittleEndian:
		return dicomfile.ExplicitVRLittleEndian, true
	case dicomfile.ExplicitVRLittleEndian:
		return dicomfile.ImplicitVRLittleEndian, true
	}
	return "", false
}

// errNoContext: the peer accepted no presentation context for the
// instance's SOP class in its stored transfer syntax.
var errNoContext = errors.New("qr: no accepted presentation context for the stored transfer syntax")

// send streams one stored instance's data set over as, in the transfer
// syntax it is stored in.
func (q *QR) send(ctx context.Context, as *dicomnet.Association, in catalog.Instance, opts *dicomnet.StoreOptions) (uint16, error) {
	blob, err := q.rt.Blobs.Open(ctx, in.BlobKey)
	if err != nil {
		return 0, fmt.Errorf("qr: open stored instance: %w", err)
	}
	defer blob.Close()
	br := bufio.NewReaderSize(blob, 64<<10)
	meta, err := dicomfile.ReadFileMeta(br)
	if err != nil {
		return 0, fmt.Errorf("qr: read stored file meta: %w", err)
	}
	ts := meta.TransferSyntaxUID
	sendTS := ts
	if _, ok := as.PresentationContext(in.SOPClassUID, ts); !ok {
		other, ok := otherLE(ts)
		if !ok {
			return 0, fmt.Errorf("%w: %s in %s", errNoContext, in.SOPClassUID, ts)
		}
		if _, ok := as.PresentationContext(in.SOPClassUID, other); !ok {
			return 0, fmt.Errorf("%w: %s in %s", errNoContext, in.SOPClassUID, ts)
		}
		sendTS = other
	}
	// Reconciled studies are sent with the corrected patient and order
	// attributes (IHE PIR); the stored file stays as received.
	var ds io.Reader = br
	if v, ok, err := coerce.LookupCatalog(ctx, q.rt.Catalog, in.StudyInstanceUID); err != nil {
		return 0, fmt.Errorf("qr: %w", err)
	} else if ok {
		ds = coerce.NewReader(br, ts, v)
	}
	if sendTS != ts {
		// Re-encoded between the Little Endian syntaxes as it streams.
		pr, pw := io.Pipe()
		go func(src io.Reader) {
			pw.CloseWithError(tsconv.ConvertLE(pw, src, sendTS == dicomfile.ExplicitVRLittleEndian))
		}(ds)
		defer pr.CloseWithError(errNoContext) // stops the converter if the store ends early
		ds = pr
	}
	status, err := as.Store(ctx, in.SOPClassUID, in.SOPInstanceUID, sendTS, ds, opts)
	if err != nil {
		return 0, fmt.Errorf("qr: C-STORE sub-operation: %w", err)
	}
	return status, nil
}
