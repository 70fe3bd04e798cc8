package worklist

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
)

// Scheduled Procedure Step Status values (0040,0020), PS3.3 §C.4.10 and
// the defined terms of PS3.3 Table C.4-10 (CANCELED as DICOM spells it).
const (
	StatusScheduled    = "SCHEDULED"
	StatusArrived      = "ARRIVED"
	StatusReady        = "READY"
	StatusStarted      = "STARTED"
	StatusDeparted     = "DEPARTED"
	StatusCompleted    = "COMPLETED"
	StatusDiscontinued = "DISCONTINUED"
	StatusCanceled     = "CANCELED"
)

// Item sources.
const (
	SourceOrder  = "order"  // projected from ih.order.* events
	SourceManual = "manual" // entered through the REST API
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNotFound: no worklist item has the id asked for.
	ErrNotFound = errors.New("worklist: item not found")
	// ErrInvalid: an item or query is malformed.
	ErrInvalid = errors.New("worklist: invalid")
	// ErrNotEditable: items projected from orders are changed by the RIS,
	// not by hand.
	ErrNotEditable = errors.New("worklist: item belongs to an order and is changed by the RIS")
)

// Code is an item of a code sequence (PS3.3 §8.8): Code Value
// (0008,0100), Coding Scheme Designator (0008,0102), Code Meaning
// (0008,0104).
type Code struct {
	CodeValue              string `json:"codeValue,omitempty"`
	CodingSchemeDesignator string `json:"codingSchemeDesignator,omitempty"`
	CodeMeaning            string `json:"codeMeaning,omitempty"`
}

// Item is one Modality Worklist item: a Scheduled Procedure Step with its
// Requested Procedure, Imaging Service Request and Patient (PS3.4 §K.6,
// PS3.3 §C.4.10–C.4.13). Names follow the DICOM keywords.
type Item struct {
	ID     int64  `json:"id"`
	Source string `json:"source"`
	// OrderID is the ris-bridge order the item was projected from; 0 for
	// manual items.
	OrderID int64 `json:"orderId,omitempty"`

	// Patient (PS3.3 §C.2.2, C.2.3, C.2.4 patient medical)
	PatientName            string `json:"patientName,omitempty"`
	PatientID              string `json:"patientID"`
	IssuerOfPatientID      string `json:"issuerOfPatientID,omitempty"`
	PatientBirthDate       string `json:"patientBirthDate,omitempty"`
	PatientSex             string `json:"patientSex,omitempty"`
	AdmissionID            string `json:"admissionID,omitempty"`
	CurrentPatientLocation string `json:"currentPatientLocation,omitempty"`
	MedicalAlerts          string `json:"medicalAlerts,omitempty"`
	Allergies              string `json:"allergies,omitempty"`

	// Imaging Service Request (PS3.3 §C.4.13)
	AccessionNumber                        string `json:"accessionNumber,omitempty"`
	PlacerOrderNumberImagingServiceRequest string `json:"placerOrderNumber,omitempty"`
	FillerOrderNumberImagingServiceRequest string `json:"fillerOrderNumber,omitempty"`
	ReferringPhysicianName                 string `json:"referringPhysicianName,omitempty"`
	RequestingPhysician                    string `json:"requestingPhysician,omitempty"`

	// Requested Procedure (PS3.3 §C.4.11)
	RequestedProcedureID           string `json:"requestedProcedureID,omitempty"`
	RequestedProcedureDescription  string `json:"requestedProcedureDescription,omitempty"`
	RequestedProcedureCode         Code   `json:"requestedProcedureCode"`
	RequestedProcedurePriority     string `json:"requestedProcedurePriority,omitempty"`
	ReasonForTheRequestedProcedure string `json:"reasonForTheRequestedProcedure,omitempty"`
	StudyInstanceUID               string `json:"studyInstanceUID"`

	// Scheduled Procedure Step (PS3.3 §C.4.10)
	ScheduledProcedureStepID          string `json:"scheduledProcedureStepID"`
	Modality                          string `json:"modality,omitempty"`
	ScheduledStationAETitle           string `json:"scheduledStationAETitle,omitempty"`
	ScheduledStationName              string `json:"scheduledStationName,omitempty"`
	ScheduledProcedureStepLocation    string `json:"scheduledProcedureStepLocation,omitempty"`
	ScheduledProcedureStepStartDate   string `json:"scheduledProcedureStepStartDate,omitempty"` // DA, YYYYMMDD
	ScheduledProcedureStepStartTime   string `json:"scheduledProcedureStepStartTime,omitempty"` // TM, HHMMSS
	ScheduledPerformingPhysicianName  string `json:"scheduledPerformingPhysicianName,omitempty"`
	ScheduledProcedureStepDescription string `json:"scheduledProcedureStepDescription,omitempty"`
	ScheduledProtocolCode             Code   `json:"scheduledProtocolCode"`
	ScheduledProcedureStepStatus      string `json:"scheduledProcedureStepStatus"`

	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Final reports whether a step status ends the step: such items are not
// served by the worklist unless Options.IncludeFinalSteps is set.
func Final(status string) bool {
	switch status {
	case StatusCompleted, StatusDiscontinued, StatusCanceled:
		return true
	}
	return false
}

// itemColumns is the column list read by scanItem, in order.
const itemColumns = `id, source, order_ref, placer_order_number, filler_order_number, accession_number, requested_procedure_id,
 requested_procedure_description, requested_procedure_code, requested_procedure_coding_scheme, requested_procedure_priority,
 reason_for_requested_procedure, study_instance_uid, referring_physician_name, requesting_physician, patient_id,
 issuer_of_patient_id, patient_name, patient_birth_date, patient_sex, admission_id, current_patient_location,
 medical_alerts, allergies, scheduled_procedure_step_id, modality, scheduled_station_ae_title, scheduled_station_name,
 scheduled_procedure_step_location, scheduled_start_date, scheduled_start_time, scheduled_performing_physician_name,
 scheduled_procedure_step_description, scheduled_protocol_code, scheduled_protocol_coding_scheme, scheduled_protocol_meaning,
 status, created_at, updated_at`

type rowScanner interface{ Scan(dest ...any) error }

func scanItem(r rowScanner) (Item, error) {
	var it Item
	var created, updated string
	err := r.Scan(&it.ID, &it.Source, &it.OrderID, &it.PlacerOrderNumberImagingServiceRequest, &it.FillerOrderNumberImagingServiceRequest,
		&it.AccessionNumber, &it.RequestedProcedureID, &it.RequestedProcedureDescription, &it.RequestedProcedureCode.CodeValue,
		&it.RequestedProcedureCode.CodingSchemeDesignator, &it.RequestedProcedurePriority, &it.ReasonForTheRequestedProcedure,
		&it.StudyInstanceUID, &it.ReferringPhysicianName, &it.RequestingPhysician, &it.PatientID, &it.IssuerOfPatientID,
		&it.PatientName, &it.PatientBirthDate, &it.PatientSex, &it.AdmissionID, &it.CurrentPatientLocation, &it.MedicalAlerts,
		&it.Allergies, &it.ScheduledProcedureStepID, &it.Modality, &it.ScheduledStationAETitle, &it.ScheduledStationName,
		&it.ScheduledProcedureStepLocation, &it.ScheduledProcedureStepStartDate, &it.ScheduledProcedureStepStartTime,
		&it.ScheduledPerformingPhysicianName, &it.ScheduledProcedureStepDescription, &it.ScheduledProtocolCode.CodeValue,
		&it.ScheduledProtocolCode.CodingSchemeDesignator, &it.ScheduledProtocolCode.CodeMeaning, &it.ScheduledProcedureStepStatus,
		&created, &updated)
	if err != nil {
		return it, err
	}
	// The Requested Procedure Code Meaning is the description (PS3.3
	// §C.4.11: the description is the code's text when coded).
	it.RequestedProcedureCode.CodeMeaning = it.RequestedProcedureDescription
	it.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
	it.UpdatedAt, _ = time.Parse(time.RFC3339Nano, updated)
	return it, nil
}

// itemValues are the values of the writable columns, in writableColumns
// order.
const writableColumns = `source, order_ref, order_version, placer_order_number, filler_order_number, accession_number,
 requested_procedure_id, requested_procedure_description, requested_procedure_code, requested_procedure_coding_scheme,
 requested_procedure_priority, reason_for_requested_procedure, study_instance_uid, referring_physician_name,
 requesting_physician, patient_id, issuer_of_patient_id, patient_name, patient_name_search, patient_birth_date, patient_sex,
 admission_id, current_patient_location, medical_alerts, allergies, scheduled_procedure_step_id, modality,
 scheduled_station_ae_title, scheduled_station_name, scheduled_procedure_step_location, scheduled_start_date,
 scheduled_start_time, scheduled_performing_physician_name, scheduled_procedure_step_description, scheduled_protocol_code,
 scheduled_protocol_coding_scheme, scheduled_protocol_meaning, status, updated_at`

func itemValues(it *Item, version string, now time.Time) []any {
	return []any{it.Source, it.OrderID, version, it.PlacerOrderNumberImagingServiceRequest, it.FillerOrderNumberImagingServiceRequest,
		it.AccessionNumber, it.RequestedProcedureID, it.RequestedProcedureDescription, it.RequestedProcedureCode.CodeValue,
		it.RequestedProcedureCode.CodingSchemeDesignator, it.RequestedProcedurePriority, it.ReasonForTheRequestedProcedure,
		it.StudyInstanceUID, it.ReferringPhysicianName, it.RequestingPhysician, it.PatientID, it.IssuerOfPatientID,
		it.PatientName, foldName(it.PatientName), it.PatientBirthDate, it.PatientSex, it.AdmissionID, it.CurrentPatientLocation,
		it.MedicalAlerts, it.Allergies, it.ScheduledProcedureStepID, it.Modality, it.ScheduledStationAETitle,
		it.ScheduledStationName, it.ScheduledProcedureStepLocation, it.ScheduledProcedureStepStartDate,
		it.ScheduledProcedureStepStartTime, it.ScheduledPerformingPhysicianName, it.ScheduledProcedureStepDescription,
		it.ScheduledProtocolCode.CodeValue, it.ScheduledProtocolCode.CodingSchemeDesignator, it.ScheduledProtocolCode.CodeMeaning,
		it.ScheduledProcedureStepStatus, stamp(now)}
}

// stamp is the text form of the hub's own timestamps in these tables.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z07:00") }

// foldName folds a PN to lower case for case-insensitive matching (in Go,
// since SQLite's lower() folds ASCII only).
func foldName(s string) string { return strings.ToLower(s) }

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

var nWritable = len(strings.Split(writableColumns, ","))

// insertItem inserts it and sets its ID.
func insertItem(ctx context.Context, tx *catalog.Tx, it *Item, version string, now time.Time) error {
	args := append(itemValues(it, version, now), stamp(now))
	err := tx.QueryRowContext(ctx, `INSERT INTO worklist_items (`+writableColumns+`, created_at) VALUES (`+placeholders(nWritable+1)+`) RETURNING id`,
		args...).Scan(&it.ID)
	if err != nil {
		return fmt.Errorf("worklist: insert item: %w", err)
	}
	it.CreatedAt, it.UpdatedAt = now, now
	return nil
}

// updateItem writes every writable column of it.
func updateItem(ctx context.Context, tx *catalog.Tx, it *Item, version string, now time.Time) error {
	cols := strings.Split(writableColumns, ",")
	for i := range cols {
		cols[i] = strings.TrimSpace(cols[i]) + " = ?"
	}
	args := append(itemValues(it, version, now), it.ID)
	if _, err := tx.ExecContext(ctx, `UPDATE worklist_items SET `+strings.Join(cols, ", ")+` WHERE id = ?`, args...); err != nil {
		return fmt.Errorf("worklist: update item: %w", err)
	}
	it.UpdatedAt = now
	return nil
}

func getItem(ctx context.Context, tx catalog.Querier, id int64) (Item, error) {
	it, err := scanItem(tx.QueryRowContext(ctx, `SELECT `+itemColumns+` FROM worklist_items WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return it, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	return it, err
}

func setStatus(ctx context.Context, tx *catalog.Tx, ids []int64, status string, now time.Time) error {
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `UPDATE worklist_items SET status = ?, updated_at = ? WHERE id = ?`, status, stamp(now), id); err != nil {
			return fmt.Errorf("worklist: set status: %w", err)
		}
	}
	return nil
}
