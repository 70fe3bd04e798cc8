package risbridge

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/imaginghub/imaginghub/hl7"
)

// Order control codes taken (HL7 table 0119, ORC-1): new order, change
// order, cancel, discontinue, status changed.
var orderControls = []string{"NW", "XO", "CA", "DC", "SC"}

// Code is a coded element (CE/CWE): identifier, text, coding system.
type Code struct {
	Code         string `json:"code,omitempty"`
	Text         string `json:"text,omitempty"`
	CodingScheme string `json:"codingScheme,omitempty"`
}

// PatientRef is the patient an order or report is for, as PID gives it.
type PatientRef struct {
	PatientID         string `json:"patientID"`                   // PID-3.1 (first repetition)
	IssuerOfPatientID string `json:"issuerOfPatientID,omitempty"` // PID-3.4
	PatientName       string `json:"patientName,omitempty"`       // PID-5 as a DICOM PN (Family^Given^Middle^Prefix^Suffix)
	PatientBirthDate  string `json:"patientBirthDate,omitempty"`  // PID-7, YYYYMMDD
	PatientSex        string `json:"patientSex,omitempty"`        // PID-8
	// AccountNumber is the patient account number (PID-18.1) and
	// AccountAssigningAuthority its CX.4 (HD sub-components joined by
	// '&'): the account the order's charges post to. The HL7 null ""
	// in PID-18 clears a stored account.
	AccountNumber             string `json:"accountNumber,omitempty"`
	AccountAssigningAuthority string `json:"accountAssigningAuthority,omitempty"`
}

// Step is one Scheduled Procedure Step (IHE RAD TF-2 RAD-4): the unit a
// Modality Worklist item describes.
type Step struct {
	ScheduledProcedureStepID string `json:"scheduledProcedureStepID,omitempty"` // OBR-20 / IPC-4
	Modality                 string `json:"modality,omitempty"`                 // OBR-24 / IPC-5
	ScheduledStationAETitle  string `json:"scheduledStationAETitle,omitempty"`  // OBR-21 / IPC-9
	ScheduledStationName     string `json:"scheduledStationName,omitempty"`     // IPC-7
	// ScheduledStart is RFC 3339 (ORC-7.4, OBR-27.4, OBR-36 / TQ1-7).
	ScheduledStart string `json:"scheduledStart,omitempty"`
	Protocol       Code   `json:"protocol"` // OBR-4 / IPC-6
	Status         string `json:"status,omitempty"`
}

// Order is an imaging order: a placer order with its requested procedure
// and the steps scheduled for it.
type Order struct {
	ID                   int64      `json:"id"`
	OrderControl         string     `json:"orderControl"`         // ORC-1 of the last message applied
	Status               string     `json:"status"`               // ORC-5 (table 0038): SC, IP, CM, DC, CA, …
	PlacerOrderNumber    string     `json:"placerOrderNumber"`    // ORC-2.1 / OBR-2.1
	FillerOrderNumber    string     `json:"fillerOrderNumber"`    // ORC-3.1 / OBR-3.1
	AccessionNumber      string     `json:"accessionNumber"`      // OBR-18 / IPC-1
	RequestedProcedureID string     `json:"requestedProcedureID"` // OBR-19 / IPC-2
	StudyInstanceUID     string     `json:"studyInstanceUID"`     // ZDS-1 / IPC-3, or assigned by the hub
	RequestedProcedure   Code       `json:"requestedProcedure"`   // OBR-44, else OBR-4
	Priority             string     `json:"priority,omitempty"`   // ORC-7.6 / OBR-27.6 / TQ1-9
	OrderingProvider     string     `json:"orderingProvider,omitempty"`
	ReferringProvider    string     `json:"referringProvider,omitempty"`
	Reason               string     `json:"reason,omitempty"` // OBR-31
	Patient              PatientRef `json:"patient"`
	VisitNumber          string     `json:"visitNumber,omitempty"` // PV1-19
	Steps                []Step     `json:"steps"`
	CreatedAt            time.Time  `json:"createdAt"`
	UpdatedAt            time.Time  `json:"updatedAt"`
}

// Report is a result received in ORU^R01.
type Report struct {
	ID                int64  `json:"id"`
	OrderID           int64  `json:"orderId,omitempty"`
	PlacerOrderNumber string `json:"placerOrderNumber,omitempty"`
	FillerOrderNumber string `json:"fillerOrderNumber,omitempty"`
	AccessionNumber   string `json:"accessionNumber,omitempty"`
	// ResultStatus is OBX-11 (HL7 table 0085): P preliminary, F final,
	// C corrected.
	ResultStatus    string `json:"resultStatus"`
	Text            string `json:"text"`
	ObservationTime string `json:"observationTime,omitempty"` // OBR-7, RFC 3339
	// Supersedes are the earlier reports of the same order this one
	// replaces.
	Supersedes []int64 `json:"supersedes,omitempty"`
	// SupersededBy is the report that replaced this one, on reads.
	SupersededBy int64      `json:"supersededBy,omitempty"`
	Patient      PatientRef `json:"patient"`
}

type errList []hl7.ErrorDetail

func (e *errList) add(code hl7.ErrorCode, loc hl7.Location, format string, args ...any) {
	*e = append(*e, hl7.ErrorDetail{Code: code, Location: loc, Text: fmt.Sprintf(format, args...)})
}

func parsePatient(msg *hl7.Message, errs *errList) PatientRef {
	pid := msg.Segment("PID")
	if pid == nil {
		errs.add(hl7.SegmentSequenceError, hl7.Location{Segment: "PID"}, "PID segment missing")
		return PatientRef{}
	}
	var p PatientRef
	for _, v := range pid.Repetitions(3) {
		if v.Component(1) != "" {
			p.PatientID, p.IssuerOfPatientID = v.Component(1), v.Component(4)
			break
		}
	}
	if p.PatientID == "" {
		errs.add(hl7.RequiredFieldMissing, hl7.Location{Segment: "PID", Field: 3}, "PID-3 patient identifier list missing")
	}
	if reps := pid.Repetitions(5); len(reps) > 0 {
		v := reps[0]
		// DICOM PN component order (PS3.5 §6.2): family, given, middle,
		// prefix, suffix; XPN has suffix (4) before prefix (5).
		p.PatientName = trimCarets(strings.Join([]string{v.SubComponent(1, 1), v.Component(2), v.Component(3), v.Component(5), v.Component(4)}, "^"))
	}
	if d := pid.Field(7); len(d) >= 8 {
		p.PatientBirthDate = d[:8]
	}
	p.PatientSex = pid.Field(8)
	if reps := pid.Repetitions(18); len(reps) > 0 {
		p.AccountNumber, p.AccountAssigningAuthority = reps[0].Component(1), reps[0].Component(4)
	}
	return p
}

func trimCarets(s string) string { return strings.TrimRight(s, "^") }

// xcn writes an XCN (provider) as id^family^given.
func xcn(reps []hl7.Value) string {
	if len(reps) == 0 {
		return ""
	}
	v := reps[0]
	return trimCarets(v.Component(1) + "^" + v.SubComponent(2, 1) + "^" + v.Component(3))
}

// orderGroup is one ORC with the segments that follow it.
type orderGroup struct {
	orc  *hl7.Segment
	rep  int // which ORC, 1-based, for error locations
	obr  []*hl7.Segment
	ipc  [][]*hl7.Segment // per OBR
	tq1  *hl7.Segment
	zds  *hl7.Segment
	errs errList
}

func groups(msg *hl7.Message) []*orderGroup {
	var gs []*orderGroup
	var g *orderGroup
	for _, s := range msg.All() {
		switch s.Name() {
		case "ORC":
			g = &orderGroup{orc: s, rep: len(gs) + 1}
			gs = append(gs, g)
		case "OBR":
			if g != nil {
				g.obr = append(g.obr, s)
				g.ipc = append(g.ipc, nil)
			}
		case "IPC":
			if g != nil && len(g.obr) > 0 {
				g.ipc[len(g.ipc)-1] = append(g.ipc[len(g.ipc)-1], s)
			}
		case "TQ1":
			if g != nil && g.tq1 == nil {
				g.tq1 = s
			}
		case "ZDS":
			if g != nil {
				g.zds = s
			}
		}
	}
	return gs
}

// validUID reports whether s is a DICOM UID (PS3.5 §9.1): digits and dots,
// at most 64 characters, no empty or zero-led components.
func validUID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range strings.Split(s, ".") {
		if c == "" || len(c) > 1 && c[0] == '0' {
			return false
		}
		for i := 0; i < len(c); i++ {
			if c[i] < '0' || c[i] > '9' {
				return false
			}
		}
	}
	return true
}

// ParseOrders reads ORM^O01 (v2.3.1 style, IHE RAD-4/RAD-13) or OMI^O23
// (v2.5.1): one Order per ORC with the steps of its OBRs (ORM) or IPCs
// (OMI). Errors name the fields that make the message unusable.
func ParseOrders(msg *hl7.Message) ([]Order, []hl7.ErrorDetail) {
	var errs errList
	patient := parsePatient(msg, &errs)
	var visit, referring string
	if pv1 := msg.Segment("PV1"); pv1 != nil {
		visit = pv1.Component(19, 1)
		referring = xcn(pv1.Repetitions(8))
	}
	gs := groups(msg)
	if len(gs) == 0 {
		errs.add(hl7.SegmentSequenceError, hl7.Location{Segment: "ORC"}, "ORC segment missing")
	}
	var orders []Order
	for _, g := range gs {
		orc := g.orc
		loc := func(seg string, field int) hl7.Location {
			return hl7.Location{Segment: seg, SegmentRepetition: g.rep, Field: field}
		}
		o := Order{
			OrderControl:      orc.Field(1),
			Status:            orc.Field(5),
			PlacerOrderNumber: orc.Component(2, 1),
			FillerOrderNumber: orc.Component(3, 1),
			OrderingProvider:  xcn(orc.Repetitions(12)),
			ReferringProvider: referring,
			Patient:           patient,
			VisitNumber:       visit,
		}
		if !slices.Contains(orderControls, o.OrderControl) {
			errs.add(hl7.TableValueNotFound, loc("ORC", 1), "ORC-1 order control %q not supported", o.OrderControl)
		}
		if o.OrderControl == "SC" && o.Status == "" {
			errs.add(hl7.RequiredFieldMissing, loc("ORC", 5), "ORC-5 order status missing for SC")
		}
		start := normTime(orc.Component(7, 4))
		o.Priority = orc.Component(7, 6)
		if g.tq1 != nil {
			if s := normTime(g.tq1.Component(7, 1)); s != "" {
				start = s
			}
			if p := g.tq1.Component(9, 1); p != "" {
				o.Priority = p
			}
		}
		for i, obr := range g.obr {
			if o.PlacerOrderNumber == "" {
				o.PlacerOrderNumber = obr.Component(2, 1)
			}
			if o.FillerOrderNumber == "" {
				o.FillerOrderNumber = obr.Component(3, 1)
			}
			if i == 0 {
				o.AccessionNumber = obr.Component(18, 1)
				o.RequestedProcedureID = obr.Component(19, 1)
				o.RequestedProcedure = Code{obr.Component(4, 1), obr.Component(4, 2), obr.Component(4, 3)}
				if c := obr.Component(44, 1); c != "" {
					o.RequestedProcedure = Code{c, obr.Component(44, 2), obr.Component(44, 3)}
				}
				if o.OrderingProvider == "" {
					o.OrderingProvider = xcn(obr.Repetitions(16))
				}
				if o.Priority == "" {
					o.Priority = obr.Component(27, 6)
				}
				o.Reason = obr.Component(31, 2)
				if o.Reason == "" {
					o.Reason = obr.Component(31, 1)
				}
			}
			stepStart := start
			if stepStart == "" {
				stepStart = normTime(obr.Component(27, 4))
			}
			if stepStart == "" {
				stepStart = normTime(obr.Component(36, 1))
			}
			if ipcs := g.ipc[i]; len(ipcs) > 0 {
				for _, ipc := range ipcs {
					if o.AccessionNumber == "" {
						o.AccessionNumber = ipc.Component(1, 1)
					}
					if o.RequestedProcedureID == "" {
						o.RequestedProcedureID = ipc.Component(2, 1)
					}
					if o.StudyInstanceUID == "" {
						o.StudyInstanceUID = ipc.Component(3, 1)
						if o.StudyInstanceUID != "" && !validUID(o.StudyInstanceUID) {
							errs.add(hl7.DataTypeError, hl7.Location{Segment: "IPC", Field: 3}, "IPC-3 Study Instance UID is not a UID")
						}
					}
					o.Steps = append(o.Steps, Step{
						ScheduledProcedureStepID: ipc.Component(4, 1),
						Modality:                 ipc.Component(5, 1),
						Protocol:                 Code{ipc.Component(6, 1), ipc.Component(6, 2), ipc.Component(6, 3)},
						ScheduledStationName:     ipc.Component(7, 1),
						ScheduledStationAETitle:  ipc.Component(9, 1),
						ScheduledStart:           stepStart,
					})
				}
			} else {
				o.Steps = append(o.Steps, Step{
					ScheduledProcedureStepID: obr.Component(20, 1),
					Modality:                 obr.Component(24, 1),
					Protocol:                 Code{obr.Component(4, 1), obr.Component(4, 2), obr.Component(4, 3)},
					ScheduledStationAETitle:  obr.Component(21, 1),
					ScheduledStart:           stepStart,
				})
			}
		}
		if g.zds != nil && o.StudyInstanceUID == "" {
			o.StudyInstanceUID = g.zds.Component(1, 1)
			if o.StudyInstanceUID != "" && !validUID(o.StudyInstanceUID) {
				errs.add(hl7.DataTypeError, hl7.Location{Segment: "ZDS", Field: 1}, "ZDS-1 Study Instance UID is not a UID")
			}
		}
		if o.PlacerOrderNumber == "" && o.FillerOrderNumber == "" {
			errs.add(hl7.RequiredFieldMissing, loc("ORC", 2), "ORC-2 placer and ORC-3 filler order number missing")
		}
		if (o.OrderControl == "NW" || o.OrderControl == "XO") && len(g.obr) == 0 {
			errs.add(hl7.SegmentSequenceError, hl7.Location{Segment: "OBR"}, "OBR segment missing")
		}
		orders = append(orders, o)
	}
	return orders, errs
}

// ParseReport reads ORU^R01: the report of one OBR with its OBX text.
func ParseReport(msg *hl7.Message) (Report, []hl7.ErrorDetail) {
	var errs errList
	r := Report{Patient: parsePatient(msg, &errs)}
	obr := msg.Segment("OBR")
	if obr == nil {
		errs.add(hl7.SegmentSequenceError, hl7.Location{Segment: "OBR"}, "OBR segment missing")
		return r, errs
	}
	r.PlacerOrderNumber, r.FillerOrderNumber, r.AccessionNumber = obr.Component(2, 1), obr.Component(3, 1), obr.Component(18, 1)
	if r.PlacerOrderNumber == "" && r.FillerOrderNumber == "" && r.AccessionNumber == "" {
		errs.add(hl7.RequiredFieldMissing, hl7.Location{Segment: "OBR", Field: 3}, "OBR-2, OBR-3 and OBR-18 missing: the report names no order")
	}
	r.ObservationTime = normTime(obr.Field(7))
	obxs := msg.Segments("OBX")
	if len(obxs) == 0 {
		errs.add(hl7.SegmentSequenceError, hl7.Location{Segment: "OBX"}, "OBX segment missing")
	}
	esc := msg.Delimiters().Escape
	var lines []string
	for i, obx := range obxs {
		status := obx.Field(11)
		if status == "" {
			status = obr.Field(25)
		}
		switch status {
		case "P", "F", "C":
		default:
			errs.add(hl7.TableValueNotFound, hl7.Location{Segment: "OBX", SegmentRepetition: i + 1, Field: 11}, "OBX-11 result status %q not P, F or C", status)
		}
		// Corrected wins over final over preliminary for the whole report.
		if rank(status) > rank(r.ResultStatus) {
			r.ResultStatus = status
		}
		for _, v := range obx.Repetitions(5) {
			lines = append(lines, formatText(v.String(), esc))
		}
	}
	r.Text = strings.Join(lines, "\n")
	return r, errs
}

func rank(s string) int {
	if s == "" {
		return 0
	}
	return strings.Index("PFC", s) + 1
}

// formatText renders the formatting escapes of FT (HL7 2.5.1 §2.7.6) that
// Unescape keeps: \.br\ is a line break.
func formatText(s string, esc byte) string {
	if esc == 0 {
		return s
	}
	e := string(esc)
	return strings.ReplaceAll(s, e+".br"+e, "\n")
}

// normTime turns an HL7 TS/DTM into RFC 3339, keeping a value that is not
// one as sent. Times without an offset are in the hub's zone.
func normTime(s string) string {
	if s == "" {
		return ""
	}
	t, err := hl7.ParseTime(s, time.Local)
	if err != nil {
		return s
	}
	return t.Format(time.RFC3339)
}

// Validate checks ORM, OMI and ORU content for the listener.
func Validate(msg *hl7.Message) []hl7.ErrorDetail {
	switch msg.Header().MessageType {
	case "ORU":
		_, errs := ParseReport(msg)
		return errs
	default:
		_, errs := ParseOrders(msg)
		return errs
	}
}
