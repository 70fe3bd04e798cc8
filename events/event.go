// Package events is the hub's event backbone: CloudEvents 1.0 envelopes on
// NATS JetStream subjects named ih.<domain>.<event>.
//
// A Bus (Connect) publishes envelopes with Nats-Msg-Id set to the event id,
// so JetStream drops a writer's retries; Consume runs idempotent handlers
// over durable pull consumers with bounded retries, back-off and a
// dead-letter stream that operators list, replay and discard.
// StartEmbedded runs the NATS server in-process when no cluster is given.
package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// SpecVersion is the CloudEvents specification version of every envelope.
const SpecVersion = "1.0"

// Event types. The NATS subject of an event is its type, behind the
// deployment's subject prefix (see Subject).
const (
	TypeInstanceStored       = "ih.dicom.instance.stored"
	TypeStudyStable          = "ih.dicom.study.stable"
	TypePatientCreated       = "ih.patient.created"
	TypePatientUpdated       = "ih.patient.updated"
	TypePatientMerged        = "ih.patient.merged"
	TypeOrderScheduled       = "ih.order.scheduled"
	TypeOrderUpdated         = "ih.order.updated"
	TypeOrderCancelled       = "ih.order.cancelled"
	TypeProcedureStarted     = "ih.procedure.started"
	TypeProcedureCompleted   = "ih.procedure.completed"
	TypeProcedureDiscontinue = "ih.procedure.discontinued"
	TypeStudyReconciled      = "ih.study.reconciled"
	TypeStudyUnmatched       = "ih.study.unmatched"
	TypeChargePosted         = "ih.billing.charge.posted"
	TypeChargeReversed       = "ih.billing.charge.reversed"
	TypeReportRequested      = "ih.report.requested"
	TypeReportReceived       = "ih.report.received"
	TypeFHIRPublished        = "ih.fhir.published"
)

// Event is a CloudEvents 1.0 envelope in its JSON format.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
}

// ID derives the deterministic id of the fact an event records from the
// event type and the values that identify that fact, so that a writer
// retrying the same change produces the same id and JetStream's duplicate
// window (keyed by Nats-Msg-Id) drops the repeat.
func ID(eventType string, key ...string) string {
	h := sha256.New()
	h.Write([]byte(eventType))
	for _, k := range key {
		h.Write([]byte{0})
		h.Write([]byte(k))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// New builds an event of the given type whose id is derived from key
// (see ID). data is marshalled as JSON.
func New(source, eventType, subject string, data any, key ...string) (Event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("events: marshal %s data: %w", eventType, err)
	}
	return Event{
		SpecVersion:     SpecVersion,
		ID:              ID(eventType, key...),
		Source:          source,
		Type:            eventType,
		Subject:         subject,
		Time:            time.Now().UTC(),
		DataContentType: "application/json",
		Data:            raw,
	}, nil
}

// Validate reports whether e carries the attributes CloudEvents 1.0 requires.
func (e Event) Validate() error {
	switch {
	case e.SpecVersion != SpecVersion:
		return fmt.Errorf("events: specversion %q, want %q", e.SpecVersion, SpecVersion)
	case e.ID == "":
		return fmt.Errorf("events: missing id")
	case e.Source == "":
		return fmt.Errorf("events: missing source")
	case !strings.HasPrefix(e.Type, "ih."):
		return fmt.Errorf("events: type %q is not under ih.", e.Type)
	}
	return nil
}

// Subject returns the NATS subject for an event type under a subject prefix
// ("" in production; a per-run prefix such as "t42." in tests that share a
// NATS server).
func Subject(prefix, eventType string) string { return prefix + eventType }

// Unmarshal decodes an envelope and validates it.
func Unmarshal(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("events: decode envelope: %w", err)
	}
	return e, e.Validate()
}

// DecodeData unmarshals the event's data into v.
func (e Event) DecodeData(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("events: decode %s data: %w", e.Type, err)
	}
	return nil
}
