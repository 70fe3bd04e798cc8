package router

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imaginghub/imaginghub/events"
)

const (
	// StreamName is the base name of the forwarding queue stream.
	StreamName = "IH_ROUTER"
	// SubjectRoot is the first token of every queue subject,
	// ihroute.<destination token>.
	SubjectRoot = "ihroute"
	// MatchConsumer is the durable consumer of the event stream that
	// applies the rules and fills the queues.
	MatchConsumer = "router-match"

	// HeaderDestination names the destination of a queued job.
	HeaderDestination = "Ih-Route-Destination"
	// HeaderSignature carries the HMAC-SHA256 of a webhook body, as
	// "sha256=<hex>", when the destination has a secret.
	HeaderSignature = "X-Imaginghub-Signature"
)

// Job is one queued delivery: one stored instance to a DICOM destination,
// or one event to a webhook. It carries identifiers only; the instance is
// read from the blob store when it is sent.
type Job struct {
	Destination string `json:"destination"`
	// Rule is the first rule that asked for the delivery, for operators.
	Rule string `json:"rule,omitempty"`

	// DICOM jobs.
	StudyInstanceUID  string `json:"studyInstanceUID,omitempty"`
	SOPInstanceUID    string `json:"sopInstanceUID,omitempty"`
	SOPClassUID       string `json:"sopClassUID,omitempty"`
	TransferSyntaxUID string `json:"transferSyntaxUID,omitempty"`
	BlobKey           string `json:"blobKey,omitempty"`

	// Webhook jobs: the CloudEvent as published, sent byte for byte.
	EventID   string          `json:"eventID,omitempty"`
	EventType string          `json:"eventType,omitempty"`
	Event     json.RawMessage `json:"event,omitempty"`
}

// IsWebhook reports whether the job posts an event rather than storing an
// instance.
func (j *Job) IsWebhook() bool { return j.EventID != "" }

// MsgID is the job's Nats-Msg-Id: a hash of what makes the delivery unique
// (destination, SOP Instance UID and stored file; destination and event id
// for webhooks), so that a redelivered event or a second rule asking for
// the same delivery enqueues it once.
func (j *Job) MsgID() string {
	var key string
	if j.IsWebhook() {
		key = "webhook\x00" + j.Destination + "\x00" + j.EventID
	} else {
		key = "dicom\x00" + j.Destination + "\x00" + j.SOPInstanceUID + "\x00" + j.BlobKey
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}

var safeToken = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Token is the subject token and consumer-name part of a destination: the
// name itself when it is made of letters, digits, '-' and '_', otherwise
// "x" and the hex of the name, so that any name the configuration allows
// makes a valid NATS token.
func Token(destination string) string {
	if safeToken.MatchString(destination) {
		return destination
	}
	return "x" + hex.EncodeToString([]byte(destination))
}

// Subject is the queue subject of a destination (unprefixed).
func Subject(destination string) string { return SubjectRoot + "." + Token(destination) }

// ConsumerName is the durable consumer delivering a destination's queue;
// its dead letters are under ihdlq.<ConsumerName>.
func ConsumerName(destination string) string { return "router-" + Token(destination) }

// StreamSpec is the forwarding queue: work-queue retention, so a job is gone
// once its delivery is acknowledged, and a day-long duplicate window.
func StreamSpec() events.StreamSpec {
	return events.StreamSpec{
		Name:        StreamName,
		Description: "router jobs waiting for delivery, one subject per destination",
		Subjects:    []string{SubjectRoot + ".*"},
		Retention:   jetstream.WorkQueuePolicy,
		Duplicates:  24 * time.Hour,
	}
}

func (j *Job) message() (events.Message, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return events.Message{}, err
	}
	h := nats.Header{}
	h.Set(HeaderDestination, j.Destination)
	return events.Message{Subject: Subject(j.Destination), MsgID: j.MsgID(), Data: b, Header: h}, nil
}
