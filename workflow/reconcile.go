package workflow

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/events"
	hisbridge "github.com/imaginghub/imaginghub/his-bridge"
	"github.com/imaginghub/imaginghub/ingest"
	risbridge "github.com/imaginghub/imaginghub/ris-bridge"
)

// orderStatusCancelled are ORC-5 values (HL7 table 0038) of orders that no
// study may be matched to.
var orderStatusCancelled = []string{"CA", "DC"}

func queryIDs(ctx context.Context, q catalog.Querier, query string, args ...any) ([]int64, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, rows.Err()
}

func queryStrings(ctx context.Context, q catalog.Querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, rows.Err()
}

// match finds the order of a study, in the order IHE RAD TF-1 §4.3 (SWF)
// makes reliable: the Study Instance UID the worklist handed the modality,
// the Accession Number, the MPPS that named the study, and only when
// enabled a heuristic on Patient ID, modality and date. A key that points
// at more than one order is no match: a person decides.
func (w *Workflow) match(ctx context.Context, tx *catalog.Tx, s studyRow) (int64, string, error) {
	notCancelled := ` AND status NOT IN ('CA', 'DC')`
	ids, err := queryIDs(ctx, tx, `SELECT id FROM orders WHERE study_instance_uid = ?`+notCancelled+` ORDER BY id`, s.StudyInstanceUID)
	if err != nil {
		return 0, "", fmt.Errorf("workflow: match by Study Instance UID: %w", err)
	}
	if len(ids) == 1 {
		return ids[0], MatchStudyInstanceUID, nil
	}
	if s.AccessionNumber != "" {
		// The orders table keeps no Issuer of Accession Number: the
		// accession is taken as unique within the RIS that feeds the hub.
		ids, err = queryIDs(ctx, tx, `SELECT id FROM orders WHERE accession_number = ?`+notCancelled+` ORDER BY id`, s.AccessionNumber)
		if err != nil {
			return 0, "", fmt.Errorf("workflow: match by Accession Number: %w", err)
		}
		if len(ids) == 1 {
			return ids[0], MatchAccessionNumber, nil
		}
	}
	// MPPS references: the Performed Procedure Step that named this study
	// and the worklist items (hence orders) it performed (IHE RAD-6/RAD-7).
	ids, err = queryIDs(ctx, tx, `SELECT wi.order_ref FROM mpps m
 JOIN mpps_items mi ON mi.sop_instance_uid = m.sop_instance_uid
 JOIN worklist_items wi ON wi.id = mi.item_ref
 JOIN orders o ON o.id = wi.order_ref
 WHERE m.study_instance_uid = ? AND wi.order_ref <> 0 AND o.status NOT IN ('CA', 'DC') ORDER BY wi.order_ref`, s.StudyInstanceUID)
	if err != nil {
		return 0, "", fmt.Errorf("workflow: match by MPPS: %w", err)
	}
	if len(ids) == 1 {
		return ids[0], MatchMPPS, nil
	}
	if w.opts.HeuristicMatching && s.PatientID != "" {
		id, err := w.matchHeuristic(ctx, tx, s)
		if err != nil || id != 0 {
			return id, MatchHeuristic, err
		}
	}
	return 0, "", nil
}

// matchHeuristic matches an order of the same patient with a step of one of
// the study's modalities scheduled within the window of the study date, not
// yet linked to another study. A study without Issuer of Patient ID (many
// modalities send none) matches the identifier under any issuer.
func (w *Workflow) matchHeuristic(ctx context.Context, tx *catalog.Tx, s studyRow) (int64, error) {
	studyDay, err := time.Parse("20060102", s.StudyDate)
	if err != nil {
		return 0, nil // no date, no heuristic
	}
	rows, err := tx.QueryContext(ctx, `SELECT o.id, st.modality, st.scheduled_start FROM orders o
 JOIN order_steps st ON st.order_ref = o.id
 WHERE o.patient_id = ? AND (o.issuer_of_patient_id = ? OR ? = '') AND o.status NOT IN ('CA', 'DC')
 AND NOT EXISTS (SELECT 1 FROM workflow_links l WHERE l.order_ref = o.id)`, s.PatientID, s.IssuerOfPatientID, s.IssuerOfPatientID)
	if err != nil {
		return 0, fmt.Errorf("workflow: heuristic match: %w", err)
	}
	defer rows.Close()
	var found []int64
	for rows.Next() {
		var id int64
		var mod, start string
		if err := rows.Scan(&id, &mod, &start); err != nil {
			return 0, fmt.Errorf("workflow: heuristic match: %w", err)
		}
		if !slices.ContainsFunc(s.Modalities, func(m string) bool { return strings.EqualFold(m, mod) }) {
			continue
		}
		t, err := time.Parse(time.RFC3339, start)
		if err != nil {
			continue
		}
		// The study date has no time: compare with the whole day.
		d := t.Sub(studyDay)
		if d < -w.opts.HeuristicWindow || d > 24*time.Hour+w.opts.HeuristicWindow {
			continue
		}
		if !slices.Contains(found, id) {
			found = append(found, id)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("workflow: heuristic match: %w", err)
	}
	if len(found) == 1 {
		return found[0], nil
	}
	return 0, nil
}

// reconcile matches a study in tx and links it, or queues it as unmatched.
// cause is the id of the event (or request) that led here.
func (w *Workflow) reconcile(ctx context.Context, tx *catalog.Tx, uid, cause string, now time.Time) error {
	if err := lockStudy(ctx, tx, uid); err != nil {
		return err
	}
	s, err := loadStudy(ctx, tx, uid)
	if err != nil {
		return err
	}
	var linked int64
	err = tx.QueryRowContext(ctx, `SELECT order_ref FROM workflow_links WHERE study_instance_uid = ?`, uid).Scan(&linked)
	switch {
	case err == nil:
		// Already linked (a later stable event after more instances):
		// the new instances' demographics are corrected again.
		d, ok, err := w.coercionInTx(ctx, tx, uid)
		if err != nil || !ok {
			return err
		}
		return applyCatalog(ctx, tx, s, d, now)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("workflow: read link: %w", err)
	}
	orderID, by, err := w.match(ctx, tx, s)
	if err != nil {
		return err
	}
	if orderID == 0 {
		return w.queueUnmatched(ctx, tx, s, cause, now)
	}
	return w.link(ctx, tx, s, orderID, by, cause, now)
}

// lockStudy serializes the transactions that reconcile one study (the
// stable and procedure consumers may both get to it): PostgreSQL takes the
// study's row lock; SQLite runs one write transaction at a time anyway.
func lockStudy(ctx context.Context, tx *catalog.Tx, uid string) error {
	if tx.Backend() != "postgres" {
		return nil
	}
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM studies WHERE study_instance_uid = ? FOR UPDATE`, uid).Scan(&id)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("workflow: lock study: %w", err)
	}
	return nil
}

func (w *Workflow) coercionInTx(ctx context.Context, q catalog.Querier, uid string) (d Demographics, ok bool, err error) {
	err = q.QueryRowContext(ctx, `SELECT patient_name, patient_id, issuer_of_patient_id, patient_birth_date, patient_sex,
 accession_number FROM workflow_coercions WHERE study_instance_uid = ?`, uid).
		Scan(&d.PatientName, &d.PatientID, &d.IssuerOfPatientID, &d.PatientBirthDate, &d.PatientSex, &d.AccessionNumber)
	if errors.Is(err, sql.ErrNoRows) {
		return d, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("workflow: read coercion: %w", err)
	}
	return d, true, nil
}

func (w *Workflow) queueUnmatched(ctx context.Context, tx *catalog.Tx, s studyRow, cause string, now time.Time) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO workflow_unmatched (study_instance_uid, accession_number, patient_id,
 issuer_of_patient_id, study_date, modalities_in_study, queued_at) VALUES (?, ?, ?, ?, ?, ?, ?)
 ON CONFLICT (study_instance_uid) DO NOTHING`, s.StudyInstanceUID, s.AccessionNumber, s.PatientID,
		s.IssuerOfPatientID, s.StudyDate, strings.Join(s.Modalities, `\`), tx.Time(now))
	if err != nil {
		return fmt.Errorf("workflow: queue unmatched: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil // already queued and announced
	}
	e, err := emit(ctx, tx, events.TypeStudyUnmatched, s.StudyInstanceUID, Unmatched{
		StudyInstanceUID: s.StudyInstanceUID, AccessionNumber: s.AccessionNumber, PatientID: s.PatientID,
		IssuerOfPatientID: s.IssuerOfPatientID, StudyDate: s.StudyDate, ModalitiesInStudy: s.Modalities, QueuedAt: now.UTC(),
	}, s.StudyInstanceUID, cause)
	if err != nil {
		return err
	}
	return audit(ctx, tx, s.StudyInstanceUID, "unmatched", e.ID, "no order matched", now)
}

// demographicsOf returns what the study should say: the HIS's registry
// for the order's patient when it knows them, else the order's PID, with the
// order's accession.
func demographicsOf(ctx context.Context, q catalog.Querier, o orderRow) (Demographics, error) {
	d := o.Patient
	if reg, ok, err := registryDemographics(ctx, q, d.PatientID, d.IssuerOfPatientID); err != nil {
		return d, err
	} else if ok {
		if reg.PatientName != "" {
			d.PatientName = reg.PatientName
		}
		if reg.PatientBirthDate != "" {
			d.PatientBirthDate = reg.PatientBirthDate
		}
		if reg.PatientSex != "" {
			d.PatientSex = reg.PatientSex
		}
	}
	d.AccessionNumber = o.AccessionNumber
	return d, nil
}

// link links a study to an order: the catalog is corrected, the coercion
// row written, the reading task created, the charge posted when billing
// follows reconciliation, and ih.study.reconciled and ih.report.requested
// committed.
func (w *Workflow) link(ctx context.Context, tx *catalog.Tx, s studyRow, orderID int64, by, cause string, now time.Time) error {
	o, err := loadOrder(ctx, tx, orderID)
	if err != nil {
		return err
	}
	d, err := demographicsOf(ctx, tx, o)
	if err != nil {
		return err
	}
	nowArg := tx.Time(now)
	if _, err := tx.ExecContext(ctx, `INSERT INTO workflow_links (study_instance_uid, order_ref, matched_by, linked_at, updated_at)
 VALUES (?, ?, ?, ?, ?) ON CONFLICT (study_instance_uid) DO UPDATE SET order_ref = excluded.order_ref,
 matched_by = excluded.matched_by, updated_at = excluded.updated_at`, s.StudyInstanceUID, orderID, by, nowArg, nowArg); err != nil {
		return fmt.Errorf("workflow: link: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM workflow_unmatched WHERE study_instance_uid = ?`, s.StudyInstanceUID); err != nil {
		return fmt.Errorf("workflow: dequeue: %w", err)
	}
	if err := putCoercion(ctx, tx, s.StudyInstanceUID, d, now); err != nil {
		return err
	}
	if err := applyCatalog(ctx, tx, s, d, now); err != nil {
		return err
	}
	rec := Reconciled{StudyInstanceUID: s.StudyInstanceUID, OrderID: orderID, MatchedBy: by, Reason: ReasonMatched,
		PlacerOrderNumber: o.PlacerOrderNumber, FillerOrderNumber: o.FillerOrderNumber, Coercion: d}
	e, err := emit(ctx, tx, events.TypeStudyReconciled, s.StudyInstanceUID, rec, s.StudyInstanceUID, strconv.FormatInt(orderID, 10), cause)
	if err != nil {
		return err
	}
	if err := audit(ctx, tx, s.StudyInstanceUID, "reconciled", e.ID, "order "+strconv.FormatInt(orderID, 10)+" by "+by, now); err != nil {
		return err
	}
	// Reading task (one per study; a study linked by hand to another
	// order moves its task to that order).
	res, err := tx.ExecContext(ctx, `INSERT INTO reading_tasks (study_instance_uid, order_ref, priority, status, requested_at, updated_at)
 VALUES (?, ?, ?, 'awaiting', ?, ?) ON CONFLICT (study_instance_uid) DO UPDATE SET order_ref = excluded.order_ref,
 priority = excluded.priority, updated_at = excluded.updated_at WHERE reading_tasks.order_ref <> excluded.order_ref`,
		s.StudyInstanceUID, orderID, o.Priority, nowArg, nowArg)
	if err != nil {
		return fmt.Errorf("workflow: reading task: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		re, err := emit(ctx, tx, events.TypeReportRequested, s.StudyInstanceUID, ReportRequested{
			StudyInstanceUID: s.StudyInstanceUID, OrderID: orderID, AccessionNumber: o.AccessionNumber, Priority: o.Priority,
		}, s.StudyInstanceUID, strconv.FormatInt(orderID, 10))
		if err != nil {
			return err
		}
		if err := audit(ctx, tx, s.StudyInstanceUID, "report-requested", re.ID, "", now); err != nil {
			return err
		}
	}
	if w.billOnReconcile(s.Modalities) {
		c, err := chargeFor(ctx, tx, o, d)
		if err != nil {
			return err
		}
		c.Key = "study:" + s.StudyInstanceUID + ":" + strconv.FormatInt(orderID, 10)
		c.StudyInstanceUID = s.StudyInstanceUID
		c.PerformedAt = s.StudyDate
		if err := w.postCharge(ctx, tx, c, now); err != nil {
			return err
		}
	}
	return nil
}

// handleReceived records the first instance of a study in its audit
// trail. Later instances only read: the write transaction is taken once
// per study, not once per instance.
func (w *Workflow) handleReceived(ctx context.Context, e events.Event, _ events.Delivery) error {
	var in ingest.InstanceStored
	if err := e.DecodeData(&in); err != nil || in.StudyInstanceUID == "" {
		return events.Permanent(fmt.Errorf("workflow: instance stored data: %v", err))
	}
	var n int
	err := w.rt.Catalog.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		return tx.QueryRowContext(ctx, `SELECT count(*) FROM workflow_audit WHERE study_instance_uid = ? AND kind = 'received'`,
			in.StudyInstanceUID).Scan(&n)
	})
	if err != nil || n > 0 {
		return err
	}
	// The entry bears the time the instance was stored, not when this
	// consumer got to it, so the timeline keeps the order of the facts.
	at := e.Time
	if at.IsZero() {
		at = w.opts.Now()
	}
	return w.inTx(ctx, func(ctx context.Context, tx *catalog.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO workflow_audit (study_instance_uid, kind, event_id, detail, recorded_at)
 SELECT ?, 'received', ?, ?, ? WHERE NOT EXISTS
 (SELECT 1 FROM workflow_audit WHERE study_instance_uid = ? AND kind = 'received')`,
			in.StudyInstanceUID, e.ID, "first instance from "+in.CallingAE, tx.Time(at), in.StudyInstanceUID)
		if err != nil {
			return fmt.Errorf("workflow: audit: %w", err)
		}
		return nil
	})
}

// handleStable reconciles a study that stopped receiving instances.
func (w *Workflow) handleStable(ctx context.Context, e events.Event, _ events.Delivery) error {
	var st ingest.StudyStable
	if err := e.DecodeData(&st); err != nil || st.StudyInstanceUID == "" {
		return events.Permanent(fmt.Errorf("workflow: study stable data: %v", err))
	}
	now := w.opts.Now()
	return w.inTx(ctx, func(ctx context.Context, tx *catalog.Tx) error {
		if ok, err := markApplied(ctx, tx, StableConsumer, e.ID, now); err != nil || !ok {
			return err
		}
		if err := audit(ctx, tx, st.StudyInstanceUID, "stable", e.ID,
			fmt.Sprintf("%d series, %d instances", st.NumberOfSeries, st.NumberOfInstances), now); err != nil {
			return err
		}
		return w.reconcile(ctx, tx, st.StudyInstanceUID, e.ID, now)
	})
}

// handleOrder re-runs matching for queued studies an order names, and
// reverses the charges of a cancelled order.
func (w *Workflow) handleOrder(ctx context.Context, e events.Event, _ events.Delivery) error {
	var o risbridge.OrderEvent
	if err := e.DecodeData(&o); err != nil || o.ID == 0 {
		return events.Permanent(fmt.Errorf("workflow: order data: %v", err))
	}
	now := w.opts.Now()
	return w.inTx(ctx, func(ctx context.Context, tx *catalog.Tx) error {
		if ok, err := markApplied(ctx, tx, OrdersConsumer, e.ID, now); err != nil || !ok {
			return err
		}
		if e.Type == events.TypeOrderCancelled || slices.Contains(orderStatusCancelled, o.Status) {
			return w.reverseOrderCharges(ctx, tx, o.ID, e.ID, now)
		}
		if err := w.refreshLinked(ctx, tx, o.ID, e.ID, now); err != nil {
			return err
		}
		var uids []string
		var err error
		if o.StudyInstanceUID != "" || o.AccessionNumber != "" {
			uids, err = queryStrings(ctx, tx, `SELECT study_instance_uid FROM workflow_unmatched
 WHERE (study_instance_uid = ? AND ? <> '') OR (accession_number = ? AND ? <> '') ORDER BY study_instance_uid`,
				o.StudyInstanceUID, o.StudyInstanceUID, o.AccessionNumber, o.AccessionNumber)
			if err != nil {
				return fmt.Errorf("workflow: unmatched studies of order: %w", err)
			}
		}
		if w.opts.HeuristicMatching && o.Patient.PatientID != "" {
			more, err := queryStrings(ctx, tx, `SELECT study_instance_uid FROM workflow_unmatched
 WHERE patient_id = ? AND (issuer_of_patient_id = ? OR issuer_of_patient_id = '') ORDER BY study_instance_uid`,
				o.Patient.PatientID, o.Patient.IssuerOfPatientID)
			if err != nil {
				return fmt.Errorf("workflow: unmatched studies of patient: %w", err)
			}
			for _, u := range more {
				if !slices.Contains(uids, u) {
					uids = append(uids, u)
				}
			}
		}
		for _, uid := range uids {
			if err := w.reconcile(ctx, tx, uid, e.ID, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// Link links a queued (or any) study to an order by hand and reconciles it
// (POST /api/reconciliation/unmatched/{study}/link).
func (w *Workflow) Link(ctx context.Context, studyUID string, orderID int64) error {
	if studyUID == "" || orderID <= 0 {
		return fmt.Errorf("%w: study and order id required", ErrInvalid)
	}
	now := w.opts.Now()
	return w.inTx(ctx, func(ctx context.Context, tx *catalog.Tx) error {
		s, err := loadStudy(ctx, tx, studyUID)
		if err != nil {
			return err
		}
		if _, err := loadOrder(ctx, tx, orderID); err != nil {
			return err
		}
		var cur int64
		err = tx.QueryRowContext(ctx, `SELECT order_ref FROM workflow_links WHERE study_instance_uid = ?`, studyUID).Scan(&cur)
		if err == nil && cur == orderID {
			return nil // linked already: a repeated request changes nothing
		}
		return w.link(ctx, tx, s, orderID, MatchManual, "manual:"+studyUID+":"+strconv.FormatInt(orderID, 10), now)
	})
}

// identifierFor picks the identifier of the same assigning authority as
// issuer, else the first.
func identifierFor(ids []hisbridge.Identifier, issuer string) (hisbridge.Identifier, bool) {
	for _, id := range ids {
		if id.AssigningAuthority == issuer {
			return id, true
		}
	}
	if len(ids) > 0 {
		return ids[0], true
	}
	return hisbridge.Identifier{}, false
}

// handlePatient carries ADT updates (A08, A31) and merges (A40) into the
// studies of the patient (IHE RAD-12 Patient Update, PIR).
func (w *Workflow) handlePatient(ctx context.Context, e events.Event, _ events.Delivery) error {
	if e.Type != events.TypePatientUpdated && e.Type != events.TypePatientMerged {
		return nil // ih.patient.created: studies arrive later and match then
	}
	var p hisbridge.PatientEvent
	if err := e.DecodeData(&p); err != nil {
		return events.Permanent(fmt.Errorf("workflow: patient data: %v", err))
	}
	now := w.opts.Now()
	name := personName(p.Name.Family, p.Name.Given, p.Name.Middle, p.Name.Prefix, p.Name.Suffix)
	return w.inTx(ctx, func(ctx context.Context, tx *catalog.Tx) error {
		if ok, err := markApplied(ctx, tx, PatientsConsumer, e.ID, now); err != nil || !ok {
			return err
		}
		reason, lookup := ReasonPatientUpdated, p.Identifiers
		if e.Type == events.TypePatientMerged {
			reason, lookup = ReasonPatientMerged, p.PriorIdentifiers
		}
		for _, id := range lookup {
			// Linked studies: refresh the coercion and the catalog.
			uids, err := queryStrings(ctx, tx, `SELECT study_instance_uid FROM workflow_coercions
 WHERE patient_id = ? AND issuer_of_patient_id = ? ORDER BY study_instance_uid`, id.IDNumber, id.AssigningAuthority)
			if err != nil {
				return fmt.Errorf("workflow: studies of patient: %w", err)
			}
			// Studies never reconciled but filed under the identifier:
			// a merge moves them too (and they get a coercion row, as the
			// files still carry the retired identifier).
			if reason == ReasonPatientMerged {
				more, err := queryStrings(ctx, tx, `SELECT s.study_instance_uid FROM studies s JOIN patients pt ON pt.id = s.patient_ref
 WHERE pt.patient_id = ? AND pt.issuer_of_patient_id = ? ORDER BY s.study_instance_uid`, id.IDNumber, id.AssigningAuthority)
				if err != nil {
					return fmt.Errorf("workflow: studies of patient: %w", err)
				}
				for _, u := range more {
					if !slices.Contains(uids, u) {
						uids = append(uids, u)
					}
				}
			}
			for _, uid := range uids {
				if err := w.repatient(ctx, tx, uid, p, id, name, reason, e.ID, now); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// repatient applies a patient change to one study.
func (w *Workflow) repatient(ctx context.Context, tx *catalog.Tx, uid string, p hisbridge.PatientEvent, matched hisbridge.Identifier,
	name, reason, cause string, now time.Time) error {
	s, err := loadStudy(ctx, tx, uid)
	if err != nil {
		return err
	}
	d, _, err := w.coercionInTx(ctx, tx, uid)
	if err != nil {
		return err
	}
	if d.AccessionNumber == "" {
		d.AccessionNumber = s.AccessionNumber
	}
	id := matched
	if reason == ReasonPatientMerged {
		if sid, ok := identifierFor(p.Identifiers, matched.AssigningAuthority); ok {
			id = sid
		}
	}
	d.PatientID, d.IssuerOfPatientID = id.IDNumber, id.AssigningAuthority
	if name != "" {
		d.PatientName = name
	}
	if p.BirthDate != "" {
		d.PatientBirthDate = p.BirthDate
	}
	if p.Sex != "" {
		d.PatientSex = p.Sex
	}
	if err := putCoercion(ctx, tx, uid, d, now); err != nil {
		return err
	}
	if err := applyCatalog(ctx, tx, s, d, now); err != nil {
		return err
	}
	rec := Reconciled{StudyInstanceUID: uid, Reason: reason, Coercion: d}
	var by string
	if err := tx.QueryRowContext(ctx, `SELECT order_ref, matched_by FROM workflow_links WHERE study_instance_uid = ?`, uid).
		Scan(&rec.OrderID, &by); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("workflow: read link: %w", err)
	}
	rec.MatchedBy = by
	e, err := emit(ctx, tx, events.TypeStudyReconciled, uid, rec, uid, reason, cause)
	if err != nil {
		return err
	}
	return audit(ctx, tx, uid, reason, e.ID, "", now)
}

// refreshLinked carries a changed order (IHE RAD-13 Procedure Update: the
// patient or the accession corrected by the RIS) into the studies linked
// to it.
func (w *Workflow) refreshLinked(ctx context.Context, tx *catalog.Tx, orderID int64, cause string, now time.Time) error {
	uids, err := queryStrings(ctx, tx, `SELECT study_instance_uid FROM workflow_links WHERE order_ref = ? ORDER BY study_instance_uid`, orderID)
	if err != nil || len(uids) == 0 {
		return err
	}
	o, err := loadOrder(ctx, tx, orderID)
	if err != nil {
		return err
	}
	d, err := demographicsOf(ctx, tx, o)
	if err != nil {
		return err
	}
	for _, uid := range uids {
		cur, _, err := w.coercionInTx(ctx, tx, uid)
		if err != nil {
			return err
		}
		want := d
		var merged int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM workflow_audit WHERE study_instance_uid = ? AND kind = ?`,
			uid, ReasonPatientMerged).Scan(&merged); err != nil {
			return fmt.Errorf("workflow: read audit: %w", err)
		}
		if merged > 0 {
			// The HIS merged the patient after the order was placed: the
			// surviving identity stands, the order still names the retired
			// one. Only the order's own attribute follows.
			want = cur
			want.AccessionNumber = d.AccessionNumber
		}
		if cur == want {
			continue
		}
		d := want
		s, err := loadStudy(ctx, tx, uid)
		if err != nil {
			return err
		}
		if err := putCoercion(ctx, tx, uid, d, now); err != nil {
			return err
		}
		if err := applyCatalog(ctx, tx, s, d, now); err != nil {
			return err
		}
		var by string
		if err := tx.QueryRowContext(ctx, `SELECT matched_by FROM workflow_links WHERE study_instance_uid = ?`, uid).Scan(&by); err != nil {
			return fmt.Errorf("workflow: read link: %w", err)
		}
		e, err := emit(ctx, tx, events.TypeStudyReconciled, uid, Reconciled{StudyInstanceUID: uid, OrderID: orderID, MatchedBy: by,
			Reason: ReasonOrderUpdated, PlacerOrderNumber: o.PlacerOrderNumber, FillerOrderNumber: o.FillerOrderNumber, Coercion: d},
			uid, ReasonOrderUpdated, cause)
		if err != nil {
			return err
		}
		if err := audit(ctx, tx, uid, ReasonOrderUpdated, e.ID, "", now); err != nil {
			return err
		}
	}
	return nil
}
