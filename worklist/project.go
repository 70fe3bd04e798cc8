package worklist

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/events"
)

// The projection reads the data of ris-bridge's and his-bridge's events as
// published (their JSON), not their tables: these types are the part of
// that contract the worklist uses.

// OrderEvent is the data of ih.order.scheduled, ih.order.updated and
// ih.order.cancelled: the order as stored after the change, with every
// Scheduled Procedure Step.
type OrderEvent struct {
	ID                   int64        `json:"id"`
	OrderControl         string       `json:"orderControl"`
	Status               string       `json:"status"` // ORC-5, HL7 table 0038
	PlacerOrderNumber    string       `json:"placerOrderNumber"`
	FillerOrderNumber    string       `json:"fillerOrderNumber"`
	AccessionNumber      string       `json:"accessionNumber"`
	RequestedProcedureID string       `json:"requestedProcedureID"`
	StudyInstanceUID     string       `json:"studyInstanceUID"`
	RequestedProcedure   eventCode    `json:"requestedProcedure"`
	Priority             string       `json:"priority,omitempty"`
	OrderingProvider     string       `json:"orderingProvider,omitempty"`
	ReferringProvider    string       `json:"referringProvider,omitempty"`
	Reason               string       `json:"reason,omitempty"`
	Patient              eventPatient `json:"patient"`
	VisitNumber          string       `json:"visitNumber,omitempty"`
	Steps                []eventStep  `json:"steps"`
	UpdatedAt            time.Time    `json:"updatedAt"`
}

type eventCode struct {
	Code         string `json:"code,omitempty"`
	Text         string `json:"text,omitempty"`
	CodingScheme string `json:"codingScheme,omitempty"`
}

type eventPatient struct {
	PatientID         string `json:"patientID"`
	IssuerOfPatientID string `json:"issuerOfPatientID,omitempty"`
	PatientName       string `json:"patientName,omitempty"`
	PatientBirthDate  string `json:"patientBirthDate,omitempty"`
	PatientSex        string `json:"patientSex,omitempty"`
}

type eventStep struct {
	ScheduledProcedureStepID string    `json:"scheduledProcedureStepID,omitempty"`
	Modality                 string    `json:"modality,omitempty"`
	ScheduledStationAETitle  string    `json:"scheduledStationAETitle,omitempty"`
	ScheduledStationName     string    `json:"scheduledStationName,omitempty"`
	ScheduledStart           string    `json:"scheduledStart,omitempty"` // RFC 3339
	Protocol                 eventCode `json:"protocol"`
	Status                   string    `json:"status,omitempty"`
}

// PatientEvent is the data of ih.patient.created, ih.patient.updated and
// ih.patient.merged.
type PatientEvent struct {
	Identifiers      []eventIdentifier `json:"identifiers"`
	Name             eventName         `json:"name"`
	BirthDate        string            `json:"birthDate,omitempty"`
	Sex              string            `json:"sex,omitempty"`
	Visit            *eventVisit       `json:"visit,omitempty"`
	PriorIdentifiers []eventIdentifier `json:"priorIdentifiers,omitempty"`
}

type eventIdentifier struct {
	IDNumber           string `json:"idNumber"`
	AssigningAuthority string `json:"assigningAuthority,omitempty"`
}

type eventName struct {
	Family string `json:"family,omitempty"`
	Given  string `json:"given,omitempty"`
	Middle string `json:"middle,omitempty"`
	Suffix string `json:"suffix,omitempty"`
	Prefix string `json:"prefix,omitempty"`
}

// PN is the name as a DICOM PN value (PS3.5 §6.2: family, given, middle,
// prefix, suffix).
func (n eventName) PN() string {
	return strings.TrimRight(strings.Join([]string{n.Family, n.Given, n.Middle, n.Prefix, n.Suffix}, "^"), "^")
}

type eventVisit struct {
	VisitNumber      string `json:"visitNumber,omitempty"`
	AssignedLocation string `json:"assignedLocation,omitempty"`
}

// markApplied records an event id; false means it was applied before.
func markApplied(ctx context.Context, tx *catalog.Tx, eventID string, now time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO worklist_events (event_id, applied_at) VALUES (?, ?) ON CONFLICT (event_id) DO NOTHING`, eventID, stamp(now))
	if err != nil {
		return false, fmt.Errorf("worklist: record event: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// requestedProcedurePriority maps the HL7 priority (TQ1-9 / ORC-7.6, HL7
// table 0485) to Requested Procedure Priority (0040,1003) defined terms
// STAT, HIGH, ROUTINE, MEDIUM, LOW (PS3.3 §C.4.11).
func requestedProcedurePriority(hl7 string) string {
	switch strings.ToUpper(hl7) {
	case "S":
		return "STAT"
	case "A", "T", "P":
		return "HIGH"
	case "R":
		return "ROUTINE"
	case "STAT", "HIGH", "ROUTINE", "MEDIUM", "LOW":
		return strings.ToUpper(hl7)
	}
	return ""
}

// xcnToPN turns a provider written as XCN "id^family^given" into a PN.
func xcnToPN(xcn string) string {
	parts := strings.Split(xcn, "^")
	if len(parts) < 2 {
		return "" // an id alone is no name
	}
	return strings.TrimRight(strings.Join(parts[1:], "^"), "^")
}

// splitStart turns an RFC 3339 time into DICOM DA and TM in the wall clock
// it was given in: DICOM dates and times carry no zone (PS3.5 §6.2).
func splitStart(s string) (date, tm string) {
	if s == "" {
		return "", ""
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		if len(s) >= 8 && isDigits(s[:8]) {
			return s[:8], ""
		}
		return "", ""
	}
	return t.Format("20060102"), t.Format("150405")
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// orderStepStatus is the step status an order's status imposes, or "".
func orderStepStatus(orc5 string) string {
	switch orc5 {
	case "CA":
		return StatusCanceled
	case "DC":
		return StatusDiscontinued
	case "CM":
		return StatusCompleted
	}
	return ""
}

// ApplyOrder brings the items of one order in line with the order as an
// ih.order.* event gives it: one item per step, a step gone from the order
// canceled, statuses of a canceled, discontinued or completed order
// applied to every step. A step the modality has already started keeps its
// MPPS-driven status until the order itself ends. An event older than the
// order version the items hold changes nothing.
func ApplyOrder(ctx context.Context, tx *catalog.Tx, o OrderEvent, now time.Time) error {
	if o.ID == 0 {
		return fmt.Errorf("%w: order event without id", ErrInvalid)
	}
	version := ""
	if !o.UpdatedAt.IsZero() {
		version = stamp(o.UpdatedAt)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+itemColumns+`, order_version FROM worklist_items WHERE source = 'order' AND order_ref = ?`, o.ID)
	if err != nil {
		return fmt.Errorf("worklist: items of order: %w", err)
	}
	existing := map[string]Item{}
	stale := false
	for rows.Next() {
		var it Item
		var v string
		it, err = scanItem(scanPlus{rows, &v})
		if err != nil {
			rows.Close()
			return err
		}
		if version != "" && v > version {
			stale = true
		}
		existing[it.ScheduledProcedureStepID] = it
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if stale {
		return nil
	}
	imposed := orderStepStatus(o.Status)
	seen := map[string]bool{}
	for i, s := range o.Steps {
		spsID := s.ScheduledProcedureStepID
		if spsID == "" {
			spsID = fmt.Sprint(i + 1)
		}
		seen[spsID] = true
		date, tm := splitStart(s.ScheduledStart)
		it := Item{
			Source:                                 SourceOrder,
			OrderID:                                o.ID,
			PatientName:                            o.Patient.PatientName,
			PatientID:                              o.Patient.PatientID,
			IssuerOfPatientID:                      o.Patient.IssuerOfPatientID,
			PatientBirthDate:                       o.Patient.PatientBirthDate,
			PatientSex:                             o.Patient.PatientSex,
			AdmissionID:                            o.VisitNumber,
			AccessionNumber:                        o.AccessionNumber,
			PlacerOrderNumberImagingServiceRequest: o.PlacerOrderNumber,
			FillerOrderNumberImagingServiceRequest: o.FillerOrderNumber,
			ReferringPhysicianName:                 xcnToPN(o.ReferringProvider),
			RequestingPhysician:                    xcnToPN(o.OrderingProvider),
			RequestedProcedureID:                   o.RequestedProcedureID,
			RequestedProcedureDescription:          o.RequestedProcedure.Text,
			RequestedProcedureCode:                 Code{o.RequestedProcedure.Code, o.RequestedProcedure.CodingScheme, o.RequestedProcedure.Text},
			RequestedProcedurePriority:             requestedProcedurePriority(o.Priority),
			ReasonForTheRequestedProcedure:         o.Reason,
			StudyInstanceUID:                       o.StudyInstanceUID,
			ScheduledProcedureStepID:               spsID,
			Modality:                               s.Modality,
			ScheduledStationAETitle:                s.ScheduledStationAETitle,
			ScheduledStationName:                   s.ScheduledStationName,
			ScheduledProcedureStepStartDate:        date,
			ScheduledProcedureStepStartTime:        tm,
			ScheduledProcedureStepDescription:      s.Protocol.Text,
			ScheduledProtocolCode:                  Code{s.Protocol.Code, s.Protocol.CodingScheme, s.Protocol.Text},
			ScheduledProcedureStepStatus:           StatusScheduled,
		}
		if s.Status != "" {
			it.ScheduledProcedureStepStatus = s.Status
		}
		old, ok := existing[spsID]
		if ok {
			// What ADT told us about the patient and the visit stays.
			it.CurrentPatientLocation, it.MedicalAlerts, it.Allergies = old.CurrentPatientLocation, old.MedicalAlerts, old.Allergies
			if old.ScheduledProcedureStepStatus == StatusStarted || Final(old.ScheduledProcedureStepStatus) {
				it.ScheduledProcedureStepStatus = old.ScheduledProcedureStepStatus
			}
		}
		if imposed != "" {
			it.ScheduledProcedureStepStatus = imposed
		}
		if ok {
			it.ID = old.ID
			err = updateItem(ctx, tx, &it, version, now)
		} else {
			err = insertItem(ctx, tx, &it, version, now)
		}
		if err != nil {
			return err
		}
	}
	for spsID, old := range existing {
		if seen[spsID] || Final(old.ScheduledProcedureStepStatus) {
			continue
		}
		// The order no longer has this step (XO replaced the steps).
		if err := setStatus(ctx, tx, []int64{old.ID}, StatusCanceled, now); err != nil {
			return err
		}
	}
	return nil
}

// scanPlus scans the item columns followed by extra columns.
type scanPlus struct {
	r     rowScanner
	extra *string
}

func (s scanPlus) Scan(dest ...any) error { return s.r.Scan(append(dest, s.extra)...) }

// sameIssuer compares issuers of patient ID leniently: an empty issuer
// matches any, and an HD is compared by its first component (namespace ID).
func sameIssuer(a, b string) bool {
	if a == "" || b == "" {
		return true
	}
	first := func(s string) string { s, _, _ = strings.Cut(s, "&"); return s }
	return a == b || first(a) == first(b)
}

// itemsOfPatient returns the ids of the items for a patient identifier.
func itemsOfPatient(ctx context.Context, tx *catalog.Tx, id eventIdentifier) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, issuer_of_patient_id FROM worklist_items WHERE patient_id = ?`, id.IDNumber)
	if err != nil {
		return nil, fmt.Errorf("worklist: items of patient: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var n int64
		var issuer string
		if err := rows.Scan(&n, &issuer); err != nil {
			return nil, err
		}
		if sameIssuer(issuer, id.AssigningAuthority) {
			ids = append(ids, n)
		}
	}
	return ids, rows.Err()
}

// ApplyPatient carries an ADT change into the items of the patient: the
// demographics, the visit's location (Current Patient Location of the
// items whose Admission ID is the visit number) and, for a merge, the
// surviving identifier in place of the retired ones (IHE PIR).
func ApplyPatient(ctx context.Context, tx *catalog.Tx, typ string, p PatientEvent, now time.Time) error {
	if len(p.Identifiers) == 0 {
		return nil
	}
	pn := p.Name.PN()
	demographics := func(ids []int64, patientID *eventIdentifier) error {
		for _, id := range ids {
			q := `UPDATE worklist_items SET patient_name = CASE WHEN ? = '' THEN patient_name ELSE ? END,
				patient_name_search = CASE WHEN ? = '' THEN patient_name_search ELSE ? END,
				patient_birth_date = CASE WHEN ? = '' THEN patient_birth_date ELSE ? END,
				patient_sex = CASE WHEN ? = '' THEN patient_sex ELSE ? END, updated_at = ?`
			args := []any{pn, pn, pn, foldName(pn), p.BirthDate, p.BirthDate, p.Sex, p.Sex, stamp(now)}
			if patientID != nil {
				q += `, patient_id = ?, issuer_of_patient_id = ?`
				args = append(args, patientID.IDNumber, patientID.AssigningAuthority)
			}
			if _, err := tx.ExecContext(ctx, q+` WHERE id = ?`, append(args, id)...); err != nil {
				return fmt.Errorf("worklist: patient update: %w", err)
			}
		}
		return nil
	}
	for _, ident := range p.Identifiers {
		ids, err := itemsOfPatient(ctx, tx, ident)
		if err != nil {
			return err
		}
		if err := demographics(ids, nil); err != nil {
			return err
		}
		if v := p.Visit; v != nil && v.VisitNumber != "" && v.AssignedLocation != "" {
			for _, id := range ids {
				if _, err := tx.ExecContext(ctx, `UPDATE worklist_items SET current_patient_location = ?, updated_at = ? WHERE id = ? AND admission_id = ?`,
					v.AssignedLocation, stamp(now), id, v.VisitNumber); err != nil {
					return fmt.Errorf("worklist: visit update: %w", err)
				}
			}
		}
	}
	if typ != events.TypePatientMerged {
		return nil
	}
	for _, prior := range p.PriorIdentifiers {
		survivor := p.Identifiers[0]
		for _, ident := range p.Identifiers {
			if ident.AssigningAuthority == prior.AssigningAuthority {
				survivor = ident
				break
			}
		}
		if survivor.IDNumber == prior.IDNumber && survivor.AssigningAuthority == prior.AssigningAuthority {
			continue
		}
		ids, err := itemsOfPatient(ctx, tx, prior)
		if err != nil {
			return err
		}
		if err := demographics(ids, &survivor); err != nil {
			return err
		}
	}
	return nil
}
