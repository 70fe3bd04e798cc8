package hisbridge

import (
	"slices"
	"strings"
	"time"

	"github.com/imaginghub/imaginghub/hl7"
)

// Trigger events of ADT taken by the bridge (IHE RAD-1 Patient
// Registration, RAD-12 Patient Update).
var (
	// registerEvents create or update a patient: admit, register,
	// pre-admit, update, add person, update person.
	registerEvents = []string{"A01", "A04", "A05", "A08", "A28", "A31"}
	// mergeEvents merge a prior patient into a surviving one: A40 merge
	// patient (patient identifier list), A34 merge patient ID only and A39
	// merge person, the older forms.
	mergeEvents = []string{"A40", "A34", "A39"}
	// visitEvents change a visit: discharge, cancel admit, cancel
	// discharge.
	visitEvents = []string{"A03", "A11", "A13"}
)

// TriggerEvents are every ADT trigger event the bridge takes.
func TriggerEvents() []string {
	return slices.Concat(registerEvents, mergeEvents, visitEvents)
}

// Identifier is one patient identifier (CX, PID-3 repetition).
type Identifier struct {
	IDNumber           string `json:"idNumber"`                     // CX.1
	AssigningAuthority string `json:"assigningAuthority,omitempty"` // CX.4 (HD; sub-components joined by '&')
	IdentifierTypeCode string `json:"identifierTypeCode,omitempty"` // CX.5, table 0203 (MR, NI, …)
}

// PersonName is an XPN (PID-5).
type PersonName struct {
	Family string `json:"family,omitempty"` // XPN.1
	Given  string `json:"given,omitempty"`  // XPN.2
	Middle string `json:"middle,omitempty"` // XPN.3 second and further given names
	Suffix string `json:"suffix,omitempty"` // XPN.4
	Prefix string `json:"prefix,omitempty"` // XPN.5
}

// Address is an XAD (PID-11).
type Address struct {
	Street     string `json:"street,omitempty"`     // XAD.1
	Other      string `json:"other,omitempty"`      // XAD.2 other designation
	City       string `json:"city,omitempty"`       // XAD.3
	State      string `json:"state,omitempty"`      // XAD.4
	PostalCode string `json:"postalCode,omitempty"` // XAD.5
	Country    string `json:"country,omitempty"`    // XAD.6
}

// Visit is the patient visit of PV1.
type Visit struct {
	VisitNumber      string `json:"visitNumber,omitempty"`      // PV1-19 CX.1
	PatientClass     string `json:"patientClass,omitempty"`     // PV1-2, table 0004
	AssignedLocation string `json:"assignedLocation,omitempty"` // PV1-3 PL
	AttendingDoctor  string `json:"attendingDoctor,omitempty"`  // PV1-7 XCN
	ReferringDoctor  string `json:"referringDoctor,omitempty"`  // PV1-8 XCN
	AdmitTime        string `json:"admitTime,omitempty"`        // PV1-44, RFC 3339
	DischargeTime    string `json:"dischargeTime,omitempty"`    // PV1-45, RFC 3339
	Status           string `json:"status,omitempty"`           // active, pending, discharged, cancelled
	// Account is the patient account number (PID-18) the HIS sent with
	// this visit: the account its charges post to.
	Account *Identifier `json:"account,omitempty"`
}

// ADT is what the bridge reads from one ADT message.
type ADT struct {
	TriggerEvent string
	Identifiers  []Identifier
	Name         PersonName
	BirthDate    string // PID-7, YYYYMMDD
	Sex          string // PID-8, table 0001
	Address      Address
	Phone        string // PID-13, first repetition
	// Account is PID-18, the patient account number (CX.1 and CX.4): an
	// empty IDNumber leaves the stored account alone, the HL7 null ""
	// clears it.
	Account Identifier
	Visit   *Visit // nil without PV1
	// PriorIdentifiers are MRG-1, the identifiers being retired by a merge.
	PriorIdentifiers []Identifier
	// EventTime is EVN-2 (recorded date/time), RFC 3339, or "".
	EventTime string
}

// null is HL7's explicit empty value: the field is to be cleared, as
// opposed to an empty field, which leaves the stored value unchanged
// (HL7 2.5.1 §2.5.3).
const null = `""`

// Validate checks an ADT message's content: the errors make the listener
// answer AE before anything is stored.
func Validate(msg *hl7.Message) []hl7.ErrorDetail {
	_, errs := ParseADT(msg)
	return errs
}

// ParseADT reads an ADT message. The errors name the fields that make it
// unusable (HL7 table 0357 codes and ERR locations).
func ParseADT(msg *hl7.Message) (ADT, []hl7.ErrorDetail) {
	h := msg.Header()
	a := ADT{TriggerEvent: h.TriggerEvent}
	var errs []hl7.ErrorDetail
	add := func(code hl7.ErrorCode, loc hl7.Location, text string) {
		errs = append(errs, hl7.ErrorDetail{Code: code, Location: loc, Text: text})
	}
	if evn := msg.Segment("EVN"); evn != nil {
		a.EventTime = normTime(evn.Field(2))
	}
	pid := msg.Segment("PID")
	if pid == nil {
		add(hl7.SegmentSequenceError, hl7.Location{Segment: "PID"}, "PID segment missing")
		return a, errs
	}
	a.Identifiers = identifiers(pid.Repetitions(3))
	if len(a.Identifiers) == 0 {
		add(hl7.RequiredFieldMissing, hl7.Location{Segment: "PID", Field: 3}, "PID-3 patient identifier list missing")
	}
	a.Name = personName(pid.Repetitions(5))
	a.BirthDate = pid.Field(7)
	if a.BirthDate != "" && a.BirthDate != null {
		if len(a.BirthDate) < 8 || !digits(a.BirthDate[:8]) {
			add(hl7.DataTypeError, hl7.Location{Segment: "PID", Field: 7}, "PID-7 date of birth is not a date")
		} else {
			a.BirthDate = a.BirthDate[:8]
		}
	}
	a.Sex = pid.Field(8)
	switch a.Sex {
	case "", null, "F", "M", "O", "U", "A", "N": // HL7 table 0001
	default:
		add(hl7.TableValueNotFound, hl7.Location{Segment: "PID", Field: 8}, "PID-8 administrative sex not in table 0001")
	}
	if reps := pid.Repetitions(11); len(reps) > 0 {
		v := reps[0]
		a.Address = Address{Street: v.SubComponent(1, 1), Other: v.Component(2), City: v.Component(3),
			State: v.Component(4), PostalCode: v.Component(5), Country: v.Component(6)}
	}
	if reps := pid.Repetitions(13); len(reps) > 0 {
		a.Phone = phone(reps[0])
	}
	if reps := pid.Repetitions(18); len(reps) > 0 {
		a.Account = Identifier{IDNumber: reps[0].Component(1), AssigningAuthority: reps[0].Component(4)}
	}
	if pv1 := msg.Segment("PV1"); pv1 != nil {
		a.Visit = &Visit{
			VisitNumber:      pv1.Component(19, 1),
			PatientClass:     pv1.Field(2),
			AssignedLocation: joinComponents(pv1.Repetitions(3), 9),
			AttendingDoctor:  joinComponents(pv1.Repetitions(7), 3),
			ReferringDoctor:  joinComponents(pv1.Repetitions(8), 3),
			AdmitTime:        normTime(pv1.Field(44)),
			DischargeTime:    normTime(pv1.Field(45)),
		}
	}
	switch {
	case slices.Contains(mergeEvents, a.TriggerEvent):
		mrg := msg.Segment("MRG")
		if mrg == nil {
			add(hl7.SegmentSequenceError, hl7.Location{Segment: "MRG"}, "MRG segment missing")
			break
		}
		a.PriorIdentifiers = identifiers(mrg.Repetitions(1))
		if len(a.PriorIdentifiers) == 0 {
			add(hl7.RequiredFieldMissing, hl7.Location{Segment: "MRG", Field: 1}, "MRG-1 prior patient identifier list missing")
		}
	case slices.Contains(visitEvents, a.TriggerEvent):
		if a.Visit == nil {
			add(hl7.SegmentSequenceError, hl7.Location{Segment: "PV1"}, "PV1 segment missing")
		}
	}
	return a, errs
}

func identifiers(reps []hl7.Value) []Identifier {
	var ids []Identifier
	for _, v := range reps {
		id := Identifier{IDNumber: v.Component(1), AssigningAuthority: v.Component(4), IdentifierTypeCode: v.Component(5)}
		if id.IDNumber == "" || id.IDNumber == null {
			continue
		}
		ids = append(ids, id)
	}
	return ids
}

// personName picks the legal name (XPN.7 "L") or else the first one.
func personName(reps []hl7.Value) PersonName {
	if len(reps) == 0 {
		return PersonName{}
	}
	v := reps[0]
	for _, r := range reps {
		if r.Component(7) == "L" {
			v = r
			break
		}
	}
	return PersonName{Family: v.SubComponent(1, 1), Given: v.Component(2), Middle: v.Component(3), Suffix: v.Component(4), Prefix: v.Component(5)}
}

// phone reads an XTN: the v2.3 form keeps the number in XTN.1; v2.5 senders
// may leave it empty and send XTN.5-8 (country, area, local, extension) or
// XTN.12 (unformatted).
func phone(v hl7.Value) string {
	if s := v.Component(1); s != "" {
		return s
	}
	if s := v.Component(12); s != "" {
		return s
	}
	var parts []string
	for c := 5; c <= 7; c++ {
		if s := v.Component(c); s != "" {
			parts = append(parts, s)
		}
	}
	s := strings.Join(parts, " ")
	if ext := v.Component(8); ext != "" {
		s += " x" + ext
	}
	return s
}

// joinComponents writes the first n components of a field's first
// repetition joined by '^', without trailing empty ones.
func joinComponents(reps []hl7.Value, n int) string {
	if len(reps) == 0 {
		return ""
	}
	comps := reps[0].Components()
	if len(comps) > n {
		comps = comps[:n]
	}
	for len(comps) > 0 && comps[len(comps)-1] == "" {
		comps = comps[:len(comps)-1]
	}
	return strings.Join(comps, "^")
}

// normTime turns an HL7 TS/DTM into RFC 3339; a value that is not one is
// kept as sent. Times without an offset are in the hub's local zone
// (HL7 2.5.1 §2.A.22).
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

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
