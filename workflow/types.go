package workflow

import "time"

// Demographics are the patient and order attributes reconciliation makes the
// archive agree with (IHE RAD TF-2 §4.16 PIR, the attributes of the
// Patient Identification and Demographic modules and Accession Number).
type Demographics struct {
	PatientName       string `json:"patientName,omitempty"` // DICOM PN, Family^Given^Middle^Prefix^Suffix
	PatientID         string `json:"patientID,omitempty"`
	IssuerOfPatientID string `json:"issuerOfPatientID,omitempty"`
	PatientBirthDate  string `json:"patientBirthDate,omitempty"` // YYYYMMDD
	PatientSex        string `json:"patientSex,omitempty"`
	AccessionNumber   string `json:"accessionNumber,omitempty"`
}

// Reasons a study is (re)announced as reconciled.
const (
	ReasonMatched        = "matched"         // first link to its order
	ReasonPatientUpdated = "patient-updated" // ADT A08/A31 changed the values
	ReasonPatientMerged  = "patient-merged"  // ADT A40 moved it to the surviving patient
	ReasonOrderUpdated   = "order-updated"   // the RIS changed the order's patient or accession (RAD-13)
)

// Reconciled is the data of ih.study.reconciled.
type Reconciled struct {
	StudyInstanceUID  string       `json:"studyInstanceUID"`
	OrderID           int64        `json:"orderId"`
	MatchedBy         string       `json:"matchedBy"`
	Reason            string       `json:"reason"`
	PlacerOrderNumber string       `json:"placerOrderNumber,omitempty"`
	FillerOrderNumber string       `json:"fillerOrderNumber,omitempty"`
	Coercion          Demographics `json:"coercion"`
}

// Unmatched is the data of ih.study.unmatched and an entry of the
// reconciliation queue.
type Unmatched struct {
	StudyInstanceUID  string    `json:"studyInstanceUID"`
	AccessionNumber   string    `json:"accessionNumber,omitempty"`
	PatientID         string    `json:"patientID,omitempty"`
	IssuerOfPatientID string    `json:"issuerOfPatientID,omitempty"`
	StudyDate         string    `json:"studyDate,omitempty"`
	ModalitiesInStudy []string  `json:"modalitiesInStudy"`
	QueuedAt          time.Time `json:"queuedAt"`
}

// Charge is one performed procedure to bill (IHE CHG), the data of
// ih.billing.charge.posted and ih.billing.charge.reversed.
type Charge struct {
	ID int64 `json:"id"`
	// Key is unique per performed procedure: "mpps:<SOP Instance UID>:<order>"
	// or "study:<Study Instance UID>:<order>".
	Key                   string       `json:"key"`
	OrderID               int64        `json:"orderId"`
	StudyInstanceUID      string       `json:"studyInstanceUID,omitempty"`
	MPPSSOPInstanceUID    string       `json:"mppsSOPInstanceUID,omitempty"`
	ProcedureCode         string       `json:"procedureCode,omitempty"`
	ProcedureText         string       `json:"procedureText,omitempty"`
	ProcedureCodingScheme string       `json:"procedureCodingScheme,omitempty"`
	Quantity              int          `json:"quantity"`
	PerformedAt           string       `json:"performedAt,omitempty"` // DICOM DA+TM as performed, YYYYMMDDHHMMSS
	PerformingStation     string       `json:"performingStation,omitempty"`
	PerformingLocation    string       `json:"performingLocation,omitempty"`
	OrderingProvider      string       `json:"orderingProvider,omitempty"`
	PlacerOrderNumber     string       `json:"placerOrderNumber,omitempty"`
	FillerOrderNumber     string       `json:"fillerOrderNumber,omitempty"`
	Patient               Demographics `json:"patient"`
	// PatientAccount is PID-18 as a CX, components joined by '^':
	// "ID" or "ID^^^assigning authority".
	PatientAccount string     `json:"patientAccount,omitempty"`
	VisitNumber    string     `json:"visitNumber,omitempty"`
	Status         string     `json:"status"` // posted, reversed
	PostedAt       time.Time  `json:"postedAt"`
	ReversedAt     *time.Time `json:"reversedAt,omitempty"`
}

// ReportRequested is the data of ih.report.requested: a study awaits
// reading.
type ReportRequested struct {
	StudyInstanceUID string `json:"studyInstanceUID"`
	OrderID          int64  `json:"orderId"`
	AccessionNumber  string `json:"accessionNumber,omitempty"`
	Priority         string `json:"priority,omitempty"`
}

// ReadingTask is an entry of GET /api/reports/worklist.
type ReadingTask struct {
	StudyInstanceUID  string    `json:"studyInstanceUID"`
	OrderID           int64     `json:"orderId"`
	Priority          string    `json:"priority,omitempty"`
	Status            string    `json:"status"` // awaiting, preliminary, final
	PreliminaryReport int64     `json:"preliminaryReport,omitempty"`
	FinalReport       int64     `json:"finalReport,omitempty"`
	RequestedAt       time.Time `json:"requestedAt"`
	AgeSeconds        int64     `json:"ageSeconds"`
}

// TimelineEntry is one decision of the audit trail of a study.
type TimelineEntry struct {
	Kind    string    `json:"kind"` // received, stable, reconciled, unmatched, charged, …
	EventID string    `json:"eventId,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	At      time.Time `json:"at"`
}
