package workflow

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hl7"
	"github.com/imaginghub/imaginghub/hl7out"
)

// Order status values sent in ORC-5 (HL7 table 0038).
const (
	OrderInProcess       = "IP" // MPPS IN PROGRESS
	OrderCompleted       = "CM" // MPPS COMPLETED
	OrderDiscontinued    = "DC" // MPPS DISCONTINUED
	OrderImagesAvailable = "A"  // "some, but not all, results available": images, no report yet
)

// sendStatus enqueues an order status message for the RIS with the given
// MSH-10 (derived from the fact reported, so a repeat is dropped).
func (w *Workflow) sendStatus(ctx context.Context, orderID int64, status, ctrl string, at time.Time) error {
	if w.opts.RISAddr == "" {
		return nil
	}
	var o orderRow
	err := w.rt.Catalog.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		var err error
		o, err = loadOrder(ctx, tx, orderID)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil // an order the hub does not know gets no status
	}
	if err != nil {
		return err
	}
	msg, err := w.statusMessage(o, status, ctrl, at)
	if err != nil {
		return events.Permanent(err)
	}
	if err := hl7out.Enqueue(ctx, w.rt.Bus, w.opts.RISAddr, msg); err != nil {
		return fmt.Errorf("workflow: enqueue order status: %w", err)
	}
	return nil
}

// statusMessage builds the order status message of workflow.ris_status_format:
// ORM^O01 (v2.3.1) or OMI^O23 (v2.5.1) with ORC-1 SC "status changed"
// (HL7 table 0119) and ORC-5 the new status (table 0038), the placer and
// filler order numbers in ORC-2/ORC-3 and the imaging keys where IHE RAD
// TF-2 puts them (OBR-18/19/20 and ZDS-1 in ORM; IPC-1..5 in OMI).
func (w *Workflow) statusMessage(o orderRow, status, ctrl string, at time.Time) ([]byte, error) {
	if at.IsZero() {
		at = w.opts.Now()
	}
	b := &hl7.Builder{}
	h := hl7.Header{
		SendingApplication: w.opts.Application,
		SendingFacility:    w.opts.Facility,
		DateTimeOfMessage:  hl7.FormatTime(at),
		MessageControlID:   ctrl,
		ProcessingID:       "P",
	}
	if w.opts.RISStatusFormat == "omi" {
		h.MessageType, h.TriggerEvent, h.MessageStructure, h.VersionID = "OMI", "O23", "OMI_O23", "2.5.1"
	} else {
		h.MessageType, h.TriggerEvent, h.MessageStructure, h.VersionID = "ORM", "O01", "ORM_O01", "2.3.1"
	}
	b.MSH(h)
	b.Segment("PID", pidFields(o.Patient, "")...)
	b.Segment("ORC", hl7.Text("SC"), hl7.Text(o.PlacerOrderNumber), hl7.Text(o.FillerOrderNumber), hl7.Field{}, hl7.Text(status))
	code := hl7.Components(o.ProcedureCode, o.ProcedureText, o.ProcedureScheme)
	if w.opts.RISStatusFormat == "omi" {
		b.Segment("OBR", hl7.Text("1"), hl7.Text(o.PlacerOrderNumber), hl7.Text(o.FillerOrderNumber), code)
		b.Segment("IPC", hl7.Text(o.AccessionNumber), hl7.Text(o.RequestedProcedureID), hl7.Text(o.StudyInstanceUID),
			hl7.Field{}, hl7.Text(o.Modality))
	} else {
		obr := make([]hl7.Field, 24)
		obr[0] = hl7.Text("1")
		obr[1] = hl7.Text(o.PlacerOrderNumber)
		obr[2] = hl7.Text(o.FillerOrderNumber)
		obr[3] = code
		obr[17] = hl7.Text(o.AccessionNumber)      // OBR-18 placer field 1
		obr[18] = hl7.Text(o.RequestedProcedureID) // OBR-19 placer field 2
		obr[23] = hl7.Text(o.Modality)             // OBR-24 diagnostic service section
		b.Segment("OBR", obr...)
		b.Segment("ZDS", hl7.Components(o.StudyInstanceUID, "", "Application", "DICOM"))
	}
	return b.Bytes()
}

// handleReconciled tells the RIS that the images of an order are
// available, once per study and order.
func (w *Workflow) handleReconciled(ctx context.Context, e events.Event, _ events.Delivery) error {
	var r Reconciled
	if err := e.DecodeData(&r); err != nil {
		return events.Permanent(fmt.Errorf("workflow: reconciled data: %v", err))
	}
	if r.Reason != ReasonMatched || r.OrderID == 0 {
		return nil
	}
	return w.sendStatus(ctx, r.OrderID, OrderImagesAvailable,
		controlID("images", r.StudyInstanceUID, strconv.FormatInt(r.OrderID, 10)), e.Time)
}
