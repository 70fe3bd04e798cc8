package hl7intake

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/imaginghub/imaginghub/internal/rest"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hl7"
)

// OutStreamName is the base name of the outbound queue stream (package
// hl7out); its dead letters are listed with the inbound ones.
const OutStreamName = "IH_HL7_OUT"

// Failed is one message listed by GET /api/hl7/failed: a message answered
// AR or AE (Kind "rejected") or one a bridge or the outbound sender gave up
// on (Kind "dead-letter"). It never carries message content.
type Failed struct {
	ID                 string    `json:"id"`
	Kind               string    `json:"kind"`
	Time               time.Time `json:"time"`
	Reason             string    `json:"reason"`
	AckCode            string    `json:"ackCode,omitempty"`
	ErrorCode          int       `json:"errorCode,omitempty"`
	ErrorLocation      string    `json:"errorLocation,omitempty"`
	MessageType        string    `json:"messageType,omitempty"`
	MessageControlID   string    `json:"messageControlID,omitempty"`
	SendingApplication string    `json:"sendingApplication,omitempty"`
	SendingFacility    string    `json:"sendingFacility,omitempty"`
	Consumer           string    `json:"consumer,omitempty"`
	Subject            string    `json:"subject,omitempty"`
	Deliveries         uint64    `json:"deliveries,omitempty"`
}

// recordRejected keeps a rejected message for operators. Its content goes
// to the catalog only, never to the log above debug level.
func (l *Listener) recordRejected(ctx context.Context, msg *hl7.Message, v Verdict) {
	h := msg.Header()
	var code int
	var loc, reason string
	if len(v.Errors) > 0 {
		code, loc, reason = int(v.Errors[0].Code), v.Errors[0].Location.String(), v.Errors[0].Text
		if reason == "" {
			reason = v.Errors[0].Code.String()
		}
	}
	l.log.Warn("HL7 message rejected", "ack", string(v.Code), "type", h.MessageType+"^"+h.TriggerEvent,
		"code", code, "location", loc, "sending_application", h.SendingApplication)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := l.rt.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO hl7_rejected (received_at, ack_code, error_code, error_location, reason,
			message_type, sending_application, sending_facility, message_control_id, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			tx.Time(time.Now()), string(v.Code), code, loc, reason, h.MessageType+"^"+h.TriggerEvent,
			h.SendingApplication, h.SendingFacility, h.MessageControlID, msg.Raw())
		return err
	})
	if err != nil {
		l.log.Error("rejected HL7 message not recorded", "err", err)
	}
}

func (l *Listener) registerAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/hl7/failed", l.listFailed)
	mux.HandleFunc("POST /api/hl7/failed/{id}/replay", l.replayFailed)
}

// ScanTime reads a timestamp column written with catalog.Tx.Time on either
// backend (RFC 3339 text on SQLite, timestamptz on PostgreSQL).
func ScanTime(v any) time.Time {
	switch t := v.(type) {
	case time.Time:
		return t.UTC()
	case string:
		p, _ := time.Parse(time.RFC3339Nano, t)
		return p.UTC()
	case []byte:
		p, _ := time.Parse(time.RFC3339Nano, string(t))
		return p.UTC()
	}
	return time.Time{}
}

func (l *Listener) listFailed(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			rest.Error(w, http.StatusBadRequest, "limit must be 1 to 1000")
			return
		}
		limit = n
	}
	var out []Failed
	err := l.rt.Catalog.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `SELECT id, received_at, ack_code, error_code, error_location, reason, message_type,
			sending_application, sending_facility, message_control_id FROM hl7_rejected WHERE replayed_at IS NULL ORDER BY id DESC LIMIT ?`, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var f Failed
			var id int64
			var at any
			if err := rows.Scan(&id, &at, &f.AckCode, &f.ErrorCode, &f.ErrorLocation, &f.Reason, &f.MessageType,
				&f.SendingApplication, &f.SendingFacility, &f.MessageControlID); err != nil {
				return err
			}
			f.ID, f.Kind, f.Time = "rejected-"+strconv.FormatInt(id, 10), "rejected", ScanTime(at)
			out = append(out, f)
		}
		return rows.Err()
	})
	if err != nil {
		l.log.Error("list rejected HL7 messages", "err", err)
		rest.Error(w, http.StatusServiceUnavailable, "catalog unavailable")
		return
	}
	dls, err := l.rt.Bus.ListDeadLetters(ctx, events.DeadLetterFilter{})
	if err != nil {
		l.log.Error("list dead letters", "err", err)
		rest.Error(w, http.StatusServiceUnavailable, "event bus unavailable")
		return
	}
	in, outStream := l.rt.Bus.StreamName(StreamName), l.rt.Bus.StreamName(OutStreamName)
	for i := len(dls) - 1; i >= 0 && len(out) < 2*limit; i-- {
		d := dls[i]
		if d.Stream != in && d.Stream != outStream {
			continue
		}
		out = append(out, Failed{
			ID:          "dlq-" + strconv.FormatUint(d.Sequence, 10),
			Kind:        "dead-letter",
			Time:        d.Time.UTC(),
			Reason:      d.Error,
			MessageType: d.Header.Get(HeaderMessageType),
			Consumer:    d.Consumer,
			Subject:     strings.TrimPrefix(d.Subject, l.rt.Bus.SubjectPrefix()),
			Deliveries:  d.Deliveries,
		})
	}
	if out == nil {
		out = []Failed{}
	}
	rest.JSON(w, http.StatusOK, out)
}

// replayFailed replays a dead letter to the consumer that gave up on it,
// or runs a rejected message through the listener's checks again (after a
// configuration or upstream fix) and stores it if it now passes.
func (l *Listener) replayFailed(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	switch {
	case strings.HasPrefix(id, "dlq-"):
		seq, err := strconv.ParseUint(strings.TrimPrefix(id, "dlq-"), 10, 64)
		if err != nil {
			rest.Error(w, http.StatusBadRequest, "malformed id")
			return
		}
		dl, err := l.rt.Bus.GetDeadLetter(ctx, seq)
		if errors.Is(err, events.ErrDeadLetterNotFound) || err == nil && dl.Stream != l.rt.Bus.StreamName(StreamName) && dl.Stream != l.rt.Bus.StreamName(OutStreamName) {
			rest.Error(w, http.StatusNotFound, "no such failed message")
			return
		}
		if err == nil {
			err = l.rt.Bus.ReplayDeadLetter(ctx, seq)
		}
		if errors.Is(err, events.ErrDeadLetterNotFound) {
			rest.Error(w, http.StatusNotFound, "no such failed message")
			return
		}
		if err != nil {
			l.log.Error("replay dead letter", "err", err)
			rest.Error(w, http.StatusServiceUnavailable, "event bus unavailable")
			return
		}
		rest.JSON(w, http.StatusOK, map[string]string{"id": id, "result": "replayed"})
	case strings.HasPrefix(id, "rejected-"):
		n, err := strconv.ParseInt(strings.TrimPrefix(id, "rejected-"), 10, 64)
		if err != nil {
			rest.Error(w, http.StatusBadRequest, "malformed id")
			return
		}
		var raw []byte
		err = l.rt.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
			return tx.QueryRowContext(ctx, `SELECT raw FROM hl7_rejected WHERE id = ? AND replayed_at IS NULL`, n).Scan(&raw)
		})
		if errors.Is(err, sql.ErrNoRows) {
			rest.Error(w, http.StatusNotFound, "no such failed message")
			return
		}
		if err != nil {
			rest.Error(w, http.StatusServiceUnavailable, "catalog unavailable")
			return
		}
		msg, err := hl7.Parse(raw)
		if err != nil {
			rest.Error(w, http.StatusUnprocessableEntity, "message does not parse")
			return
		}
		v := l.Accept(ctx, msg)
		if v.Internal {
			rest.Error(w, http.StatusServiceUnavailable, "message could not be stored")
			return
		}
		if v.Code != hl7.AA {
			reason := v.Errors[0].Text
			rest.JSON(w, http.StatusUnprocessableEntity, map[string]string{"error": "still rejected: " + reason, "ackCode": string(v.Code)})
			return
		}
		if err := l.rt.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE hl7_rejected SET replayed_at = ? WHERE id = ?`, tx.Time(time.Now()), n)
			return err
		}); err != nil {
			l.log.Error("mark rejected message replayed", "err", err)
		}
		rest.JSON(w, http.StatusOK, map[string]string{"id": id, "result": "accepted", "ackCode": string(v.Code)})
	default:
		rest.Error(w, http.StatusNotFound, "no such failed message")
	}
}
