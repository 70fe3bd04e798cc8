package worklist

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomjson"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/outbox"
)

// Performed Procedure Step Status (0040,0252) values, PS3.3 §C.4.14.
const (
	PPSInProgress   = "IN PROGRESS"
	PPSCompleted    = "COMPLETED"
	PPSDiscontinued = "DISCONTINUED"
)

// Errors of the MPPS SCP, each mapped to its status (PS3.4 §F.7.2).
var (
	// ErrDuplicateInstance: N-CREATE of an SOP Instance that exists (0x0111).
	ErrDuplicateInstance = errors.New("worklist: MPPS instance already exists")
	// ErrNoSuchInstance: N-SET of an unknown SOP Instance (0x0112).
	ErrNoSuchInstance = errors.New("worklist: no such MPPS instance")
	// ErrFinalState: N-SET after COMPLETED or DISCONTINUED (0x0110, Error
	// ID A710, PS3.4 Table F.7.2-2).
	ErrFinalState = errors.New("worklist: Performed Procedure Step Object may no longer be updated")
	// ErrInvalidValue: an attribute value the SOP class does not allow
	// (0x0106).
	ErrInvalidValue = errors.New("worklist: invalid attribute value")
)

// ScheduledStep is one Scheduled Step Attributes Sequence (0040,0270)
// item: the order and step an MPPS performs.
type ScheduledStep struct {
	StudyInstanceUID         string `json:"studyInstanceUID,omitempty"`
	AccessionNumber          string `json:"accessionNumber,omitempty"`
	RequestedProcedureID     string `json:"requestedProcedureID,omitempty"`
	ScheduledProcedureStepID string `json:"scheduledProcedureStepID,omitempty"`
}

// PerformedSeries is one Performed Series Sequence (0040,0340) item.
type PerformedSeries struct {
	SeriesInstanceUID string `json:"seriesInstanceUID"`
	SeriesDescription string `json:"seriesDescription,omitempty"`
	// NumberOfImages counts the Referenced Image Sequence items.
	NumberOfImages int `json:"numberOfImages"`
}

// ProcedureEvent is the data of ih.procedure.started, ih.procedure.completed
// and ih.procedure.discontinued.
type ProcedureEvent struct {
	SOPInstanceUID                  string            `json:"sopInstanceUID"`
	PerformedProcedureStepStatus    string            `json:"performedProcedureStepStatus"`
	PerformedProcedureStepID        string            `json:"performedProcedureStepID,omitempty"`
	PerformedStationAETitle         string            `json:"performedStationAETitle,omitempty"`
	CallingAETitle                  string            `json:"callingAETitle,omitempty"`
	Modality                        string            `json:"modality,omitempty"`
	PerformedProcedureStepStartDate string            `json:"performedProcedureStepStartDate,omitempty"`
	PerformedProcedureStepStartTime string            `json:"performedProcedureStepStartTime,omitempty"`
	PerformedProcedureStepEndDate   string            `json:"performedProcedureStepEndDate,omitempty"`
	PerformedProcedureStepEndTime   string            `json:"performedProcedureStepEndTime,omitempty"`
	PatientID                       string            `json:"patientID,omitempty"`
	IssuerOfPatientID               string            `json:"issuerOfPatientID,omitempty"`
	StudyInstanceUID                string            `json:"studyInstanceUID,omitempty"`
	AccessionNumber                 string            `json:"accessionNumber,omitempty"`
	ScheduledSteps                  []ScheduledStep   `json:"scheduledSteps"`
	PerformedSeries                 []PerformedSeries `json:"performedSeries"`
	// Unscheduled is set when no worklist item matched the scheduled
	// steps (IHE RAD TF-2 §4.6.4.1.2.4, the unscheduled case).
	Unscheduled     bool    `json:"unscheduled"`
	WorklistItemIDs []int64 `json:"worklistItemIds,omitempty"`
	OrderIDs        []int64 `json:"orderIds,omitempty"`
}

// Source is the CloudEvents source of the component's events.
const Source = "imaginghub/worklist"

var (
	tagReferencedImageSequence = dicomfile.NewTag(0x0008, 0x1140)
	tagSeriesDescription       = dicomfile.NewTag(0x0008, 0x103E)
)

func scheduledSteps(ds dicomjson.DataSet) []ScheduledStep {
	var steps []ScheduledStep
	if a := ds[tagScheduledStepAttributesSequence]; a != nil {
		for _, it := range a.Items {
			steps = append(steps, ScheduledStep{
				StudyInstanceUID:         it.String(tagStudyInstanceUID),
				AccessionNumber:          it.String(tagAccessionNumber),
				RequestedProcedureID:     it.String(tagRequestedProcedureID),
				ScheduledProcedureStepID: it.String(tagScheduledProcedureStepID),
			})
		}
	}
	return steps
}

func performedSeries(ds dicomjson.DataSet) []PerformedSeries {
	out := []PerformedSeries{}
	if a := ds[tagPerformedSeriesSequence]; a != nil {
		for _, it := range a.Items {
			n := 0
			if ri := it[tagReferencedImageSequence]; ri != nil {
				n = len(ri.Items)
			}
			out = append(out, PerformedSeries{
				SeriesInstanceUID: it.String(tagSeriesInstanceUID),
				SeriesDescription: it.String(tagSeriesDescription),
				NumberOfImages:    n,
			})
		}
	}
	return out
}

// procedureEvent describes the MPPS ds.
func procedureEvent(uid, callingAE string, ds dicomjson.DataSet, items, orders []int64) ProcedureEvent {
	e := ProcedureEvent{
		SOPInstanceUID:                  uid,
		PerformedProcedureStepStatus:    ds.String(tagPerformedProcedureStepStatus),
		PerformedProcedureStepID:        ds.String(tagPerformedProcedureStepID),
		PerformedStationAETitle:         ds.String(tagPerformedStationAETitle),
		CallingAETitle:                  callingAE,
		Modality:                        ds.String(tagModality),
		PerformedProcedureStepStartDate: ds.String(tagPerformedProcedureStepStartDate),
		PerformedProcedureStepStartTime: ds.String(tagPerformedProcedureStepStartTime),
		PerformedProcedureStepEndDate:   ds.String(tagPerformedProcedureStepEndDate),
		PerformedProcedureStepEndTime:   ds.String(tagPerformedProcedureStepEndTime),
		PatientID:                       ds.String(tagPatientID),
		IssuerOfPatientID:               ds.String(tagIssuerOfPatientID),
		ScheduledSteps:                  scheduledSteps(ds),
		PerformedSeries:                 performedSeries(ds),
		Unscheduled:                     len(items) == 0,
		WorklistItemIDs:                 items,
		OrderIDs:                        orders,
	}
	for _, s := range e.ScheduledSteps {
		if e.StudyInstanceUID == "" {
			e.StudyInstanceUID = s.StudyInstanceUID
		}
		if e.AccessionNumber == "" {
			e.AccessionNumber = s.AccessionNumber
		}
	}
	if e.ScheduledSteps == nil {
		e.ScheduledSteps = []ScheduledStep{}
	}
	return e
}

// linkSteps finds the worklist items the scheduled steps name: the
// Scheduled Procedure Step ID together with the Accession Number,
// Requested Procedure ID or Study Instance UID the modality copied from
// the worklist (IHE RAD TF-2 §4.6.4.1.2.3).
func linkSteps(ctx context.Context, tx *catalog.Tx, steps []ScheduledStep) (items, orders []int64, err error) {
	seen := map[int64]bool{}
	for _, s := range steps {
		if s.ScheduledProcedureStepID == "" {
			continue
		}
		where := []string{"scheduled_procedure_step_id = ?"}
		args := []any{s.ScheduledProcedureStepID}
		for col, v := range map[string]string{"accession_number": s.AccessionNumber, "requested_procedure_id": s.RequestedProcedureID, "study_instance_uid": s.StudyInstanceUID} {
			if v != "" {
				where = append(where, col+" = ?")
				args = append(args, v)
			}
		}
		if len(where) == 1 {
			continue // an SPS ID alone is not unique across orders
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, order_ref FROM worklist_items WHERE `+strings.Join(where, " AND "), args...)
		if err != nil {
			return nil, nil, err
		}
		for rows.Next() {
			var id, order int64
			if err := rows.Scan(&id, &order); err != nil {
				rows.Close()
				return nil, nil, err
			}
			if !seen[id] {
				seen[id] = true
				items = append(items, id)
				if order != 0 {
					orders = append(orders, order)
				}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, nil, err
		}
	}
	return items, orders, nil
}

func appendEvent(tx *catalog.Tx, typ string, e ProcedureEvent) error {
	subject := e.AccessionNumber
	if subject == "" {
		subject = e.SOPInstanceUID
	}
	ev, err := events.New(Source, typ, subject, e, e.SOPInstanceUID, typ)
	if err != nil {
		return err
	}
	m, err := outbox.Message(ev)
	if err != nil {
		return err
	}
	tx.AppendOutbox(m)
	return nil
}

// CreateMPPS records an N-CREATE (PS3.4 §F.7.2.1): the Performed Procedure
// Step IN PROGRESS, linked to the worklist items its scheduled steps name,
// which become STARTED; ih.procedure.started commits with it.
func (s *Store) CreateMPPS(ctx context.Context, uid, callingAE string, ds dicomjson.DataSet) (ProcedureEvent, error) {
	var ev ProcedureEvent
	if st := ds.String(tagPerformedProcedureStepStatus); st != PPSInProgress {
		return ev, fmt.Errorf("%w: Performed Procedure Step Status %q, N-CREATE requires IN PROGRESS", ErrInvalidValue, st)
	}
	body, err := ds.MarshalJSON()
	if err != nil {
		return ev, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	now := s.now()
	err = s.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM mpps WHERE sop_instance_uid = ?`, uid).Scan(&one)
		if err == nil {
			return ErrDuplicateInstance
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		items, orders, err := linkSteps(ctx, tx, scheduledSteps(ds))
		if err != nil {
			return err
		}
		ev = procedureEvent(uid, callingAE, ds, items, orders)
		unscheduled := 0
		if ev.Unscheduled {
			unscheduled = 1
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO mpps (sop_instance_uid, status, calling_ae_title, performed_station_ae_title, modality,
			performed_procedure_step_id, patient_id, study_instance_uid, accession_number, unscheduled, dataset, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, uid, PPSInProgress, callingAE, ev.PerformedStationAETitle, ev.Modality,
			ev.PerformedProcedureStepID, ev.PatientID, ev.StudyInstanceUID, ev.AccessionNumber, unscheduled, string(body), stamp(now), stamp(now)); err != nil {
			return err
		}
		for _, id := range items {
			if _, err := tx.ExecContext(ctx, `INSERT INTO mpps_items (sop_instance_uid, item_ref) VALUES (?, ?)`, uid, id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE worklist_items SET status = ?, updated_at = ? WHERE id = ? AND `+statusNotFinalSQL,
				StatusStarted, stamp(now), id); err != nil {
				return err
			}
		}
		return appendEvent(tx, events.TypeProcedureStarted, ev)
	})
	return ev, err
}

// SetMPPS applies an N-SET (PS3.4 §F.7.2.2): the attributes given replace
// the stored ones; COMPLETED or DISCONTINUED ends the step, moves its
// worklist items to the same status and emits ih.procedure.completed or
// ih.procedure.discontinued. Once ended it takes no more changes.
func (s *Store) SetMPPS(ctx context.Context, uid string, mod dicomjson.DataSet) (ProcedureEvent, error) {
	var ev ProcedureEvent
	if a, ok := mod[tagPerformedProcedureStepStatus]; ok {
		switch st := value(a); st {
		case PPSInProgress, PPSCompleted, PPSDiscontinued:
		default:
			return ev, fmt.Errorf("%w: Performed Procedure Step Status %q", ErrInvalidValue, st)
		}
	}
	if _, ok := mod[tagScheduledStepAttributesSequence]; ok {
		// PS3.4 Table F.7.2-1: not settable with N-SET.
		return ev, fmt.Errorf("%w: Scheduled Step Attributes Sequence may not be set", ErrInvalidValue)
	}
	now := s.now()
	err := s.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
		var status, callingAE, body string
		err := tx.QueryRowContext(ctx, `SELECT status, calling_ae_title, dataset FROM mpps WHERE sop_instance_uid = ?`, uid).Scan(&status, &callingAE, &body)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoSuchInstance
		}
		if err != nil {
			return err
		}
		if status != PPSInProgress {
			return ErrFinalState
		}
		ds, err := dicomjson.Unmarshal([]byte(body))
		if err != nil {
			return fmt.Errorf("worklist: stored MPPS %w", err)
		}
		for t, a := range mod {
			ds[t] = a
		}
		newStatus := ds.String(tagPerformedProcedureStepStatus)
		merged, err := ds.MarshalJSON()
		if err != nil {
			return err
		}
		var items, orders []int64
		rows, err := tx.QueryContext(ctx, `SELECT m.item_ref, w.order_ref FROM mpps_items m JOIN worklist_items w ON w.id = m.item_ref WHERE m.sop_instance_uid = ? ORDER BY m.item_ref`, uid)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id, order int64
			if err := rows.Scan(&id, &order); err != nil {
				rows.Close()
				return err
			}
			items = append(items, id)
			if order != 0 {
				orders = append(orders, order)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		ev = procedureEvent(uid, callingAE, ds, items, orders)
		if _, err := tx.ExecContext(ctx, `UPDATE mpps SET status = ?, performed_station_ae_title = ?, modality = ?, performed_procedure_step_id = ?,
			dataset = ?, updated_at = ? WHERE sop_instance_uid = ?`, newStatus, ev.PerformedStationAETitle, ev.Modality, ev.PerformedProcedureStepID,
			string(merged), stamp(now), uid); err != nil {
			return err
		}
		var typ, itemStatus string
		switch newStatus {
		case PPSCompleted:
			typ, itemStatus = events.TypeProcedureCompleted, StatusCompleted
		case PPSDiscontinued:
			typ, itemStatus = events.TypeProcedureDiscontinue, StatusDiscontinued
		default:
			return nil
		}
		for _, id := range items {
			if _, err := tx.ExecContext(ctx, `UPDATE worklist_items SET status = ?, updated_at = ? WHERE id = ? AND status NOT IN ('CANCELED')`,
				itemStatus, stamp(now), id); err != nil {
				return err
			}
		}
		return appendEvent(tx, typ, ev)
	})
	return ev, err
}

// MPPS is a stored Performed Procedure Step, for the REST API.
type MPPS struct {
	SOPInstanceUID string            `json:"sopInstanceUID"`
	Status         string            `json:"status"`
	Unscheduled    bool              `json:"unscheduled"`
	DataSet        dicomjson.DataSet `json:"dataset"`
	ItemIDs        []int64           `json:"worklistItemIds"`
}

// GetMPPS returns one stored MPPS.
func (s *Store) GetMPPS(ctx context.Context, uid string) (MPPS, error) {
	m := MPPS{SOPInstanceUID: uid, ItemIDs: []int64{}}
	err := s.read(ctx, func(tx catalog.Querier) error {
		var body string
		var unscheduled int64
		err := tx.QueryRowContext(ctx, `SELECT status, unscheduled, dataset FROM mpps WHERE sop_instance_uid = ?`, uid).Scan(&m.Status, &unscheduled, &body)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoSuchInstance
		}
		if err != nil {
			return err
		}
		m.Unscheduled = unscheduled != 0
		if m.DataSet, err = dicomjson.Unmarshal([]byte(body)); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT item_ref FROM mpps_items WHERE sop_instance_uid = ? ORDER BY item_ref`, uid)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			m.ItemIDs = append(m.ItemIDs, id)
		}
		return rows.Err()
	})
	return m, err
}

// errorIDMayNoLongerBeUpdated is Error ID (0000,0903) A710 (PS3.4 Table
// F.7.2-2), sent with status 0x0110 for a change after a final state.
const errorIDMayNoLongerBeUpdated = 0xA710

// serveMPPS is the MPPS SCP (PS3.4 §F.7.2): N-CREATE and N-SET.
func (w *Worklist) serveMPPS(ctx context.Context, rw dicomnet.ResponseWriter, r *dicomnet.Request) {
	cmd := r.Command
	var uid string
	switch cmd.CommandField {
	case dicomnet.NCreateRQ:
		uid = cmd.AffectedSOPInstanceUID
		if uid == "" {
			// PS3.7 §10.1.5.1.1: the SCP assigns the instance UID when
			// the SCU leaves it out, and returns it.
			uid = dicomfile.NewUID()
		}
	case dicomnet.NSetRQ:
		uid = cmd.RequestedSOPInstanceUID
	default:
		rw.Respond(&dicomnet.Command{Status: dicomnet.StatusUnrecognizedOperation}, nil)
		return
	}
	rsp := &dicomnet.Command{Status: dicomnet.StatusSuccess, AffectedSOPInstanceUID: uid}
	if r.Data == nil {
		rsp.Status, rsp.ErrorComment = dicomnet.StatusMissingAttribute, "request without an attribute list"
		rw.Respond(rsp, nil)
		return
	}
	ds, err := DecodeDataSet(r.Data, r.PresentationContext.TransferSyntax)
	if err == nil && !dicomfile.ValidUID(uid) {
		err = fmt.Errorf("%w: SOP Instance UID is not a valid UID", ErrInvalidValue)
	}
	var ev ProcedureEvent
	if err == nil {
		if cmd.CommandField == dicomnet.NCreateRQ {
			ev, err = w.store.CreateMPPS(ctx, uid, r.Association.CallingAETitle(), ds)
		} else {
			ev, err = w.store.SetMPPS(ctx, uid, ds)
		}
	}
	op := "N-CREATE"
	if cmd.CommandField == dicomnet.NSetRQ {
		op = "N-SET"
	}
	if err != nil {
		rsp.Status, rsp.ErrorComment = mppsStatus(err)
		switch {
		case errors.Is(err, ErrFinalState):
			rsp.Other = append(rsp.Other, dicomnet.RawElement{Tag: dicomnet.TagErrorID, Value: binary.LittleEndian.AppendUint16(nil, errorIDMayNoLongerBeUpdated)})
		case errors.Is(err, ErrInvalidValue) && strings.Contains(err.Error(), "Status"):
			rsp.OffendingElement = []dicomnet.Tag{{Group: 0x0040, Element: 0x0252}}
		}
		w.log.Warn("MPPS refused", "op", op, "status", fmt.Sprintf("0x%04X", rsp.Status), "calling_ae", r.Association.CallingAETitle(), "err", err)
		rw.Respond(rsp, nil)
		return
	}
	w.metrics.mpps.WithLabelValues(op, ev.PerformedProcedureStepStatus).Inc()
	w.log.Info("MPPS "+op, "status", ev.PerformedProcedureStepStatus, "calling_ae", r.Association.CallingAETitle(),
		"unscheduled", ev.Unscheduled, "items", len(ev.WorklistItemIDs))
	if w.kick != nil {
		w.kick()
	}
	rw.Respond(rsp, nil)
}

// mppsStatus maps an MPPS error to its DIMSE status and Error Comment.
func mppsStatus(err error) (uint16, string) {
	status := dicomnet.StatusProcessingFailure
	switch {
	case errors.Is(err, ErrDuplicateInstance):
		status = dicomnet.StatusDuplicateSOPInstance
	case errors.Is(err, ErrNoSuchInstance):
		status = dicomnet.StatusNoSuchSOPInstance
	case errors.Is(err, ErrFinalState):
		status = dicomnet.StatusProcessingFailure
	case errors.Is(err, ErrInvalidValue):
		status = dicomnet.StatusInvalidAttributeValue
	case errors.Is(err, ErrDataSet):
		status = dicomnet.StatusProcessingFailure
	}
	return status, comment(err)
}
