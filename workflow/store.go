package workflow

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/outbox"
	"github.com/imaginghub/imaginghub/workflow/coerce"
)

// scanTime reads a timestamp column: fixed-layout text on SQLite, a
// time.Time on PostgreSQL, NULL as the zero time.
type scanTime struct{ t time.Time }

func (s *scanTime) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		s.t = time.Time{}
	case time.Time:
		s.t = v.UTC()
	case string:
		return s.parse(v)
	case []byte:
		return s.parse(string(v))
	default:
		return fmt.Errorf("workflow: cannot scan %T as a timestamp", v)
	}
	return nil
}

func (s *scanTime) parse(v string) error {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return fmt.Errorf("workflow: timestamp %q: %w", v, err)
	}
	s.t = t.UTC()
	return nil
}

// markApplied records that consumer applied the event with id in tx. It
// reports false when it had been applied already: the caller then changes
// nothing.
func markApplied(ctx context.Context, tx *catalog.Tx, consumer, id string, now time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO workflow_events (consumer, event_id, applied_at) VALUES (?, ?, ?)
 ON CONFLICT (consumer, event_id) DO NOTHING`, consumer, id, tx.Time(now))
	if err != nil {
		return false, fmt.Errorf("workflow: record event: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("workflow: record event: %w", err)
	}
	return n == 1, nil
}

// emitted collects the events a transaction committed to the outbox, so
// that inTx can publish them as soon as it commits.
type emitted struct{ events []events.Event }

type emittedKey struct{}

// emit commits an event to the outbox with the transaction.
func emit(ctx context.Context, tx *catalog.Tx, typ, subject string, data any, key ...string) (events.Event, error) {
	e, err := events.New(Source, typ, subject, data, key...)
	if err != nil {
		return events.Event{}, fmt.Errorf("workflow: %s: %w", typ, err)
	}
	m, err := outbox.Message(e)
	if err != nil {
		return events.Event{}, fmt.Errorf("workflow: %s: %w", typ, err)
	}
	tx.AppendOutbox(m)
	if col, ok := ctx.Value(emittedKey{}).(*emitted); ok {
		col.events = append(col.events, e)
	}
	return e, nil
}

// audit adds an entry to a study's timeline; the same kind and event id is
// recorded once.
func audit(ctx context.Context, tx *catalog.Tx, studyUID, kind, eventID, detail string, at time.Time) error {
	if studyUID == "" {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO workflow_audit (study_instance_uid, kind, event_id, detail, recorded_at)
 VALUES (?, ?, ?, ?, ?) ON CONFLICT (study_instance_uid, kind, event_id) DO NOTHING`,
		studyUID, kind, eventID, detail, tx.Time(at))
	if err != nil {
		return fmt.Errorf("workflow: audit: %w", err)
	}
	return nil
}

// controlID derives a message control id (MSH-10, at most 20 characters in
// HL7 2.5.1 §2.15.9.10) from the fact a message reports, so that enqueueing
// it again is recognised as the same message (hl7out drops repeats of
// destination + MSH-3 + MSH-4 + MSH-10).
func controlID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return "IH" + strings.ToUpper(hex.EncodeToString(sum[:9]))
}

// studyRow is what reconciliation reads of a catalog study.
type studyRow struct {
	StudyInstanceUID  string
	PatientRef        int64
	AccessionNumber   string
	IssuerOfAccession string
	StudyDate         string
	Modalities        []string
	PatientID         string
	IssuerOfPatientID string
}

func loadStudy(ctx context.Context, q catalog.Querier, uid string) (studyRow, error) {
	s := studyRow{StudyInstanceUID: uid}
	var mods string
	err := q.QueryRowContext(ctx, `SELECT s.patient_ref, s.accession_number, s.issuer_of_accession_number, s.study_date,
 s.modalities_in_study, p.patient_id, p.issuer_of_patient_id
 FROM studies s JOIN patients p ON p.id = s.patient_ref WHERE s.study_instance_uid = ?`, uid).
		Scan(&s.PatientRef, &s.AccessionNumber, &s.IssuerOfAccession, &s.StudyDate, &mods, &s.PatientID, &s.IssuerOfPatientID)
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("%w: study %s", ErrNotFound, uid)
	}
	if err != nil {
		return s, fmt.Errorf("workflow: read study: %w", err)
	}
	if mods != "" {
		s.Modalities = strings.Split(mods, `\`)
	}
	return s, nil
}

// orderRow is what the workflow reads of a ris-bridge order.
type orderRow struct {
	ID                   int64
	PlacerOrderNumber    string
	FillerOrderNumber    string
	AccessionNumber      string
	RequestedProcedureID string
	StudyInstanceUID     string
	ProcedureCode        string
	ProcedureText        string
	ProcedureScheme      string
	Priority             string
	OrderingProvider     string
	Status               string
	Patient              Demographics
	VisitNumber          string
	StationName          string
	Modality             string
}

func loadOrder(ctx context.Context, q catalog.Querier, id int64) (orderRow, error) {
	o := orderRow{ID: id}
	err := q.QueryRowContext(ctx, `SELECT placer_order_number, filler_order_number, accession_number, requested_procedure_id,
 study_instance_uid, requested_procedure_code, requested_procedure_text, requested_procedure_coding_scheme,
 priority, ordering_provider, status, patient_id, issuer_of_patient_id, patient_name, patient_birth_date,
 patient_sex, visit_number FROM orders WHERE id = ?`, id).
		Scan(&o.PlacerOrderNumber, &o.FillerOrderNumber, &o.AccessionNumber, &o.RequestedProcedureID,
			&o.StudyInstanceUID, &o.ProcedureCode, &o.ProcedureText, &o.ProcedureScheme, &o.Priority,
			&o.OrderingProvider, &o.Status, &o.Patient.PatientID, &o.Patient.IssuerOfPatientID,
			&o.Patient.PatientName, &o.Patient.PatientBirthDate, &o.Patient.PatientSex, &o.VisitNumber)
	if errors.Is(err, sql.ErrNoRows) {
		return o, fmt.Errorf("%w: order %d", ErrNotFound, id)
	}
	if err != nil {
		return o, fmt.Errorf("workflow: read order: %w", err)
	}
	o.Patient.AccessionNumber = o.AccessionNumber
	// The first step's station and modality stand for where the
	// procedure was scheduled to be performed.
	err = q.QueryRowContext(ctx, `SELECT scheduled_station_name, scheduled_station_ae_title, modality FROM order_steps
 WHERE order_ref = ? ORDER BY step_index LIMIT 1`, id).Scan(&o.StationName, new(string), &o.Modality)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return o, fmt.Errorf("workflow: read order steps: %w", err)
	}
	return o, nil
}

// registryDemographics returns the HIS's demographics of a patient
// identifier, following a merge to the surviving record; ok is false when
// the registry does not know the identifier.
func registryDemographics(ctx context.Context, q catalog.Querier, id, issuer string) (d Demographics, ok bool, err error) {
	var ref int64
	err = q.QueryRowContext(ctx, `SELECT patient_ref FROM registry_patient_identifiers WHERE id_number = ? AND assigning_authority = ?`,
		id, issuer).Scan(&ref)
	if errors.Is(err, sql.ErrNoRows) {
		return d, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("workflow: read registry: %w", err)
	}
	for range 4 { // a short chain of merges at most
		var fam, giv, mid, suf, pre string
		var merged sql.NullInt64
		err = q.QueryRowContext(ctx, `SELECT family_name, given_name, middle_name, name_suffix, name_prefix, birth_date, sex, merged_into
 FROM registry_patients WHERE id = ?`, ref).Scan(&fam, &giv, &mid, &suf, &pre, &d.PatientBirthDate, &d.PatientSex, &merged)
		if err != nil {
			return d, false, fmt.Errorf("workflow: read registry: %w", err)
		}
		if merged.Valid && merged.Int64 != 0 && merged.Int64 != ref {
			ref = merged.Int64
			continue
		}
		d.PatientName = personName(fam, giv, mid, pre, suf)
		break
	}
	d.PatientID, d.IssuerOfPatientID = id, issuer
	return d, true, nil
}

// personName builds a DICOM PN from its components (PS3.5 §6.2.1.1:
// family^given^middle^prefix^suffix), trailing empty components dropped.
func personName(family, given, middle, prefix, suffix string) string {
	return strings.TrimRight(strings.Join([]string{family, given, middle, prefix, suffix}, "^"), "^")
}

// applyCatalog makes the catalog's patient and study rows of a study agree
// with d: C-FIND and QIDO-RS read them. The study moves to the patient row
// of d's identifier (created if needed); a patient row left without studies
// is removed.
func applyCatalog(ctx context.Context, tx *catalog.Tx, s studyRow, d Demographics, now time.Time) error {
	nowArg := tx.Time(now)
	var ref int64
	if d.PatientID != "" {
		err := tx.QueryRowContext(ctx, `INSERT INTO patients
 (patient_id, issuer_of_patient_id, patient_name, patient_birth_date, patient_sex, created_at, updated_at)
 VALUES (?, ?, ?, ?, ?, ?, ?)
 ON CONFLICT (patient_id, issuer_of_patient_id) WHERE patient_id <> '' DO UPDATE SET
 patient_name = excluded.patient_name, patient_birth_date = excluded.patient_birth_date,
 patient_sex = excluded.patient_sex, updated_at = excluded.updated_at
 RETURNING id`, d.PatientID, d.IssuerOfPatientID, d.PatientName, d.PatientBirthDate, d.PatientSex, nowArg, nowArg).Scan(&ref)
		if err != nil {
			return fmt.Errorf("workflow: coerce patient: %w", err)
		}
	} else {
		ref = s.PatientRef
		if _, err := tx.ExecContext(ctx, `UPDATE patients SET patient_name = ?, patient_birth_date = ?, patient_sex = ?, updated_at = ?
 WHERE id = ?`, d.PatientName, d.PatientBirthDate, d.PatientSex, nowArg, ref); err != nil {
			return fmt.Errorf("workflow: coerce patient: %w", err)
		}
	}
	acc := d.AccessionNumber
	if acc == "" {
		acc = s.AccessionNumber
	}
	if _, err := tx.ExecContext(ctx, `UPDATE studies SET patient_ref = ?, accession_number = ?, updated_at = ? WHERE study_instance_uid = ?`,
		ref, acc, nowArg, s.StudyInstanceUID); err != nil {
		return fmt.Errorf("workflow: coerce study: %w", err)
	}
	if ref != s.PatientRef {
		if _, err := tx.ExecContext(ctx, `DELETE FROM patients WHERE id = ? AND NOT EXISTS (SELECT 1 FROM studies WHERE patient_ref = ?)`,
			s.PatientRef, s.PatientRef); err != nil {
			return fmt.Errorf("workflow: drop unused patient: %w", err)
		}
	}
	return nil
}

// putCoercion stores the values retrievals serve for a study.
func putCoercion(ctx context.Context, tx *catalog.Tx, uid string, d Demographics, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO workflow_coercions (study_instance_uid, patient_name, patient_id, issuer_of_patient_id,
 patient_birth_date, patient_sex, accession_number, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
 ON CONFLICT (study_instance_uid) DO UPDATE SET patient_name = excluded.patient_name, patient_id = excluded.patient_id,
 issuer_of_patient_id = excluded.issuer_of_patient_id, patient_birth_date = excluded.patient_birth_date,
 patient_sex = excluded.patient_sex, accession_number = excluded.accession_number, updated_at = excluded.updated_at`,
		uid, d.PatientName, d.PatientID, d.IssuerOfPatientID, d.PatientBirthDate, d.PatientSex, d.AccessionNumber, tx.Time(now))
	if err != nil {
		return fmt.Errorf("workflow: store coercion: %w", err)
	}
	return nil
}

// Coercion returns the values retrievals of a study serve in place of the
// stored ones; ok is false when the study has none (it was never
// reconciled).
func Coercion(ctx context.Context, c *catalog.Catalog, studyUID string) (d Demographics, ok bool, err error) {
	v, ok, err := coerce.LookupCatalog(ctx, c, studyUID)
	if err != nil || !ok {
		return d, false, err
	}
	return Demographics{PatientName: v.PatientName, PatientID: v.PatientID, IssuerOfPatientID: v.IssuerOfPatientID,
		PatientBirthDate: v.PatientBirthDate, PatientSex: v.PatientSex, AccessionNumber: v.AccessionNumber}, true, nil
}

// inTx runs fn in a catalog transaction and, once it committed, publishes
// the events it emitted at once instead of leaving them to the outbox
// relay's next pass: the relay publishes them again later with the same
// Nats-Msg-Id, which JetStream's duplicate window drops, and it still
// publishes them if this process dies first.
func (w *Workflow) inTx(ctx context.Context, fn func(ctx context.Context, tx *catalog.Tx) error) error {
	col := &emitted{}
	tctx := context.WithValue(ctx, emittedKey{}, col)
	err := w.rt.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
		col.events = col.events[:0] // a retried transaction starts over
		return fn(tctx, tx)
	})
	if err != nil {
		return err
	}
	for _, e := range col.events {
		w.emitted.WithLabelValues(e.Type).Inc()
	}
	if len(col.events) > 0 {
		if err := w.rt.Bus.PublishBatch(ctx, col.events); err != nil {
			w.log.Debug("direct publish failed; the outbox relay publishes", "err", err)
		}
	}
	return nil
}
