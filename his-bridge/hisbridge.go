// Package hisbridge is the component "his-bridge": it keeps the hub's
// patient registry from the HIS's ADT messages (IHE RAD-1 Patient
// Registration, RAD-12 Patient Update) and announces each change as
// ih.patient.created, ih.patient.updated or ih.patient.merged.
//
// Messages reach it through the HL7 listener (package hl7intake), which
// stores every accepted ADT on the stream IH_HL7_IN under ihhl7.in.his.ADT.
// The bridge consumes that stream with a durable consumer; each message's
// effect, its processed-message key and its events commit in one catalog
// transaction (with the other messages of its batch, in order), so a
// redelivered or resent message changes nothing twice.
package hisbridge

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hl7intake"
	"github.com/imaginghub/imaginghub/hub"
)

// Source is the CloudEvents source of the bridge's events.
const Source = "imaginghub/his-bridge"

// Domain is the bridge's subject token on the intake stream.
const Domain = "his"

// ConsumerName is the durable consumer (and dead-letter subject token).
const ConsumerName = "his-bridge"

// Routes are the messages the HL7 listener accepts for this bridge.
func Routes() []hl7intake.Route {
	return []hl7intake.Route{{Domain: Domain, MessageType: "ADT", TriggerEvents: TriggerEvents(), Validate: Validate}}
}

// Bridge is the component.
type Bridge struct {
	hl7intake.DomainBridge
}

// New builds the bridge on rt and registers its admin routes
// (GET /api/patients, GET /api/patients/{id}).
func New(rt *hub.Runtime) (*Bridge, error) {
	b := &Bridge{hl7intake.DomainBridge{RT: rt, Log: rt.Log.With("component", ConsumerName),
		Consumer: ConsumerName, Description: "patient registry from ADT", Domain: Domain}}
	b.Handle = b.handle
	rt.Server.Mux.HandleFunc("GET /api/patients", b.listPatients)
	rt.Server.Mux.HandleFunc("GET /api/patients/{id}", b.getPatient)
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
		if msg.Header().MessageType != "ADT" {
			return events.Permanent(fmt.Errorf("his-bridge: unexpected message type %s", msg.Header().MessageType))
		}
		adt, errs := ParseADT(msg)
		if len(errs) > 0 {
			return events.Permanent(fmt.Errorf("his-bridge: %s", errs[0].Text))
		}
		batch[i] = hl7intake.Pending{Key: key, Type: "ADT^" + adt.TriggerEvent,
			Apply: func(ctx context.Context, tx *catalog.Tx) ([]events.Event, error) { return Apply(ctx, tx, adt, key) }}
	}
	n, err := hl7intake.ApplyBatch(ctx, b.RT, ConsumerName, batch)
	if err != nil {
		if len(ds) == 1 {
			b.Log.Warn("ADT message not applied", "type", batch[0].Type, "delivery", ds[0].NumDelivered, "err", err)
		}
		return err
	}
	b.Log.Debug("ADT applied", "messages", len(ds), "events", n)
	return nil
}

// PatientEvent is the data of ih.patient.created, ih.patient.updated and
// ih.patient.merged: the patient as the registry now holds it, with the
// visit the message was about.
type PatientEvent struct {
	Patient
	// TriggerEvent is the ADT trigger (MSH-9.2) that caused the change.
	TriggerEvent string `json:"triggerEvent"`
	Visit        *Visit `json:"visit,omitempty"`
	// PriorIdentifiers (merges) are MRG-1, the identifiers retired into
	// this patient; PriorPatientID is the registry id of the merged-away
	// record when the registry knew it.
	PriorIdentifiers []Identifier `json:"priorIdentifiers,omitempty"`
	PriorPatientID   int64        `json:"priorPatientId,omitempty"`
}

// Apply makes an ADT message's change in tx and returns the events to
// announce it. key is the message's key, from which event ids derive.
func Apply(ctx context.Context, tx *catalog.Tx, a ADT, key string) ([]events.Event, error) {
	now := time.Now()
	var typ string
	var id, priorID int64
	var p Patient // the survivor's row as the upsert left it
	var created bool
	switch {
	case slices.Contains(mergeEvents, a.TriggerEvent):
		typ = events.TypePatientMerged
		var err error
		priorID, err = findPatient(ctx, tx, a.PriorIdentifiers)
		if err != nil {
			return nil, err
		}
		p, _, err = upsertPatient(ctx, tx, a, now)
		if err != nil {
			return nil, err
		}
		id = p.ID
		if priorID == id {
			priorID = 0 // the prior identifiers already lead here
		}
		if priorID != 0 {
			// PIR: the retired record points to the survivor and its
			// visits move there; its identifiers stay on it so that a
			// lookup by a retired identifier finds the survivor.
			if _, err := tx.ExecContext(ctx, `UPDATE registry_patients SET merged_into = ?, updated_at = ? WHERE id = ?`, id, tx.Time(now), priorID); err != nil {
				return nil, err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE registry_visits SET patient_ref = ? WHERE patient_ref = ? AND visit_number NOT IN (SELECT visit_number FROM registry_visits WHERE patient_ref = ?)`, id, priorID, id); err != nil {
				return nil, err
			}
		} else {
			// The prior identifiers were unknown: record them on a retired
			// record, so that later lookups by them find the survivor.
			ids := unknownIdentifiers(ctx, tx, a.PriorIdentifiers)
			if len(ids) > 0 {
				if err := tx.QueryRowContext(ctx, `INSERT INTO registry_patients (merged_into, created_at, updated_at) VALUES (?, ?, ?) RETURNING id`, id, tx.Time(now), tx.Time(now)).Scan(&priorID); err != nil {
					return nil, err
				}
				if _, err := addIdentifiers(ctx, tx, priorID, ids); err != nil {
					return nil, err
				}
			}
		}
	default:
		var err error
		p, created, err = upsertPatient(ctx, tx, a, now)
		if err != nil {
			return nil, err
		}
		id = p.ID
		typ = events.TypePatientUpdated
		if created {
			typ = events.TypePatientCreated
		}
	}
	var visit *Visit
	if a.Visit != nil {
		v, err := applyVisit(ctx, tx, id, created, a, now)
		if err != nil {
			return nil, err
		}
		visit = v
	}
	// Nothing after the upsert changes the survivor's own row (a merge
	// changes the retired one); its identifiers and visits are read now,
	// unless the record is new: then they are the ones just recorded.
	if created {
		if visit != nil {
			p.Visits = []Visit{*visit}
		}
	} else if err := loadDetails(ctx, tx, &p); err != nil {
		return nil, err
	}
	data := PatientEvent{Patient: p, TriggerEvent: a.TriggerEvent, Visit: visit, PriorIdentifiers: a.PriorIdentifiers, PriorPatientID: priorID}
	ev, err := events.New(Source, typ, strconv.FormatInt(id, 10), data, key, typ)
	if err != nil {
		return nil, err
	}
	return []events.Event{ev}, nil
}

// findPatient returns the registry id of the patient any of ids names,
// following merges to the surviving record; 0 if none.
func findPatient(ctx context.Context, tx *catalog.Tx, ids []Identifier) (int64, error) {
	for _, i := range ids {
		var ref int64
		var merged sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT i.patient_ref, p.merged_into FROM registry_patient_identifiers i
			JOIN registry_patients p ON p.id = i.patient_ref WHERE i.id_number = ? AND i.assigning_authority = ?`,
			i.IDNumber, i.AssigningAuthority).Scan(&ref, &merged)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if !merged.Valid {
			return ref, nil
		}
		return survivor(ctx, tx, merged.Int64)
	}
	return 0, nil
}

// survivor follows merged_into links; a cycle (which merges never create,
// but an operator's hand edit might) stops after a bounded walk.
func survivor(ctx context.Context, tx *catalog.Tx, id int64) (int64, error) {
	for range 32 {
		var next sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT merged_into FROM registry_patients WHERE id = ?`, id).Scan(&next); err != nil {
			return 0, err
		}
		if !next.Valid {
			return id, nil
		}
		id = next.Int64
	}
	return id, nil
}

func unknownIdentifiers(ctx context.Context, tx *catalog.Tx, ids []Identifier) []Identifier {
	var out []Identifier
	for _, i := range ids {
		var ref int64
		err := tx.QueryRowContext(ctx, `SELECT patient_ref FROM registry_patient_identifiers WHERE id_number = ? AND assigning_authority = ?`,
			i.IDNumber, i.AssigningAuthority).Scan(&ref)
		if errors.Is(err, sql.ErrNoRows) {
			out = append(out, i)
		}
	}
	return out
}

// addIdentifiers records ids for patient in multi-row statements (one for
// any PID-3 a real message carries) and returns the ones it recorded,
// ordered as loadDetails orders them.
func addIdentifiers(ctx context.Context, tx *catalog.Tx, patient int64, ids []Identifier) ([]Identifier, error) {
	added := []Identifier{}
	for lo, hi := range catalog.ValuesChunks(len(ids)) {
		args := make([]any, 0, 4*(hi-lo))
		for _, i := range ids[lo:hi] {
			args = append(args, i.IDNumber, i.AssigningAuthority, i.IdentifierTypeCode, patient)
		}
		// An identifier already held by another record stays there: moving
		// identifiers between patients is what a merge message is for.
		rows, err := tx.QueryContext(ctx, `INSERT INTO registry_patient_identifiers (id_number, assigning_authority, identifier_type_code, patient_ref)
			VALUES `+catalog.ValuesList(hi-lo, 4)+` ON CONFLICT (id_number, assigning_authority) DO NOTHING
			RETURNING id_number, assigning_authority, identifier_type_code`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var i Identifier
			if err := rows.Scan(&i.IDNumber, &i.AssigningAuthority, &i.IdentifierTypeCode); err != nil {
				rows.Close()
				return nil, err
			}
			added = append(added, i)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	sortIdentifiers(added)
	return added, nil
}

// sortIdentifiers orders identifiers by number, then assigning authority,
// byte by byte (not by the database's collation), so that a patient's
// identifiers read back and the ones just recorded come out alike.
func sortIdentifiers(ids []Identifier) {
	slices.SortFunc(ids, func(a, b Identifier) int {
		return cmp.Or(strings.Compare(a.IDNumber, b.IDNumber), strings.Compare(a.AssigningAuthority, b.AssigningAuthority))
	})
}

// upsertPatient creates the patient PID-3 names or updates it, and returns
// its row (without identifiers and visits) and whether it is new. Empty
// fields leave stored values alone; the HL7 null "" clears them.
func upsertPatient(ctx context.Context, tx *catalog.Tx, a ADT, now time.Time) (Patient, bool, error) {
	id, err := findPatient(ctx, tx, a.Identifiers)
	if err != nil {
		return Patient{}, false, err
	}
	cols := []struct {
		name, value string
	}{
		{"family_name", a.Name.Family}, {"given_name", a.Name.Given}, {"middle_name", a.Name.Middle},
		{"name_suffix", a.Name.Suffix}, {"name_prefix", a.Name.Prefix},
		{"name_search", strings.ToLower(a.Name.Family)},
		{"birth_date", a.BirthDate}, {"sex", a.Sex},
		{"address_street", a.Address.Street}, {"address_other", a.Address.Other}, {"address_city", a.Address.City},
		{"address_state", a.Address.State}, {"address_postal_code", a.Address.PostalCode}, {"address_country", a.Address.Country},
		{"phone", a.Phone},
	}
	if id == 0 {
		// A new record, all fields in one statement: empty and cleared
		// ("") fields are both empty.
		names := []string{"created_at", "updated_at"}
		args := []any{tx.Time(now), tx.Time(now)}
		for _, c := range cols {
			v := c.value
			if v == null || v == strings.ToLower(null) {
				v = ""
			}
			names = append(names, c.name)
			args = append(args, v)
		}
		if id, auth, set := accountValues(a.Account); set {
			names = append(names, "account_number", "account_assigning_authority")
			args = append(args, id, auth)
		}
		q := `INSERT INTO registry_patients (` + strings.Join(names, ", ") + `) VALUES (?` + strings.Repeat(", ?", len(names)-1) + `) RETURNING ` + patientColumns
		p, err := scanPatient(tx.QueryRowContext(ctx, q, args...))
		if err != nil {
			return Patient{}, false, err
		}
		// A new record holds just the identifiers recorded now.
		if p.Identifiers, err = addIdentifiers(ctx, tx, p.ID, a.Identifiers); err != nil {
			return Patient{}, false, err
		}
		return p, true, nil
	}
	set := []string{"updated_at = ?"}
	args := []any{tx.Time(now)}
	for _, c := range cols {
		switch c.value {
		case "":
			continue
		case null, strings.ToLower(null):
			set = append(set, c.name+" = ''")
		default:
			set = append(set, c.name+" = ?")
			args = append(args, c.value)
		}
	}
	if acc, auth, ok := accountValues(a.Account); ok {
		set = append(set, "account_number = ?", "account_assigning_authority = ?")
		args = append(args, acc, auth)
	}
	args = append(args, id)
	p, err := scanPatient(tx.QueryRowContext(ctx, `UPDATE registry_patients SET `+strings.Join(set, ", ")+` WHERE id = ? RETURNING `+patientColumns, args...))
	if err != nil {
		return Patient{}, false, err
	}
	if _, err := addIdentifiers(ctx, tx, id, a.Identifiers); err != nil {
		return Patient{}, false, err
	}
	return p, false, nil
}

// applyVisit records PV1 for the patient: registration events open or
// update the visit; A03 discharges it, A11 cancels the admit and A13
// cancels the discharge (HL7 2.5.1 §3.3.3, §3.3.11, §3.3.13).
func applyVisit(ctx context.Context, tx *catalog.Tx, patient int64, newPatient bool, a ADT, now time.Time) (*Visit, error) {
	v := *a.Visit
	switch a.TriggerEvent {
	case "A03":
		v.Status = "discharged"
		if v.DischargeTime == "" {
			v.DischargeTime = a.EventTime
		}
	case "A11":
		v.Status = "cancelled"
	case "A13":
		v.Status = "active"
	case "A05":
		v.Status = "pending"
	case "A08", "A31", "A28", "A40", "A34", "A39":
		v.Status = "" // leave as is
	default:
		v.Status = "active"
	}
	acc, auth, setAccount := accountValues(a.Account)
	if !newPatient {
		// The stored visit, if there is one, is updated in place: empty
		// fields keep what is stored, and the status, discharge time and
		// account it ends up with come back for the event.
		setAcc := 0
		if setAccount {
			setAcc = 1
		}
		err := tx.QueryRowContext(ctx, `UPDATE registry_visits SET
			patient_class = CASE WHEN ? = '' THEN patient_class ELSE ? END,
			assigned_location = CASE WHEN ? = '' THEN assigned_location ELSE ? END,
			attending_doctor = CASE WHEN ? = '' THEN attending_doctor ELSE ? END,
			referring_doctor = CASE WHEN ? = '' THEN referring_doctor ELSE ? END,
			admit_time = CASE WHEN ? = '' THEN admit_time ELSE ? END,
			discharge_time = CASE WHEN ? = 'A13' THEN '' WHEN ? = '' THEN discharge_time ELSE ? END,
			status = CASE WHEN ? = '' THEN status ELSE ? END,
			account_number = CASE WHEN ? = 1 THEN ? ELSE account_number END,
			account_assigning_authority = CASE WHEN ? = 1 THEN ? ELSE account_assigning_authority END,
			updated_at = ?
			WHERE patient_ref = ? AND visit_number = ?
			RETURNING discharge_time, status, account_number, account_assigning_authority`,
			v.PatientClass, v.PatientClass, v.AssignedLocation, v.AssignedLocation, v.AttendingDoctor, v.AttendingDoctor,
			v.ReferringDoctor, v.ReferringDoctor, v.AdmitTime, v.AdmitTime,
			a.TriggerEvent, v.DischargeTime, v.DischargeTime, v.Status, v.Status,
			setAcc, acc, setAcc, auth, tx.Time(now), patient, v.VisitNumber).Scan(&v.DischargeTime, &v.Status, &acc, &auth)
		switch {
		case err == nil:
			v.Account = account(acc, auth)
			return &v, nil
		case !errors.Is(err, sql.ErrNoRows):
			return nil, err
		}
	}
	// A visit the registry does not hold yet.
	if v.Status == "" {
		v.Status = "active"
	}
	v.Account = account(acc, auth)
	_, err := tx.ExecContext(ctx, `INSERT INTO registry_visits (patient_ref, visit_number, patient_class, assigned_location, attending_doctor,
		referring_doctor, admit_time, discharge_time, status, account_number, account_assigning_authority, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		patient, v.VisitNumber, v.PatientClass, v.AssignedLocation, v.AttendingDoctor, v.ReferringDoctor, v.AdmitTime, v.DischargeTime, v.Status,
		acc, auth, tx.Time(now))
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// accountValues are the columns PID-18 writes: set is false when the
// message left the field empty (the stored account stays); the HL7 null
// clears it. ID and assigning authority go together, so a new ID without
// an authority drops the old authority.
func accountValues(a Identifier) (id, authority string, set bool) {
	switch a.IDNumber {
	case "":
		return "", "", false
	case null:
		return "", "", true
	}
	return a.IDNumber, a.AssigningAuthority, true
}

// account is a stored PID-18, nil when there is none.
func account(id, authority string) *Identifier {
	if id == "" {
		return nil
	}
	return &Identifier{IDNumber: id, AssigningAuthority: authority}
}

// errNotFound is returned by loadPatient for an unknown id.
var errNotFound = errors.New("his-bridge: patient not found")

// Patient is a registry record.
type Patient struct {
	ID          int64        `json:"id"`
	Identifiers []Identifier `json:"identifiers"`
	Name        PersonName   `json:"name"`
	BirthDate   string       `json:"birthDate,omitempty"`
	Sex         string       `json:"sex,omitempty"`
	Address     Address      `json:"address"`
	Phone       string       `json:"phone,omitempty"`
	// Account is the last patient account number (PID-18) an ADT for this
	// patient carried; each visit keeps its own.
	Account *Identifier `json:"account,omitempty"`
	// MergedInto is the surviving record of a merged-away patient.
	MergedInto int64     `json:"mergedInto,omitempty"`
	Visits     []Visit   `json:"visits,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

const patientColumns = `id, family_name, given_name, middle_name, name_suffix, name_prefix, birth_date, sex, address_street, address_other,
	address_city, address_state, address_postal_code, address_country, phone, account_number, account_assigning_authority,
	merged_into, created_at, updated_at`

func scanPatient(r catalog.Scanner) (Patient, error) {
	var p Patient
	var merged sql.NullInt64
	var created, updated any
	var acc, auth string
	err := r.Scan(&p.ID, &p.Name.Family, &p.Name.Given, &p.Name.Middle, &p.Name.Suffix, &p.Name.Prefix, &p.BirthDate, &p.Sex,
		&p.Address.Street, &p.Address.Other, &p.Address.City, &p.Address.State, &p.Address.PostalCode, &p.Address.Country,
		&p.Phone, &acc, &auth, &merged, &created, &updated)
	p.Account = account(acc, auth)
	p.MergedInto = merged.Int64
	p.CreatedAt, p.UpdatedAt = hl7intake.ScanTime(created), hl7intake.ScanTime(updated)
	return p, err
}

func loadPatient(ctx context.Context, tx catalog.Querier, id int64) (Patient, error) {
	p, err := scanPatient(tx.QueryRowContext(ctx, `SELECT `+patientColumns+` FROM registry_patients WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Patient{}, errNotFound
	}
	if err != nil {
		return Patient{}, err
	}
	if err := loadDetails(ctx, tx, &p); err != nil {
		return Patient{}, err
	}
	return p, nil
}

func loadDetails(ctx context.Context, tx catalog.Querier, p *Patient) error {
	rows, err := tx.QueryContext(ctx, `SELECT id_number, assigning_authority, identifier_type_code FROM registry_patient_identifiers WHERE patient_ref = ?`, p.ID)
	if err != nil {
		return err
	}
	p.Identifiers = []Identifier{}
	for rows.Next() {
		var i Identifier
		if err := rows.Scan(&i.IDNumber, &i.AssigningAuthority, &i.IdentifierTypeCode); err != nil {
			rows.Close()
			return err
		}
		p.Identifiers = append(p.Identifiers, i)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	sortIdentifiers(p.Identifiers)
	rows, err = tx.QueryContext(ctx, `SELECT visit_number, patient_class, assigned_location, attending_doctor, referring_doctor, admit_time, discharge_time, status,
		account_number, account_assigning_authority FROM registry_visits WHERE patient_ref = ? ORDER BY id`, p.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var v Visit
		var acc, auth string
		if err := rows.Scan(&v.VisitNumber, &v.PatientClass, &v.AssignedLocation, &v.AttendingDoctor, &v.ReferringDoctor, &v.AdmitTime, &v.DischargeTime, &v.Status,
			&acc, &auth); err != nil {
			return err
		}
		v.Account = account(acc, auth)
		p.Visits = append(p.Visits, v)
	}
	return rows.Err()
}
