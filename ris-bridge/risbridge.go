// Package risbridge is the component "ris-bridge": it keeps the hub's
// orders from the RIS's ORM^O01 and OMI^O23 messages (IHE RAD-4 Procedure
// Scheduled, RAD-13 Procedure Update) with one row per Scheduled Procedure
// Step, and its reports from ORU^R01, and announces each change as
// ih.order.scheduled, ih.order.updated, ih.order.cancelled or
// ih.report.received.
//
// Messages reach it through the HL7 listener (package hl7intake), which
// stores accepted messages under ihhl7.in.ris.<type>; one durable consumer
// with the filter ihhl7.in.ris.> takes them in the order received. A
// message's effect, its processed-message key and its events commit in one
// catalog transaction, together with the other messages of its batch.
package risbridge

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hl7intake"
	"github.com/imaginghub/imaginghub/hub"
)

// Source is the CloudEvents source of the bridge's events.
const Source = "imaginghub/ris-bridge"

// Domain is the bridge's subject token on the intake stream.
const Domain = "ris"

// ConsumerName is the durable consumer (and dead-letter subject token).
const ConsumerName = "ris-bridge"

// ErrOrderNotFound is returned for a change to an order the hub does not
// know; the message is retried (its NW may be late) and then dead-lettered.
var ErrOrderNotFound = errors.New("ris-bridge: order not found")

// Routes are the messages the HL7 listener accepts for this bridge.
func Routes() []hl7intake.Route {
	return []hl7intake.Route{
		{Domain: Domain, MessageType: "ORM", TriggerEvents: []string{"O01"}, Validate: Validate},
		{Domain: Domain, MessageType: "OMI", TriggerEvents: []string{"O23"}, Validate: Validate},
		{Domain: Domain, MessageType: "ORU", TriggerEvents: []string{"R01"}, Validate: Validate},
	}
}

// Bridge is the component.
type Bridge struct {
	hl7intake.DomainBridge
}

// New builds the bridge on rt and registers its admin routes
// (GET /api/orders, GET /api/orders/{id}).
func New(rt *hub.Runtime) (*Bridge, error) {
	b := &Bridge{hl7intake.DomainBridge{RT: rt, Log: rt.Log.With("component", ConsumerName),
		Consumer: ConsumerName, Description: "orders and reports from ORM, OMI and ORU", Domain: Domain}}
	b.Handle = b.handle
	rt.Server.Mux.HandleFunc("GET /api/orders", b.listOrders)
	rt.Server.Mux.HandleFunc("GET /api/orders/{id}", b.getOrder)
	return b, nil
}

// handle applies the waiting messages in the order they were accepted, in
// one transaction with their processed-message keys and events, so a
// batch commits whole or not at all and is acknowledged only after it
// commits. A message that cannot be read fails the batch; the consumer
// then hands each message over alone and that one is dead-lettered.
func (b *Bridge) handle(ctx context.Context, ds []events.Delivery) error {
	batch := make([]hl7intake.Pending, len(ds))
	for i, d := range ds {
		msg, key, err := hl7intake.Decode(d)
		if err != nil {
			return err
		}
		h := msg.Header()
		p := hl7intake.Pending{Key: key, Type: h.MessageType + "^" + h.TriggerEvent}
		switch h.MessageType {
		case "ORM", "OMI":
			orders, errs := ParseOrders(msg)
			if len(errs) > 0 {
				return events.Permanent(fmt.Errorf("ris-bridge: %s", errs[0].Text))
			}
			typ := p.Type
			p.Apply = func(ctx context.Context, tx *catalog.Tx) ([]events.Event, error) {
				return ApplyOrders(ctx, tx, orders, typ, key)
			}
		case "ORU":
			r, errs := ParseReport(msg)
			if len(errs) > 0 {
				return events.Permanent(fmt.Errorf("ris-bridge: %s", errs[0].Text))
			}
			p.Apply = func(ctx context.Context, tx *catalog.Tx) ([]events.Event, error) {
				return ApplyReport(ctx, tx, r, key)
			}
		default:
			return events.Permanent(fmt.Errorf("ris-bridge: unexpected message type %s", h.MessageType))
		}
		batch[i] = p
	}
	if _, err := hl7intake.ApplyBatch(ctx, b.RT, ConsumerName, batch); err != nil {
		if len(ds) == 1 {
			b.Log.Warn("message not applied", "type", batch[0].Type, "delivery", ds[0].NumDelivered, "err", err)
		}
		return err
	}
	return nil
}

// OrderEvent is the data of ih.order.scheduled, ih.order.updated and
// ih.order.cancelled: the order as now stored, with its steps.
type OrderEvent struct {
	Order
	// MessageType is the HL7 message that caused the change, e.g. "OMI^O23".
	MessageType string `json:"messageType"`
}

// ReportEvent is the data of ih.report.received.
type ReportEvent struct {
	Report
	StudyInstanceUID string `json:"studyInstanceUID,omitempty"`
}

// findOrder looks an order up by filler, then placer order number.
func findOrder(ctx context.Context, tx *catalog.Tx, placer, filler string) (int64, error) {
	var id int64
	if filler != "" {
		err := tx.QueryRowContext(ctx, `SELECT id FROM orders WHERE filler_order_number = ? ORDER BY id LIMIT 1`, filler).Scan(&id)
		if err == nil || !errors.Is(err, sql.ErrNoRows) {
			return id, err
		}
	}
	if placer != "" {
		err := tx.QueryRowContext(ctx, `SELECT id FROM orders WHERE placer_order_number = ? ORDER BY id LIMIT 1`, placer).Scan(&id)
		if err == nil || !errors.Is(err, sql.ErrNoRows) {
			return id, err
		}
	}
	return 0, nil
}

// ApplyOrders makes the orders' changes in tx (HL7 table 0119 order
// control) and returns the events announcing them.
func ApplyOrders(ctx context.Context, tx *catalog.Tx, orders []Order, messageType, key string) ([]events.Event, error) {
	now := time.Now()
	var evs []events.Event
	for i, o := range orders {
		id, err := findOrder(ctx, tx, o.PlacerOrderNumber, o.FillerOrderNumber)
		if err != nil {
			return nil, err
		}
		var typ string
		switch o.OrderControl {
		case "NW", "XO":
			typ = events.TypeOrderUpdated
			if id == 0 {
				if o.OrderControl == "NW" {
					typ = events.TypeOrderScheduled
				}
				if o.StudyInstanceUID == "" {
					// IHE RAD TF-2 §4.4.4.1.2: the DSS/Order Filler assigns
					// the Study Instance UID when the order brings none.
					o.StudyInstanceUID = dicomfile.NewUID()
				}
				if o.Status == "" {
					o.Status = "SC"
				}
				err := tx.QueryRowContext(ctx, `INSERT INTO orders (placer_order_number, filler_order_number, study_instance_uid, status, created_at, updated_at)
					VALUES (?, ?, ?, ?, ?, ?) RETURNING id`, o.PlacerOrderNumber, o.FillerOrderNumber, o.StudyInstanceUID, o.Status, tx.Time(now), tx.Time(now)).Scan(&id)
				if err != nil {
					return nil, err
				}
			}
			if err := updateOrder(ctx, tx, id, o, now); err != nil {
				return nil, err
			}
		case "CA", "DC":
			if id == 0 {
				return nil, fmt.Errorf("%w (ORC-1 %s)", ErrOrderNotFound, o.OrderControl)
			}
			typ = events.TypeOrderCancelled
			status := o.OrderControl // ORC-5 (table 0038) CA canceled, DC discontinued
			if _, err := tx.ExecContext(ctx, `UPDATE orders SET order_control = ?, status = ?, updated_at = ? WHERE id = ?`, o.OrderControl, status, tx.Time(now), id); err != nil {
				return nil, err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE order_steps SET status = 'DISCONTINUED' WHERE order_ref = ?`, id); err != nil {
				return nil, err
			}
		case "SC":
			if id == 0 {
				return nil, fmt.Errorf("%w (ORC-1 SC)", ErrOrderNotFound)
			}
			typ = events.TypeOrderUpdated
			if _, err := tx.ExecContext(ctx, `UPDATE orders SET order_control = ?, status = ?, updated_at = ? WHERE id = ?`, o.OrderControl, o.Status, tx.Time(now), id); err != nil {
				return nil, err
			}
		}
		stored, err := loadOrder(ctx, tx, id)
		if err != nil {
			return nil, err
		}
		subject := stored.AccessionNumber
		if subject == "" {
			subject = stored.PlacerOrderNumber + "/" + stored.FillerOrderNumber
		}
		ev, err := events.New(Source, typ, subject, OrderEvent{Order: stored, MessageType: messageType}, key, typ, strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// hl7Null is HL7's explicit empty value: the field is to be cleared
// (HL7 2.5.1 §2.5.3).
const hl7Null = `""`

// updateOrder writes a NW or XO's fields. Fields the message leaves empty
// keep their stored value; the steps are replaced by the message's.
func updateOrder(ctx context.Context, tx *catalog.Tx, id int64, o Order, now time.Time) error {
	keep := func(col string) string { return col + ` = CASE WHEN ? = '' THEN ` + col + ` ELSE ? END` }
	cols := []struct {
		col, v string
	}{
		{"placer_order_number", o.PlacerOrderNumber}, {"filler_order_number", o.FillerOrderNumber},
		{"accession_number", o.AccessionNumber}, {"requested_procedure_id", o.RequestedProcedureID},
		{"study_instance_uid", o.StudyInstanceUID},
		{"requested_procedure_code", o.RequestedProcedure.Code}, {"requested_procedure_text", o.RequestedProcedure.Text},
		{"requested_procedure_coding_scheme", o.RequestedProcedure.CodingScheme},
		{"priority", o.Priority}, {"ordering_provider", o.OrderingProvider}, {"referring_provider", o.ReferringProvider},
		{"reason", o.Reason}, {"status", o.Status},
		{"patient_id", o.Patient.PatientID}, {"issuer_of_patient_id", o.Patient.IssuerOfPatientID},
		{"patient_name", o.Patient.PatientName}, {"patient_birth_date", o.Patient.PatientBirthDate},
		{"patient_sex", o.Patient.PatientSex}, {"visit_number", o.VisitNumber},
	}
	q := `UPDATE orders SET order_control = ?, updated_at = ?`
	args := []any{o.OrderControl, tx.Time(now)}
	for _, c := range cols {
		q += ", " + keep(c.col)
		args = append(args, c.v, c.v)
	}
	// PID-18: the ID and its assigning authority change together (a new
	// ID without an authority drops the old one); empty keeps the stored
	// account and the HL7 null "" clears it.
	switch acc := o.Patient.AccountNumber; acc {
	case "":
	case hl7Null:
		q += ", account_number = '', account_assigning_authority = ''"
	default:
		q += ", account_number = ?, account_assigning_authority = ?"
		args = append(args, acc, o.Patient.AccountAssigningAuthority)
	}
	args = append(args, id)
	if _, err := tx.ExecContext(ctx, q+` WHERE id = ?`, args...); err != nil {
		return err
	}
	if len(o.Steps) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM order_steps WHERE order_ref = ?`, id); err != nil {
		return err
	}
	for i, s := range o.Steps {
		if s.ScheduledProcedureStepID == "" {
			s.ScheduledProcedureStepID = strconv.Itoa(i + 1)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO order_steps (order_ref, step_index, scheduled_procedure_step_id, modality, scheduled_station_ae_title,
			scheduled_station_name, scheduled_start, protocol_code, protocol_text, protocol_coding_scheme, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'SCHEDULED')`,
			id, i+1, s.ScheduledProcedureStepID, s.Modality, s.ScheduledStationAETitle, s.ScheduledStationName, s.ScheduledStart,
			s.Protocol.Code, s.Protocol.Text, s.Protocol.CodingScheme); err != nil {
			return err
		}
	}
	return nil
}

// ApplyReport stores a report; it supersedes the earlier reports of the
// same order (a final replaces the preliminary, a corrected the final).
func ApplyReport(ctx context.Context, tx *catalog.Tx, r Report, key string) ([]events.Event, error) {
	now := time.Now()
	orderID, err := findOrder(ctx, tx, r.PlacerOrderNumber, r.FillerOrderNumber)
	if err != nil {
		return nil, err
	}
	var studyUID string
	if orderID == 0 && r.AccessionNumber != "" {
		err := tx.QueryRowContext(ctx, `SELECT id FROM orders WHERE accession_number = ? ORDER BY id LIMIT 1`, r.AccessionNumber).Scan(&orderID)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
	}
	var orderRef any
	if orderID != 0 {
		orderRef = orderID
		if err := tx.QueryRowContext(ctx, `SELECT study_instance_uid FROM orders WHERE id = ?`, orderID).Scan(&studyUID); err != nil {
			return nil, err
		}
	}
	if err := tx.QueryRowContext(ctx, `INSERT INTO reports (order_ref, placer_order_number, filler_order_number, accession_number, result_status,
		report_text, observation_time, message_key, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		orderRef, r.PlacerOrderNumber, r.FillerOrderNumber, r.AccessionNumber, r.ResultStatus, r.Text, r.ObservationTime, key, tx.Time(now)).Scan(&r.ID); err != nil {
		return nil, err
	}
	r.OrderID = orderID
	var rows *sql.Rows
	if orderID != 0 {
		rows, err = tx.QueryContext(ctx, `SELECT id FROM reports WHERE order_ref = ? AND id <> ? AND superseded_by IS NULL`, orderID, r.ID)
	} else {
		rows, err = tx.QueryContext(ctx, `SELECT id FROM reports WHERE order_ref IS NULL AND placer_order_number = ? AND filler_order_number = ? AND accession_number = ? AND id <> ? AND superseded_by IS NULL`,
			r.PlacerOrderNumber, r.FillerOrderNumber, r.AccessionNumber, r.ID)
	}
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		r.Supersedes = append(r.Supersedes, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, id := range r.Supersedes {
		if _, err := tx.ExecContext(ctx, `UPDATE reports SET superseded_by = ? WHERE id = ?`, r.ID, id); err != nil {
			return nil, err
		}
	}
	subject := r.AccessionNumber
	if subject == "" {
		subject = r.PlacerOrderNumber + "/" + r.FillerOrderNumber
	}
	ev, err := events.New(Source, events.TypeReportReceived, subject, ReportEvent{Report: r, StudyInstanceUID: studyUID}, key, events.TypeReportReceived)
	if err != nil {
		return nil, err
	}
	return []events.Event{ev}, nil
}
