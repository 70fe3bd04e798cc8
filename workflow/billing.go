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
					c := chargeFromOrder(o, d)
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
// account number.
func pidFields(d Demographics, account string) []hl7.Field {
	f := make([]hl7.Field, 18)
	f[0] = hl7.Text("1")
	f[2] = hl7.Components(d.PatientID, "", "", d.IssuerOfPatientID)
	f[4] = hl7.Components(splitPN(d.PatientName)...)
	f[6] = hl7.Text(d.PatientBirthDate)
	f[7] = hl7.Text(d.PatientSex)
	f[17] = hl7.Text(account)
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
