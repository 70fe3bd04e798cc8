package worklist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomjson"
	"github.com/imaginghub/imaginghub/dicomnet"
)

// SOP classes served (PS3.4 Annex K, Annex F).
const (
	ModalityWorklistFind               = "1.2.840.10008.5.1.4.31"
	ModalityPerformedProcedureStep     = "1.2.840.10008.3.1.2.3.3"
	detachedStudyManagementSOPClassUID = "1.2.840.10008.3.1.2.3.1" // Referenced Study Sequence (retired class, still the value RAD-5 examples carry)
	defaultMaxMatches                  = 5000
	specificCharacterSetUTF8           = "ISO_IR 192"
	statusNotFinalSQL                  = `status NOT IN ('COMPLETED', 'DISCONTINUED', 'CANCELED')`
)

// ErrTooManyMatches: a worklist query matched more items than
// Options.MaxMatches.
var ErrTooManyMatches = errors.New("worklist: too many matches")

// ItemDataSet is the whole worklist item as MWL attributes (PS3.4 §K.6.1,
// IHE RAD TF-2 Table 4.5-3), before projection onto a query's keys.
func ItemDataSet(it Item) dicomjson.DataSet {
	ds := dicomjson.DataSet{}
	str := func(d dicomjson.DataSet, t dicomjson.Tag, vr, v string) {
		if v == "" {
			d[t] = &dicomjson.Attribute{VR: vr}
			return
		}
		d[t] = &dicomjson.Attribute{VR: vr, Strings: []string{v}}
	}
	pn := func(d dicomjson.DataSet, t dicomjson.Tag, v string) {
		if v == "" {
			d[t] = &dicomjson.Attribute{VR: "PN"}
			return
		}
		d[t] = &dicomjson.Attribute{VR: "PN", PersonNames: []dicomjson.PersonName{dicomjson.ParsePersonName(v)}}
	}
	code := func(c Code) []dicomjson.DataSet {
		if c.CodeValue == "" {
			return nil
		}
		d := dicomjson.DataSet{}
		str(d, tagCodeValue, "SH", c.CodeValue)
		scheme := c.CodingSchemeDesignator
		if scheme == "" {
			scheme = "L" // local code (HL7 table 0396 "L" and DICOM's 99-private convention alike)
		}
		str(d, tagCodingSchemeDesignator, "SH", scheme)
		meaning := c.CodeMeaning
		if meaning == "" {
			meaning = c.CodeValue
		}
		str(d, tagCodeMeaning, "LO", meaning)
		return []dicomjson.DataSet{d}
	}

	// Patient identification, demographics and medical (C.2.2–C.2.4).
	pn(ds, tagPatientName, it.PatientName)
	str(ds, tagPatientID, "LO", it.PatientID)
	str(ds, tagIssuerOfPatientID, "LO", it.IssuerOfPatientID)
	str(ds, tagPatientBirthDate, "DA", it.PatientBirthDate)
	str(ds, tagPatientSex, "CS", it.PatientSex)
	str(ds, tagMedicalAlerts, "LO", it.MedicalAlerts)
	str(ds, tagAllergies, "LO", it.Allergies)
	ds[tagReferencedPatientSequence] = &dicomjson.Attribute{VR: "SQ"}
	// Visit (C.3.2–C.3.4).
	str(ds, tagAdmissionID, "LO", it.AdmissionID)
	str(ds, tagCurrentPatientLocation, "LO", it.CurrentPatientLocation)
	// Imaging Service Request (C.4.13).
	str(ds, tagAccessionNumber, "SH", it.AccessionNumber)
	pn(ds, tagReferringPhysicianName, it.ReferringPhysicianName)
	pn(ds, tagRequestingPhysician, it.RequestingPhysician)
	str(ds, tagPlacerOrderNumberImagingServiceRequest, "LO", it.PlacerOrderNumberImagingServiceRequest)
	str(ds, tagFillerOrderNumberImagingServiceRequest, "LO", it.FillerOrderNumberImagingServiceRequest)
	// Requested Procedure (C.4.11).
	str(ds, tagRequestedProcedureID, "SH", it.RequestedProcedureID)
	str(ds, tagRequestedProcedureDescription, "LO", it.RequestedProcedureDescription)
	ds[tagRequestedProcedureCodeSequence] = &dicomjson.Attribute{VR: "SQ", Items: code(it.RequestedProcedureCode)}
	str(ds, tagRequestedProcedurePriority, "SH", it.RequestedProcedurePriority)
	str(ds, tagReasonForTheRequestedProcedure, "LO", it.ReasonForTheRequestedProcedure)
	str(ds, tagStudyInstanceUID, "UI", it.StudyInstanceUID)
	var refStudy []dicomjson.DataSet
	if it.StudyInstanceUID != "" {
		d := dicomjson.DataSet{}
		str(d, tagReferencedSOPClassUID, "UI", detachedStudyManagementSOPClassUID)
		str(d, tagReferencedSOPInstanceUID, "UI", it.StudyInstanceUID)
		refStudy = []dicomjson.DataSet{d}
	}
	ds[tagReferencedStudySequence] = &dicomjson.Attribute{VR: "SQ", Items: refStudy}
	// Scheduled Procedure Step (C.4.10).
	sps := dicomjson.DataSet{}
	str(sps, tagScheduledStationAETitle, "AE", it.ScheduledStationAETitle)
	str(sps, tagScheduledProcedureStepStartDate, "DA", it.ScheduledProcedureStepStartDate)
	str(sps, tagScheduledProcedureStepStartTime, "TM", it.ScheduledProcedureStepStartTime)
	str(sps, tagModality, "CS", it.Modality)
	pn(sps, tagScheduledPerformingPhysicianName, it.ScheduledPerformingPhysicianName)
	str(sps, tagScheduledProcedureStepDescription, "LO", it.ScheduledProcedureStepDescription)
	sps[tagScheduledProtocolCodeSequence] = &dicomjson.Attribute{VR: "SQ", Items: code(it.ScheduledProtocolCode)}
	str(sps, tagScheduledProcedureStepID, "SH", it.ScheduledProcedureStepID)
	str(sps, tagScheduledStationName, "SH", it.ScheduledStationName)
	str(sps, tagScheduledProcedureStepLocation, "SH", it.ScheduledProcedureStepLocation)
	str(sps, tagScheduledProcedureStepStatus, "CS", it.ScheduledProcedureStepStatus)
	ds[tagScheduledProcedureStepSequence] = &dicomjson.Attribute{VR: "SQ", Items: []dicomjson.DataSet{sps}}
	return ds
}

// Find runs an MWL query: the items whose data set matches the identifier
// q, each projected onto q's keys with Specific Character Set set when a
// value needs it. Final steps are left out unless includeFinal.
func (s *Store) Find(ctx context.Context, q dicomjson.DataSet, includeFinal bool, maxMatches int) ([]dicomjson.DataSet, error) {
	where, args := prefilter(q)
	if !includeFinal {
		where = append(where, statusNotFinalSQL)
	}
	if maxMatches <= 0 {
		maxMatches = defaultMaxMatches
	}
	query := `SELECT ` + itemColumns + ` FROM worklist_items`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY scheduled_start_date, scheduled_start_time, id`
	var items []Item
	err := s.read(ctx, func(tx catalog.Querier) error {
		items = items[:0]
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			it, err := scanItem(rows)
			if err != nil {
				return err
			}
			items = append(items, it)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("worklist: query: %w", err)
	}
	var out []dicomjson.DataSet
	for _, it := range items {
		full := ItemDataSet(it)
		if !Matches(q, full) {
			continue
		}
		if len(out) == maxMatches {
			return nil, fmt.Errorf("%w: more than %d", ErrTooManyMatches, maxMatches)
		}
		rsp := Project(q, full)
		if needsUTF8(rsp) {
			rsp[tagSpecificCharacterSet] = &dicomjson.Attribute{VR: "CS", Strings: []string{specificCharacterSetUTF8}}
		} else if _, asked := q[tagSpecificCharacterSet]; asked {
			rsp[tagSpecificCharacterSet] = &dicomjson.Attribute{VR: "CS"}
		}
		out = append(out, rsp)
	}
	return out, nil
}

// prefilter turns the keys an index can serve into SQL conditions; Matches
// then applies every key exactly, so the SQL may only narrow by what is
// certainly required.
func prefilter(q dicomjson.DataSet) ([]string, []any) {
	var where []string
	var args []any
	exact := func(col string, a *dicomjson.Attribute) {
		v := value(a)
		if v == "" || strings.ContainsAny(v, "*?") || a.VR == "SQ" {
			return
		}
		if a.VR == "UI" && len(a.Strings) > 1 {
			return
		}
		where = append(where, col+" = ?")
		args = append(args, v)
	}
	exact("patient_id", q[tagPatientID])
	exact("accession_number", q[tagAccessionNumber])
	exact("requested_procedure_id", q[tagRequestedProcedureID])
	exact("study_instance_uid", q[tagStudyInstanceUID])
	if v := strings.ToLower(value(q[tagPatientName])); v != "" {
		prefix := v
		if i := strings.IndexAny(v, "*?"); i >= 0 {
			prefix = v[:i]
		}
		if prefix != "" && !strings.Contains(prefix, "=") {
			esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(prefix)
			where = append(where, `patient_name_search LIKE ? ESCAPE '\'`)
			args = append(args, esc+"%")
		}
	}
	if sq := q[tagScheduledProcedureStepSequence]; sq != nil && len(sq.Items) > 0 {
		sps := sq.Items[0]
		exact("scheduled_station_ae_title", sps[tagScheduledStationAETitle])
		exact("modality", sps[tagModality])
		exact("scheduled_procedure_step_id", sps[tagScheduledProcedureStepID])
		exact("status", sps[tagScheduledProcedureStepStatus])
		if v := value(sps[tagScheduledProcedureStepStartDate]); v != "" && v != "-" && !strings.ContainsAny(v, "*?") {
			lo, hi, isRange := strings.Cut(v, "-")
			if !isRange {
				hi = lo
			}
			if lo != "" {
				where = append(where, "scheduled_start_date >= ?")
				args = append(args, lo)
			}
			if hi != "" {
				where = append(where, "scheduled_start_date <= ?")
				args = append(args, hi)
			}
		}
	}
	return where, args
}

// serveFind is the MWL C-FIND SCP (PS3.4 §K.4.1.3): one Pending (0xFF00)
// response per item, then Success; Cancel (0xFE00) after C-CANCEL.
func (w *Worklist) serveFind(ctx context.Context, rw dicomnet.ResponseWriter, r *dicomnet.Request) {
	if r.Command.CommandField != dicomnet.CFindRQ {
		rw.Respond(&dicomnet.Command{Status: dicomnet.StatusUnrecognizedOperation}, nil)
		return
	}
	if r.Data == nil {
		rw.Respond(&dicomnet.Command{Status: dicomnet.StatusDataSetDoesNotMatchSOPClass, ErrorComment: "C-FIND without an identifier"}, nil)
		return
	}
	q, err := DecodeDataSet(r.Data, r.PresentationContext.TransferSyntax)
	if err != nil {
		w.log.Warn("MWL identifier unreadable", "calling_ae", r.Association.CallingAETitle(), "err", err)
		rw.Respond(&dicomnet.Command{Status: dicomnet.StatusCannotUnderstand, ErrorComment: comment(err)}, nil)
		return
	}
	matches, err := w.store.Find(ctx, q, w.opts.IncludeFinalSteps, w.opts.MaxMatches)
	switch {
	case errors.Is(err, ErrTooManyMatches):
		w.log.Warn("MWL query matched too many items", "calling_ae", r.Association.CallingAETitle(), "max", w.opts.MaxMatches)
		rw.Respond(&dicomnet.Command{Status: dicomnet.StatusOutOfResources, ErrorComment: "too many matches; narrow the query"}, nil)
		return
	case err != nil:
		if errors.Is(context.Cause(ctx), dicomnet.ErrCanceled) {
			rw.Respond(&dicomnet.Command{Status: dicomnet.StatusCancel}, nil)
			return
		}
		w.log.Error("MWL query failed", "err", err)
		rw.Respond(&dicomnet.Command{Status: dicomnet.StatusCannotUnderstand | 0x0001, ErrorComment: "worklist query failed"}, nil)
		return
	}
	w.metrics.findMatches.Observe(float64(len(matches)))
	for _, m := range matches {
		if errors.Is(context.Cause(ctx), dicomnet.ErrCanceled) {
			rw.Respond(&dicomnet.Command{Status: dicomnet.StatusCancel}, nil)
			return
		}
		b, err := EncodeDataSet(m, r.PresentationContext.TransferSyntax)
		if err != nil {
			w.log.Error("MWL response not encodable", "err", err)
			rw.Respond(&dicomnet.Command{Status: dicomnet.StatusCannotUnderstand | 0x0002, ErrorComment: "response not encodable"}, nil)
			return
		}
		if err := rw.Respond(&dicomnet.Command{Status: dicomnet.StatusPending}, bytes.NewReader(b)); err != nil {
			w.log.Debug("MWL response not sent", "err", err)
			return
		}
	}
	if errors.Is(context.Cause(ctx), dicomnet.ErrCanceled) {
		rw.Respond(&dicomnet.Command{Status: dicomnet.StatusCancel}, nil)
		return
	}
	w.log.Debug("MWL query answered", "calling_ae", r.Association.CallingAETitle(), "matches", len(matches))
	rw.Respond(&dicomnet.Command{Status: dicomnet.StatusSuccess}, nil)
}

// comment fits an error into an Error Comment (LO, 64 characters, PS3.7
// §C.4.2).
func comment(err error) string {
	s := strings.TrimPrefix(err.Error(), "worklist: ")
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}
