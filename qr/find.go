package qr

import (
	"bytes"
	"context"
	"fmt"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomnet"
)

// findPage is how many matches one catalog read fetches: the matches are
// sent as they are read, so memory does not grow with the result count.
const findPage = 500

// serveFind is the C-FIND SCP (PS3.4 §C.4.1): one Pending response per
// match carrying the requested keys, then Success; Cancel (0xFE00) when
// the SCU sends C-CANCEL.
func (q *QR) serveFind(ctx context.Context, w dicomnet.ResponseWriter, r *dicomnet.Request) {
	patientRoot := r.Command.AffectedSOPClassUID == PatientRootFind
	elems, f := readIdentifier(r)
	var rq *request
	if f == nil {
		rq, f = parseRequest(elems, patientRoot, false)
	}
	if f != nil {
		q.fail(w, "C-FIND", r, f)
		return
	}
	explicit := explicitVR(r.PresentationContext.TransferSyntax)
	pending := dicomnet.StatusPending
	if rq.unsupported {
		pending = dicomnet.StatusPendingWarning
	}
	q.log.Debug("C-FIND", "calling_ae", r.Association.CallingAETitle(), "level", rq.level.String(), "filters", rq.query.Filters)
	sent := 0
	for offset := 0; ; offset += findPage {
		page := findPage
		if q.opts.MaxMatches > 0 {
			page = min(page, q.opts.MaxMatches-sent)
			if page <= 0 {
				break
			}
		}
		qy := rq.query
		qy.Limit, qy.Offset = page, offset
		res, err := q.rt.Catalog.Search(ctx, qy)
		if err != nil {
			if canceled(ctx) {
				q.respondCancel(w)
				return
			}
			if ctx.Err() != nil {
				return // the association is gone
			}
			q.fail(w, "C-FIND", r, statusFor(err, dicomnet.StatusOutOfResources))
			return
		}
		for i := range res {
			if ctx.Err() != nil {
				if canceled(ctx) {
					q.respondCancel(w)
				}
				return
			}
			ds := q.findResponse(rq, &res[i], explicit)
			if err := w.Respond(&dicomnet.Command{Status: pending}, bytes.NewReader(ds)); err != nil {
				q.log.Debug("C-FIND response not sent", "err", err)
				return
			}
			sent++
		}
		if len(res) < page {
			break
		}
	}
	if canceled(ctx) {
		q.respondCancel(w)
		return
	}
	if err := w.Respond(&dicomnet.Command{Status: dicomnet.StatusSuccess}, nil); err != nil {
		q.log.Debug("C-FIND final response not sent", "err", err)
	}
	q.log.Info("C-FIND answered", "calling_ae", r.Association.CallingAETitle(), "level", rq.level.String(), "matches", sent)
}

func (q *QR) respondCancel(w dicomnet.ResponseWriter) {
	w.Respond(&dicomnet.Command{Status: dicomnet.StatusCancel}, nil)
}

// fail sends a final failure response.
func (q *QR) fail(w dicomnet.ResponseWriter, op string, r *dicomnet.Request, f *failure) {
	q.log.Warn(op+" failed", "status", fmt.Sprintf("0x%04X", f.status), "calling_ae", r.Association.CallingAETitle(), "reason", f.comment)
	w.Respond(&dicomnet.Command{Status: f.status, ErrorComment: f.comment}, nil)
}

// findResponse builds the identifier of one Pending response: every key
// of the request comes back (PS3.4 §C.4.1.1.3.2), with the match's value
// where the catalog knows it and empty otherwise; Query/Retrieve Level
// always. Values are UTF-8 as the catalog holds them, so Specific
// Character Set is ISO_IR 192 when any of them is not ASCII.
func (q *QR) findResponse(rq *request, res *catalog.Result, explicit bool) []byte {
	enc := encoder{explicit: explicit}
	nonASCII := false
	charsetAsked := false
	for _, e := range rq.elems {
		a, known := dictionary[e.tag]
		vr := e.vr
		if vr == "" {
			vr = a.vr
		}
		switch {
		case e.tag == tagSpecificCharacterSet:
			charsetAsked = true
		case e.tag == tagQueryRetrieveLevel, e.tag == tagFailedSOPInstanceUIDs:
		case e.tag == tagRetrieveAETitle:
			enc.add(e.tag, "AE", q.opts.AETitle)
		case e.tag == tagInstanceAvailability:
			// Everything the catalog lists is on disk (PS3.3 §C.4.23.1.1).
			enc.add(e.tag, "CS", "ONLINE")
		case vr == "SQ":
			enc.add(e.tag, "SQ", "") // sequence matching is not supported
		case known && a.level != 0 && a.level <= rq.level && a.get != nil:
			v := a.get(res)
			if !isASCII(v) {
				nonASCII = true
			}
			enc.add(e.tag, a.vr, v)
		case known && a.level != 0 && a.level <= rq.level:
			enc.elems = append(enc.elems, element{tag: e.tag, vr: a.vr, value: binaryValue(e.tag, res)})
		default:
			enc.add(e.tag, vr, "")
		}
	}
	enc.add(tagQueryRetrieveLevel, "CS", rq.level.String())
	switch {
	case nonASCII:
		enc.add(tagSpecificCharacterSet, "CS", "ISO_IR 192")
	case charsetAsked:
		enc.add(tagSpecificCharacterSet, "CS", "")
	}
	return enc.bytes()
}
