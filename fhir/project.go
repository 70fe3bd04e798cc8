package fhir

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/events"
	hisbridge "github.com/imaginghub/imaginghub/his-bridge"
	"github.com/imaginghub/imaginghub/hl7intake"
	"github.com/imaginghub/imaginghub/ingest"
	risbridge "github.com/imaginghub/imaginghub/ris-bridge"
)

// The projection keeps the resource table in step with the hub's events;
// every handler rebuilds whole resources from the catalog, so a
// redelivered or reordered event changes nothing twice.

// StudyReconciled is the data of ih.study.reconciled as the projection
// reads it: the study, the order it was matched with and the patient
// demographics the study was coerced to (IHE SWF / PIR).
type StudyReconciled struct {
	StudyInstanceUID string               `json:"studyInstanceUID"`
	OrderID          int64                `json:"orderId,omitempty"`
	Coercion         risbridge.PatientRef `json:"coercion"`
}

func (f *FHIR) onStudyStable(ctx context.Context, e events.Event, _ events.Delivery) error {
	var d ingest.StudyStable
	if err := json.Unmarshal(e.Data, &d); err != nil || d.StudyInstanceUID == "" {
		return events.Permanent(fmt.Errorf("fhir: %s data: %v", e.Type, err))
	}
	return f.RebuildStudy(ctx, d.StudyInstanceUID)
}

func (f *FHIR) onOrder(ctx context.Context, e events.Event, _ events.Delivery) error {
	var d risbridge.OrderEvent
	if err := json.Unmarshal(e.Data, &d); err != nil || d.ID == 0 {
		return events.Permanent(fmt.Errorf("fhir: %s data: %v", e.Type, err))
	}
	// The order as it stands now, not as this event saw it: a redelivered
	// older event must not undo a newer change.
	o := &d.Order
	err := f.rt.Catalog.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		cur, err := loadOrder(ctx, tx, d.ID, "", "")
		if cur != nil {
			o = cur
		}
		return err
	})
	if err != nil {
		return err
	}
	subject, err := f.ensurePatient(ctx, PatientFromRef(o.Patient))
	if err != nil {
		return err
	}
	st, _, err := f.store.Put(ctx, ServiceRequest(o, subject))
	if err != nil {
		return err
	}
	if err := f.changed(ctx, st); err != nil {
		return err
	}
	if d.StudyInstanceUID != "" {
		return f.RebuildStudy(ctx, d.StudyInstanceUID)
	}
	return nil
}

func (f *FHIR) onPatient(ctx context.Context, e events.Event, _ events.Delivery) error {
	var d hisbridge.PatientEvent
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return events.Permanent(fmt.Errorf("fhir: %s data: %w", e.Type, err))
	}
	in := PatientInput{Identifiers: d.Identifiers, Name: d.Name, BirthDate: d.BirthDate, Sex: d.Sex, Address: d.Address, Phone: d.Phone}
	// The registry's record as it stands now, not as this event saw it.
	if err := f.rt.Catalog.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		return loadRegistryPatient(ctx, tx, d.ID, &in)
	}); err != nil {
		return err
	}
	id, err := f.patientIDFor(ctx, in.Identifiers, false)
	if err != nil || id == "" {
		return events.Permanent(fmt.Errorf("fhir: %s: patient without identifiers", e.Type))
	}
	if len(d.PriorIdentifiers) > 0 {
		// IHE PIR merge: the retired record points to the survivor.
		prior, err := f.patientIDFor(ctx, d.PriorIdentifiers, false)
		if err != nil {
			return err
		}
		if prior != "" && prior != id {
			in.Replaces = []string{"Patient/" + prior}
			old := PatientInput{Identifiers: d.PriorIdentifiers, ReplacedBy: "Patient/" + id}
			if st, _, err := f.store.Put(ctx, Patient(prior, old)); err != nil {
				return err
			} else if err := f.changed(ctx, st); err != nil {
				return err
			}
		}
	}
	st, _, err := f.store.Put(ctx, Patient(id, in))
	if err != nil {
		return err
	}
	if err := f.changed(ctx, st); err != nil {
		return err
	}
	// The studies of a merged-away patient now belong to the survivor.
	for _, prior := range in.Replaces {
		q, err := ParseQuery("ImagingStudy", map[string][]string{"patient": {prior}, "_count": {strconv.Itoa(MaxCount)}})
		if err != nil {
			return err
		}
		studies, _, err := f.store.Search(ctx, q)
		if err != nil {
			return err
		}
		for _, s := range studies {
			if err := f.RebuildStudy(ctx, s.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *FHIR) onReport(ctx context.Context, e events.Event, _ events.Delivery) error {
	if e.Type != events.TypeReportReceived {
		return nil
	}
	var d risbridge.ReportEvent
	if err := json.Unmarshal(e.Data, &d); err != nil || d.ID == 0 {
		return events.Permanent(fmt.Errorf("fhir: %s data: %v", e.Type, err))
	}
	subject, err := f.ensurePatient(ctx, PatientFromRef(d.Patient))
	if err != nil {
		return err
	}
	in := ReportInput{Report: d.Report, Subject: subject, Issued: e.Time}
	if d.OrderID != 0 {
		in.BasedOn = "ServiceRequest/" + ServiceRequestID(d.OrderID)
	}
	if d.StudyInstanceUID != "" {
		in.ImagingStudy = "ImagingStudy/" + ImagingStudyID(d.StudyInstanceUID)
	}
	st, _, err := f.store.Put(ctx, DiagnosticReport(in))
	if err != nil {
		return err
	}
	return f.changed(ctx, st)
}

func (f *FHIR) onReconciled(ctx context.Context, e events.Event, _ events.Delivery) error {
	if e.Type != events.TypeStudyReconciled {
		return nil
	}
	var d StudyReconciled
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return events.Permanent(fmt.Errorf("fhir: %s data: %w", e.Type, err))
	}
	if d.StudyInstanceUID == "" {
		d.StudyInstanceUID = e.Subject
	}
	if d.StudyInstanceUID == "" {
		return events.Permanent(errors.New("fhir: reconciled event without a study"))
	}
	var patientRef string
	if d.Coercion.PatientID != "" {
		var err error
		patientRef, err = f.ensurePatient(ctx, PatientFromRef(d.Coercion))
		if err != nil {
			return err
		}
	}
	err := f.rt.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
		var order any
		if d.OrderID != 0 {
			order = d.OrderID
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM fhir_study_links WHERE study_instance_uid = ?`, d.StudyInstanceUID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO fhir_study_links (study_instance_uid, order_id, patient_reference) VALUES (?, ?, ?)`, d.StudyInstanceUID, order, patientRef)
		return err
	})
	if err != nil {
		return fmt.Errorf("fhir: study link: %w", err)
	}
	return f.RebuildStudy(ctx, d.StudyInstanceUID)
}

// patientIDFor is the resource id of the patient with one of ids: the
// existing resource if any identifier is known, else the id derived from
// the first.
func (f *FHIR) patientIDFor(ctx context.Context, ids []hisbridge.Identifier, follow bool) (string, error) {
	fids := PatientIdentifiers(ids)
	if len(fids) == 0 {
		return "", nil
	}
	var found string
	err := f.rt.Catalog.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		for _, id := range fids {
			got, err := f.store.FindByIdentifier(ctx, tx, "Patient", id.GetSystem().GetValue(), id.GetValue().GetValue())
			if err != nil {
				return err
			}
			if len(got) > 0 && id.GetSystem().GetValue() != "" {
				found = got[0]
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if found == "" {
		return PatientID(fids[0]), nil
	}
	if !follow {
		return found, nil
	}
	// Follow merges (IHE PIR): a retired record names its survivor.
	for range 8 {
		st, err := f.store.Get(ctx, "Patient", found)
		if err != nil {
			return found, nil
		}
		cr, err := Unmarshal(st.JSON)
		if err != nil {
			return found, nil
		}
		next := ""
		for _, l := range cr.GetPatient().GetLink() {
			if l.GetType().GetValue() == cpb.LinkTypeCode_REPLACED_BY {
				next = strings.TrimPrefix(refString(l.GetOther()), "Patient/")
			}
		}
		if next == "" || next == found {
			break
		}
		found = next
	}
	return found, nil
}

// ensurePatient returns the reference of the patient in, creating the
// resource from in when no patient has its identifiers yet; the registry's
// fuller record, when it comes, replaces it.
func (f *FHIR) ensurePatient(ctx context.Context, in PatientInput) (string, error) {
	id, err := f.patientIDFor(ctx, in.Identifiers, true)
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", nil
	}
	st, created, err := f.store.Create(ctx, Patient(id, in))
	if err != nil {
		return "", err
	}
	if created {
		if err := f.changed(ctx, st); err != nil {
			return "", err
		}
	}
	return "Patient/" + id, nil
}

const orderColumns = `id, placer_order_number, filler_order_number, accession_number, study_instance_uid,
	requested_procedure_code, requested_procedure_text, requested_procedure_coding_scheme, status, order_control,
	referring_provider, ordering_provider, patient_id, issuer_of_patient_id, patient_name, patient_birth_date, patient_sex,
	priority, reason, created_at`

// loadRegistryPatient reads a patient of the his-bridge's registry
// (shared catalog tables) into in; a patient it does not have leaves in
// as it is.
func loadRegistryPatient(ctx context.Context, q catalog.Querier, id int64, in *PatientInput) error {
	if id == 0 {
		return nil
	}
	var p PatientInput
	a := &p.Address
	err := q.QueryRowContext(ctx, `SELECT family_name, given_name, middle_name, name_suffix, name_prefix, birth_date, sex,
		address_street, address_other, address_city, address_state, address_postal_code, address_country, phone
		FROM registry_patients WHERE id = ?`, id).Scan(&p.Name.Family, &p.Name.Given, &p.Name.Middle, &p.Name.Suffix, &p.Name.Prefix,
		&p.BirthDate, &p.Sex, &a.Street, &a.Other, &a.City, &a.State, &a.PostalCode, &a.Country, &p.Phone)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fhir: registry patient: %w", err)
	}
	rows, err := q.QueryContext(ctx, `SELECT id_number, assigning_authority, identifier_type_code FROM registry_patient_identifiers WHERE patient_ref = ? ORDER BY id_number, assigning_authority`, id)
	if err != nil {
		return fmt.Errorf("fhir: registry identifiers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var i hisbridge.Identifier
		if err := rows.Scan(&i.IDNumber, &i.AssigningAuthority, &i.IdentifierTypeCode); err != nil {
			return err
		}
		p.Identifiers = append(p.Identifiers, i)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	// Keep the event's order of identifiers (the first names the
	// resource) for those the registry still has.
	if len(in.Identifiers) > 0 {
		var ordered []hisbridge.Identifier
		have := map[[2]string]bool{}
		for _, i := range p.Identifiers {
			have[[2]string{i.IDNumber, i.AssigningAuthority}] = true
		}
		for _, i := range in.Identifiers {
			k := [2]string{i.IDNumber, i.AssigningAuthority}
			if have[k] {
				ordered = append(ordered, i)
				delete(have, k)
			}
		}
		for _, i := range p.Identifiers {
			if have[[2]string{i.IDNumber, i.AssigningAuthority}] {
				ordered = append(ordered, i)
			}
		}
		p.Identifiers = ordered
	}
	p.ReplacedBy, p.Replaces = in.ReplacedBy, in.Replaces
	*in = p
	return nil
}

// loadOrder reads the order a study fulfils from the ris-bridge's orders
// (shared catalog tables): by id when reconciliation named one, else by
// Study Instance UID, else by accession number.
func loadOrder(ctx context.Context, q catalog.Querier, orderID int64, studyUID, accession string) (*risbridge.Order, error) {
	var row *sql.Row
	switch {
	case orderID != 0:
		row = q.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = ?`, orderID)
	case accession != "":
		row = q.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE study_instance_uid = ? OR accession_number = ? ORDER BY (study_instance_uid = ?) DESC, id DESC LIMIT 1`, studyUID, accession, studyUID)
	default:
		row = q.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE study_instance_uid = ? ORDER BY id DESC LIMIT 1`, studyUID)
	}
	var o risbridge.Order
	var created any
	err := row.Scan(&o.ID, &o.PlacerOrderNumber, &o.FillerOrderNumber, &o.AccessionNumber, &o.StudyInstanceUID,
		&o.RequestedProcedure.Code, &o.RequestedProcedure.Text, &o.RequestedProcedure.CodingScheme, &o.Status, &o.OrderControl,
		&o.ReferringProvider, &o.OrderingProvider, &o.Patient.PatientID, &o.Patient.IssuerOfPatientID, &o.Patient.PatientName,
		&o.Patient.PatientBirthDate, &o.Patient.PatientSex, &o.Priority, &o.Reason, &created)
	o.CreatedAt = hl7intake.ScanTime(created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fhir: order: %w", err)
	}
	var start string
	err = q.QueryRowContext(ctx, `SELECT scheduled_start FROM order_steps WHERE order_ref = ? ORDER BY step_index LIMIT 1`, o.ID).Scan(&start)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("fhir: order steps: %w", err)
	}
	if start != "" {
		o.Steps = []risbridge.Step{{ScheduledStart: start}}
	}
	return &o, nil
}

// RebuildStudy builds the ImagingStudy of a study from the catalog, its
// order and its reconciliation, stores it and queues what follows from a
// change (pushes, notifications).
func (f *FHIR) RebuildStudy(ctx context.Context, studyUID string) error {
	in := StudyInput{StudyInstanceUID: studyUID, Location: f.opts.Location}
	rec, err := f.rt.Catalog.GetStudy(ctx, studyUID)
	switch {
	case err == nil:
		in.Study = &rec
	case errors.Is(err, catalog.ErrNotFound):
	default:
		return err
	}
	var linkOrder sql.NullInt64
	var linkPatient string
	err = f.rt.Catalog.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		err := tx.QueryRowContext(ctx, `SELECT order_id, patient_reference FROM fhir_study_links WHERE study_instance_uid = ?`, studyUID).Scan(&linkOrder, &linkPatient)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		accession := ""
		if in.Study != nil {
			accession = in.Study.Study.AccessionNumber
		}
		in.Order, err = loadOrder(ctx, tx, linkOrder.Int64, studyUID, accession)
		return err
	})
	if err != nil {
		return err
	}
	if in.Study == nil && in.Order == nil {
		return nil // nothing known yet
	}
	if in.Study != nil {
		insts, err := f.rt.Catalog.ListInstances(ctx, studyUID)
		if err != nil {
			return err
		}
		bySeries := map[string]int{}
		for _, i := range insts {
			k, ok := bySeries[i.SeriesInstanceUID]
			if !ok {
				s, err := f.rt.Catalog.GetSeries(ctx, i.SeriesInstanceUID)
				if err != nil {
					return err
				}
				k = len(in.Series)
				bySeries[i.SeriesInstanceUID] = k
				in.Series = append(in.Series, SeriesInput{Series: s})
			}
			in.Series[k].Instances = append(in.Series[k].Instances, i)
		}
		slices.SortStableFunc(in.Series, func(a, b SeriesInput) int { return a.Series.SeriesNumber - b.Series.SeriesNumber })
		for _, s := range in.Series {
			slices.SortStableFunc(s.Instances, func(a, b catalog.Instance) int { return a.InstanceNumber - b.InstanceNumber })
		}
	}
	// The subject: the patient reconciliation named, else the patient of
	// the order the study fulfils (IHE SWF: the order filler's patient is
	// authoritative), else the one the DICOM header names.
	switch {
	case linkPatient != "":
		in.Subject = linkPatient
	case in.Order != nil && in.Order.Patient.PatientID != "":
		in.Subject, err = f.ensurePatient(ctx, PatientFromRef(in.Order.Patient))
	case in.Study != nil && in.Study.Patient.PatientID != "":
		p := in.Study.Patient
		in.Subject, err = f.ensurePatient(ctx, PatientFromRef(risbridge.PatientRef{PatientID: p.PatientID, IssuerOfPatientID: p.IssuerOfPatientID,
			PatientName: p.PatientName, PatientBirthDate: p.PatientBirthDate, PatientSex: p.PatientSex}))
	}
	if err != nil {
		return err
	}
	if in.Order != nil {
		in.BasedOn = []string{"ServiceRequest/" + ServiceRequestID(in.Order.ID)}
	}
	st, _, err := f.store.Put(ctx, ImagingStudy(in))
	if err != nil {
		return err
	}
	return f.changed(ctx, st)
}

// changed queues the work a stored version causes: a push job per target
// for the resources pushed, and a notification per matching subscription.
// It runs for unchanged versions too, so that a redelivered event whose
// first handling died before queueing still queues; the job ids make the
// repeats no-ops.
func (f *FHIR) changed(ctx context.Context, st Stored) error {
	if pushedTypes[st.Type] {
		for _, t := range f.targets {
			if err := f.queuePush(ctx, t, st); err != nil {
				return err
			}
		}
	}
	return f.queueNotifications(ctx, st)
}

var pushedTypes = map[string]bool{"ImagingStudy": true, "DiagnosticReport": true}
