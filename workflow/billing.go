package workflow

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hl7"
	"github.com/imaginghub/imaginghub/hl7out"
	"github.com/imaginghub/imaginghub/worklist"
)

// Charge statuses.
const (
	ChargePosted   = "posted"
	ChargeReversed = "reversed"
)

func chargeFromOrder(o orderRow, d Demographics) Charge {
	return Charge{
		OrderID:               o.ID,
		ProcedureCode:         o.ProcedureCode,
		ProcedureText:         o.ProcedureText,
		ProcedureCodingScheme: o.ProcedureScheme,
		Quantity:              1,
		PerformingLocation:    o.StationName,
		OrderingProvider:      o.OrderingProvider,
		PlacerOrderNumber:     o.PlacerOrderNumber,
		FillerOrderNumber:     o.FillerOrderNumber,
		Patient:               d,
		VisitNumber:           o.VisitNumber,
		Status:                ChargePosted,
	}
}

// chargeFor is the charge of a performed procedure of order o, with the
// patient account it posts to (PID-18 of the DFT^P03).
func chargeFor(ctx context.Context, q catalog.Querier, o orderRow, d Demographics) (Charge, error) {
	c := chargeFromOrder(o, d)
	acc, err := patientAccount(ctx, q, o)
	if err != nil {
		return c, err
	}
	c.PatientAccount = acc
	return c, nil
}

// patientAccount finds the account (PID-18) a charge of order o posts to,
// as a CX with its components joined by '^' ("ID" or "ID^^^authority").
// The HIS owns accounts (IHE RAD TF-2 §4.36: the ADT actor manages them)
// and the order names its encounter (PV1-19), so the account the registry
// keeps for that visit comes first: an A08 that changed it wins over the
// copy the RIS sent with the order. Then the order's own PID-18. Only when
// the order names no visit the registry knows: the patient's most recent
// open visit with an account, then the last account any ADT for the
// patient carried. "" when no message carried one.
func patientAccount(ctx context.Context, q catalog.Querier, o orderRow) (string, error) {
	var orderAcc, orderAuth string
	if err := q.QueryRowContext(ctx, `SELECT account_number, account_assigning_authority FROM orders WHERE id = ?`, o.ID).
		Scan(&orderAcc, &orderAuth); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("workflow: account of order: %w", err)
	}
	patient, err := registryPatient(ctx, q, o.Patient.PatientID, o.Patient.IssuerOfPatientID)
	if err != nil {
		return "", err
	}
	visitKnown := false
	if patient != 0 && o.VisitNumber != "" {
		var acc, auth string
		err := q.QueryRowContext(ctx, `SELECT account_number, account_assigning_authority FROM registry_visits
 WHERE patient_ref = ? AND visit_number = ?`, patient, o.VisitNumber).Scan(&acc, &auth)
		switch {
		case err == nil:
			visitKnown = true
			if acc != "" {
				return accountCX(acc, auth), nil
			}
		case !errors.Is(err, sql.ErrNoRows):
			return "", fmt.Errorf("workflow: account of visit: %w", err)
		}
	}
	if orderAcc != "" {
		return accountCX(orderAcc, orderAuth), nil
	}
	if patient == 0 || visitKnown {
		return "", nil
	}
	var acc, auth string
	err = q.QueryRowContext(ctx, `SELECT account_number, account_assigning_authority FROM registry_visits
 WHERE patient_ref = ? AND status IN ('active', 'pending') AND account_number <> '' ORDER BY id DESC LIMIT 1`, patient).Scan(&acc, &auth)
	if errors.Is(err, sql.ErrNoRows) {
		err = q.QueryRowContext(ctx, `SELECT account_number, account_assigning_authority FROM registry_patients WHERE id = ?`, patient).Scan(&acc, &auth)
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("workflow: account of patient: %w", err)
	}
	return accountCX(acc, auth), nil
}

// registryPatient is the registry record a patient identifier names,
// following merges to the surviving record; 0 when the registry does not
// know it.
func registryPatient(ctx context.Context, q catalog.Querier, id, issuer string) (int64, error) {
	if id == "" {
		return 0, nil
	}
	var ref int64
	err := q.QueryRowContext(ctx, `SELECT patient_ref FROM registry_patient_identifiers WHERE id_number = ? AND assigning_authority = ?`,
		id, issuer).Scan(&ref)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("workflow: read registry: %w", err)
	}
	for range 4 { // a short chain of merges at most
		var merged sql.NullInt64
		if err := q.QueryRowContext(ctx, `SELECT merged_into FROM registry_patients WHERE id = ?`, ref).Scan(&merged); err != nil {
			return 0, fmt.Errorf("workflow: read registry: %w", err)
		}
		if !merged.Valid || merged.Int64 == 0 || merged.Int64 == ref {
			break
		}
		ref = merged.Int64
	}
	return ref, nil
}

// accountCX writes an account as a CX: ID, and the assigning authority in
// CX.4 when there is one.
func accountCX(id, authority string) string {
	if id == "" || authority == "" {
		return id
	}
	return id + "^^^" + authority
}

// cxField is a CX kept as text with its components joined by '^' and the
// sub-components of each (HD) by '&', as a field.
func cxField(s string) hl7.Field {
	comps := strings.Split(s, "^")
	sub := make([][]string, len(comps))
	for i, c := range comps {
		sub[i] = strings.Split(c, "&")
	}
	return hl7.SubComponents(sub...)
}

// postCharge records a charge once per key (the UNIQUE charge_key): a
// repeated MPPS, a redelivered event or a restart finds the row and
// changes nothing. The first time, ih.billing.charge.posted commits with
// it; the billing consumer turns that into the DFT^P03.
func (w *Workflow) postCharge(ctx context.Context, tx *catalog.Tx, c Charge, now time.Time) error {
	_, err := w.postChargeNew(ctx, tx, c, now)
	return err
}

// postChargeNew is postCharge returning the charge when this call created it.
func (w *Workflow) postChargeNew(ctx context.Context, tx *catalog.Tx, c Charge, now time.Time) (*Charge, error) {
	c.Status, c.PostedAt = ChargePosted, now.UTC()
	if c.Quantity <= 0 {
		c.Quantity = 1
	}
	err := tx.QueryRowContext(ctx, `INSERT INTO charges (charge_key, order_ref, study_instance_uid, mpps_sop_instance_uid,
 procedure_code, procedure_text, procedure_coding_scheme, quantity, performed_at, performing_station, performing_location,
 ordering_provider, placer_order_number, filler_order_number, accession_number, patient_id, issuer_of_patient_id,
 patient_name, patient_birth_date, patient_sex, patient_account, visit_number, status, posted_at)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
 ON CONFLICT (charge_key) DO NOTHING RETURNING id`,
		c.Key, c.OrderID, c.StudyInstanceUID, c.MPPSSOPInstanceUID, c.ProcedureCode, c.ProcedureText, c.ProcedureCodingScheme,
		c.Quantity, c.PerformedAt, c.PerformingStation, c.PerformingLocation, c.OrderingProvider, c.PlacerOrderNumber,
		c.FillerOrderNumber, c.Patient.AccessionNumber, c.Patient.PatientID, c.Patient.IssuerOfPatientID, c.Patient.PatientName,
		c.Patient.PatientBirthDate, c.Patient.PatientSex, c.PatientAccount, c.VisitNumber, c.Status, tx.Time(now)).Scan(&c.ID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil // charged already
	}
	if err != nil {
		return nil, fmt.Errorf("workflow: post charge: %w", err)
	}
	e, err := emit(ctx, tx, events.TypeChargePosted, c.Key, c, "charge", c.Key)
	if err != nil {
		return nil, err
	}
	return &c, audit(ctx, tx, c.StudyInstanceUID, "charged", e.ID, c.Key, now)
}

const chargeColumns = `id, charge_key, order_ref, study_instance_uid, mpps_sop_instance_uid, procedure_code, procedure_text,
 procedure_coding_scheme, quantity, performed_at, performing_station, performing_location, ordering_provider,
 placer_order_number, filler_order_number, accession_number, patient_id, issuer_of_patient_id, patient_name,
 patient_birth_date, patient_sex, patient_account, visit_number, status, posted_at, reversed_at`

func scanCharge(sc interface{ Scan(...any) error }) (Charge, error) {
	var c Charge
	var posted, reversed scanTime
	err := sc.Scan(&c.ID, &c.Key, &c.OrderID, &c.StudyInstanceUID, &c.MPPSSOPInstanceUID, &c.ProcedureCode, &c.ProcedureText,
		&c.ProcedureCodingScheme, &c.Quantity, &c.PerformedAt, &c.PerformingStation, &c.PerformingLocation, &c.OrderingProvider,
		&c.PlacerOrderNumber, &c.FillerOrderNumber, &c.Patient.AccessionNumber, &c.Patient.PatientID, &c.Patient.IssuerOfPatientID,
		&c.Patient.PatientName, &c.Patient.PatientBirthDate, &c.Patient.PatientSex, &c.PatientAccount, &c.VisitNumber,
		&c.Status, &posted, &reversed)
	c.PostedAt = posted.t
	if !reversed.t.IsZero() {
		t := reversed.t
		c.ReversedAt = &t
	}
	return c, err
}

// reverseOrderCharges reverses the posted charges of an order (cancelled
// after charging): each becomes reversed once and announces
// ih.billing.charge.reversed, which sends the credit (FT1-6 CD).
func (w *Workflow) reverseOrderCharges(ctx context.Context, tx *catalog.Tx, orderID int64, cause string, now time.Time) error {
	rows, err := tx.QueryContext(ctx, `SELECT `+chargeColumns+` FROM charges WHERE order_ref = ? AND status = 'posted' ORDER BY id`, orderID)
	if err != nil {
		return fmt.Errorf("workflow: charges of order: %w", err)
	}
	var cs []Charge
	for rows.Next() {
		c, err := scanCharge(rows)
		if err != nil {
			rows.Close()
			return fmt.Errorf("workflow: charges of order: %w", err)
		}
		cs = append(cs, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("workflow: charges of order: %w", err)
	}
	for _, c := range cs {
		if _, err := tx.ExecContext(ctx, `UPDATE charges SET status = 'reversed', reversed_at = ? WHERE id = ? AND status = 'posted'`,
			tx.Time(now), c.ID); err != nil {
			return fmt.Errorf("workflow: reverse charge: %w", err)
		}
		t := now.UTC()
		c.Status, c.ReversedAt = ChargeReversed, &t
		e, err := emit(ctx, tx, events.TypeChargeReversed, c.Key, c, "charge", c.Key)
		if err != nil {
			return err
		}
		if err := audit(ctx, tx, c.StudyInstanceUID, "charge-reversed", e.ID, c.Key+" after "+cause, now); err != nil {
			return err
		}
	}
	return nil
}

// handleProcedure follows MPPS (IHE RAD-6/RAD-7): the order's status goes
// to the RIS; COMPLETED posts the charge of each order performed (when
// billing follows MPPS), DISCONTINUED reverses what was charged.
func (w *Workflow) handleProcedure(ctx context.Context, e events.Event, _ events.Delivery) error {
	var p worklist.ProcedureEvent
	if err := e.DecodeData(&p); err != nil {
		return events.Permanent(fmt.Errorf("workflow: procedure data: %v", err))
	}
	now := w.opts.Now()
	var posted []Charge
	err := w.inTx(ctx, func(ctx context.Context, tx *catalog.Tx) error {
		posted = posted[:0]
		if ok, err := markApplied(ctx, tx, ProcedureConsumer, e.ID, now); err != nil || !ok {
			return err
		}
		kind := map[string]string{
			events.TypeProcedureStarted:     "procedure-started",
			events.TypeProcedureCompleted:   "procedure-completed",
			events.TypeProcedureDiscontinue: "procedure-discontinued",
		}[e.Type]
		if err := audit(ctx, tx, p.StudyInstanceUID, kind, e.ID, p.PerformedStationAETitle, now); err != nil {
			return err
		}
		switch e.Type {
		case events.TypeProcedureCompleted:
			if w.billOnMPPS(p.Modality) {
				for _, id := range p.OrderIDs {
					o, err := loadOrder(ctx, tx, id)
					if errors.Is(err, ErrNotFound) {
						continue
					}
					if err != nil {
						return err
					}
					d, err := demographicsOf(ctx, tx, o)
					if err != nil {
						return err
					}
					c, err := chargeFor(ctx, tx, o, d)
					if err != nil {
						return err
					}
					c.Key = "mpps:" + p.SOPInstanceUID + ":" + strconv.FormatInt(id, 10)
					c.MPPSSOPInstanceUID = p.SOPInstanceUID
					c.StudyInstanceUID = p.StudyInstanceUID
					c.PerformedAt = p.PerformedProcedureStepEndDate + p.PerformedProcedureStepEndTime
					if c.PerformedAt == "" {
						c.PerformedAt = p.PerformedProcedureStepStartDate + p.PerformedProcedureStepStartTime
					}
					c.PerformingStation = p.PerformedStationAETitle
					nc, err := w.postChargeNew(ctx, tx, c, now)
					if err != nil {
						return err
					}
					if nc != nil {
						posted = append(posted, *nc)
					}
				}
			}
		case events.TypeProcedureDiscontinue:
			for _, id := range p.OrderIDs {
				if err := w.reverseOrderCharges(ctx, tx, id, e.ID, now); err != nil {
					return err
				}
			}
		}
		// The MPPS may name a study that arrived before it and was
		// queued. And COMPLETED says the acquisition is over (IHE RAD-7):
		// the study's instances are in, so it is reconciled now rather
		// than only when it turns stable — which also covers a stability
		// timer lost with a process.
		if p.StudyInstanceUID != "" {
			var queued, known int
			if err := tx.QueryRowContext(ctx, `SELECT
 (SELECT count(*) FROM workflow_unmatched WHERE study_instance_uid = ?),
 (SELECT count(*) FROM studies WHERE study_instance_uid = ?)`,
				p.StudyInstanceUID, p.StudyInstanceUID).Scan(&queued, &known); err != nil {
				return fmt.Errorf("workflow: study of the procedure: %w", err)
			}
			if queued > 0 || known > 0 && e.Type == events.TypeProcedureCompleted {
				return w.reconcile(ctx, tx, p.StudyInstanceUID, e.ID, now)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The DFT^P03 goes out now rather than one event later; the billing
	// consumer enqueues the same message (same MSH-10) again from
	// ih.billing.charge.posted, which the queue drops, and it alone sends it
	// if this process dies first.
	for _, c := range posted {
		if err := w.sendDFT(ctx, c, false, now); err != nil {
			w.log.Debug("direct DFT^P03 enqueue failed; the billing consumer sends it", "err", err)
		}
	}
	// The status message is derived from the event alone, so a redelivery
	// enqueues the same message (same MSH-10), which the queue drops.
	status := map[string]string{
		events.TypeProcedureStarted:     "IP",
		events.TypeProcedureCompleted:   "CM",
		events.TypeProcedureDiscontinue: "DC",
	}[e.Type]
	for _, id := range p.OrderIDs {
		if err := w.sendStatus(ctx, id, status, controlID(e.ID, strconv.FormatInt(id, 10)), e.Time); err != nil {
			return err
		}
	}
	return nil
}

// handleBilling sends the DFT^P03 of each charge posted or reversed
// (IHE RAD TF-2 §4.36 Charge Posted).
func (w *Workflow) handleBilling(ctx context.Context, e events.Event, _ events.Delivery) error {
	if w.opts.PMSAddr == "" {
		return nil
	}
	var c Charge
	if err := e.DecodeData(&c); err != nil {
		return events.Permanent(fmt.Errorf("workflow: charge data: %v", err))
	}
	return w.sendDFT(ctx, c, e.Type == events.TypeChargeReversed, e.Time)
}

// sendDFT enqueues the DFT^P03 of a charge or its reversal for the PMS.
func (w *Workflow) sendDFT(ctx context.Context, c Charge, reversal bool, at time.Time) error {
	if w.opts.PMSAddr == "" {
		return nil
	}
	msg, err := w.DFT(c, reversal, at)
	if err != nil {
		return events.Permanent(err)
	}
	if err := hl7out.Enqueue(ctx, w.rt.Bus, w.opts.PMSAddr, msg); err != nil {
		return fmt.Errorf("workflow: enqueue DFT^P03: %w", err)
	}
	return nil
}

// DFT builds the DFT^P03 of a charge (HL7 2.5.1 §6.4.3, IHE RAD TF-2
// §4.36): MSH, EVN, PID, PV1 and one FT1. A reversal is the same charge as
// a credit (FT1-6 CD, HL7 table 0017). MSH-10 is derived from the charge
// key and the kind, so a repeat is the same message.
func (w *Workflow) DFT(c Charge, reversal bool, at time.Time) ([]byte, error) {
	txType, kind := "CG", "charge"
	txDate := c.PostedAt
	if reversal {
		txType, kind = "CD", "credit"
		if c.ReversedAt != nil {
			txDate = *c.ReversedAt
		}
	}
	if at.IsZero() {
		at = txDate
	}
	b := &hl7.Builder{}
	b.MSH(hl7.Header{
		SendingApplication: w.opts.Application,
		SendingFacility:    w.opts.Facility,
		DateTimeOfMessage:  hl7.FormatTime(at),
		MessageType:        "DFT", TriggerEvent: "P03", MessageStructure: "DFT_P03",
		MessageControlID: controlID("DFT", kind, c.Key),
		ProcessingID:     "P",
		VersionID:        "2.5.1",
	})
	// EVN-1 event type code, EVN-2 recorded date/time.
	b.Segment("EVN", hl7.Text("P03"), hl7.Text(hl7.FormatTime(txDate)))
	b.Segment("PID", pidFields(c.Patient, c.PatientAccount)...)
	// PV1-2 patient class (table 0004): U unknown when the order named no
	// visit class; PV1-3 assigned location; PV1-19 visit number.
	pv1 := make([]hl7.Field, 19)
	pv1[0] = hl7.Text("1")
	pv1[1] = hl7.Text("U")
	pv1[2] = hl7.Text(c.PerformingLocation)
	pv1[18] = hl7.Text(c.VisitNumber)
	b.Segment("PV1", pv1...)
	ft1 := make([]hl7.Field, 25)
	ft1[0] = hl7.Text("1")                                                              // FT1-1 set id
	ft1[1] = hl7.Text(strconv.FormatInt(c.ID, 10))                                      // FT1-2 transaction id
	ft1[3] = hl7.Text(dicomToHL7Time(c.PerformedAt, txDate))                            // FT1-4 transaction date
	ft1[4] = hl7.Text(hl7.FormatTime(txDate))                                           // FT1-5 posting date
	ft1[5] = hl7.Text(txType)                                                           // FT1-6 transaction type
	ft1[6] = hl7.Components(c.ProcedureCode, c.ProcedureText, c.ProcedureCodingScheme)  // FT1-7 transaction code
	ft1[9] = hl7.Text(strconv.Itoa(c.Quantity))                                         // FT1-10 quantity
	ft1[15] = hl7.Text(c.PerformingLocation)                                            // FT1-16 assigned patient location
	ft1[20] = hl7.Components(strings.Split(c.OrderingProvider, "^")...)                 // FT1-21 ordered by
	ft1[22] = hl7.Text(c.FillerOrderNumber)                                             // FT1-23 filler order number
	ft1[24] = hl7.Components(c.ProcedureCode, c.ProcedureText, c.ProcedureCodingScheme) // FT1-25 procedure code
	b.Segment("FT1", ft1...)
	return b.Bytes()
}

// pidFields are PID-1 … PID-18: PID-3 identifier with its assigning
// authority (CX.4), PID-5 name, PID-7 birth date, PID-8 sex, PID-18
// patient account number (CX, ID^^^assigning authority).
func pidFields(d Demographics, account string) []hl7.Field {
	f := make([]hl7.Field, 18)
	f[0] = hl7.Text("1")
	f[2] = hl7.Components(d.PatientID, "", "", d.IssuerOfPatientID)
	f[4] = hl7.Components(splitPN(d.PatientName)...)
	f[6] = hl7.Text(d.PatientBirthDate)
	f[7] = hl7.Text(d.PatientSex)
	f[17] = cxField(account)
	return f
}

// splitPN turns a DICOM PN (family^given^middle^prefix^suffix) into XPN
// components (family^given^middle^suffix^prefix).
func splitPN(pn string) []string {
	var c [5]string
	i := 0
	start := 0
	for j := 0; j <= len(pn) && i < 5; j++ {
		if j == len(pn) || pn[j] == '^' {
			c[i] = pn[start:j]
			i++
			start = j + 1
		}
	}
	return []string{c[0], c[1], c[2], c[4], c[3]}
}

// dicomToHL7Time turns a DICOM DA+TM (YYYYMMDD[HHMMSS[.F]]) into an HL7 DTM;
// fallback when it is empty.
func dicomToHL7Time(s string, fallback time.Time) string {
	if len(s) >= 8 {
		if i := strings.IndexByte(s, '.'); i >= 0 {
			s = s[:i]
		}
		return s
	}
	return hl7.FormatTime(fallback)
}
